"""WAGO 750-352 Modbus map (manual 750-352, "MODBUS functions" / "Internal variables").

Process image: digital inputs are read with FC2 from 0x0000; digital outputs are written with
FC5/FC15 at 0x0000 and read back with FC1 at 0x0200. Analog input modules come first in the
register process image: their channels are input registers from 0x0000 (FC4; FC3 reads the
same image). Watchdog registers from 0x1000.
"""

from typing import Final

from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    IN_SUPPORT_VACUUM_OK,
    OUT_CHUCK_VACUUM,
    OUT_FILM_CLAMP,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
    VALVE_N2_PURGE,
    VALVE_PUMP,
    VALVE_VENT,
)

INPUTS_BASE: Final = 0x0000  # FC2
OUTPUTS_BASE: Final = 0x0000  # FC5 / FC15
OUTPUTS_READBACK_BASE: Final = 0x0200  # FC1
AI_BASE: Final = 0x0000  # FC4: analog input channels, first module first

WD_TIME: Final = 0x1000  # watchdog time, units of 100 ms; 0 = watchdog off
WD_FC_MASK: Final = 0x1001  # bit n-1 set: function code n retriggers the watchdog
WD_FC_MASK_HI: Final = 0x1002
WD_TRIGGER: Final = 0x1003  # any change of value triggers
WD_AC_TRG_TIME: Final = 0x1004
WD_AC_STOP_MASK: Final = 0x1005
WD_RUNNING: Final = 0x1006  # 0 not active, 1 active, 2 exhausted
WD_RESTART: Final = 0x1007  # write 1: restart after a timeout
WD_AC_STOP_SIMPLE: Final = 0x1008  # write 0xAA55 or 0x55AA: stop, and clear a timeout fault
WD_CLOSE_SOCKET: Final = 0x1009

# Constant registers "information on the coupler" (to confirm against the 750-352 manual).
INFO_REVISION: Final = 0x2010  # firmware index
INFO_SERIES: Final = 0x2011  # 750
INFO_ITEM: Final = 0x2012  # 352
INFO_FW_MAJOR: Final = 0x2013
INFO_FW_MINOR: Final = 0x2014

WD_STATUS_OFF: Final = 0
WD_STATUS_ACTIVE: Final = 1
WD_STATUS_EXHAUSTED: Final = 2
WD_STOP_KEY: Final = 0xAA55
WD_MASK_ALL: Final = 0xFFFF  # FC1..FC16 all retrigger: any request keeps the coupler alive

# Wiring of the bonder's I/O (channel = offset in the process image).
INPUT_CHANNELS: Final = {
    IN_ESTOP_OK: 0,
    IN_DOOR_CLOSED: 1,
    IN_CHILLER_FLOW: 2,
    IN_CHUCK_VACUUM_OK: 3,
    IN_SUPPORT_VACUUM_OK: 4,
}
OUTPUT_CHANNELS: Final = {
    OUT_LAMP_CONTACTOR: 0,
    OUT_SCR_ENABLE: 1,
    OUT_FILM_CLAMP: 2,
    VALVE_N2_PURGE: 3,
    VALVE_VENT: 4,
    VALVE_PUMP: 5,
    OUT_CHUCK_VACUUM: 6,
    OUT_SUPPORT_VACUUM: 7,
    OUT_UV_ENABLE: 8,
}
# A 750-530 8-channel output module, then a 750-504 4-channel one (channels 8-11).
N_OUTPUTS: Final = 12
N_INPUTS: Final = 8  # one 750-430 8-channel input module

# One 750-455 4-channel 4-20 mA analog input module (ahead of the digital modules).
N_AI: Final = 4
AI_LOAD_CELL: Final = 0  # the Z support's load-cell amplifier, 4-20 mA
# 750-455 process value: 4 mA -> 0x0000, 20 mA -> 0x7FF8 (12 bits in B3..B14); the three low
# bits are status: B0 overrange, B0+B1 underrange or wire break (< 4 mA).
AI_FULL_SCALE: Final = 0x7FF8
AI_STATUS_MASK: Final = 0x0007
AI_OVERRANGE: Final = 0x0001
AI_UNDERRANGE: Final = 0x0003
