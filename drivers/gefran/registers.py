"""GFX4-IR Modbus map, GFX-compatible addressing (dip-switch 7 ON).

Each zone answers as its own node: zone n is node ``base + n - 1`` (the rotary switches set
``base``), and every zone has the Geflex register layout. See docs/devices.md for the sources
and for the addresses to confirm on the machine.
"""

from typing import Final

PV: Final = 0  # process variable (unused with open-loop power control)
OUTPUT_POWER: Final = 4  # power the zone delivers now, 0.1 % units (read only)
ALARMS: Final = 5  # power-fault alarm bits, below (read only)
SP_R: Final = 26  # storage of SP and MANUAL_POWER: 0 = stored in EEPROM, 1 = RAM only
MANUAL_POWER: Final = 252  # manual power, 0.1 % units

ALARM_SSR_SHORT: Final = 1 << 0  # thyristor conducting without command
ALARM_SSR_OPEN: Final = 1 << 1  # thyristor not conducting on command
ALARM_NO_VOLTAGE: Final = 1 << 2  # no line voltage (lamp contactor open)
ALARM_NO_CURRENT: Final = 1 << 3  # voltage but no load current (open lamp)

SP_R_RAM_ONLY: Final = 1
POWER_SCALE: Final = 10  # register units per %
