"""GFX4-IR Modbus map, GFX4 access mode (dip-switch S7-7 OFF; ADR 0025).

The whole 4-zone unit is one node (the rotary switches set it). Zone n's parameters sit at
``ZONE_OFFSET[n] + <zone-map address>`` (GFX4-IR Modbus memory map, "GFX4 access mode":
1024 / 2048 / 4096 / 8192 for zones 1-4, 16-bit access); addresses below 1024 are the custom
map, whose entries the commissioning engineer points at any parameters. The bonder's custom
map puts the per-cycle data of all four zones in one block, so a power command is one FC16
write and its read-back, with every zone's output power and alarms, one FC3 read.
See docs/devices.md for what is verified and what to confirm on the unit.
"""

from typing import Final

ZONE_OFFSET: Final = (1024, 2048, 4096, 8192)  # zone 1..4, 16-bit access

# Zone-map addresses (same layout as a Geflex / the GFX-compatible mode).
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

# The bonder's custom map (configured at commissioning, checked by the driver at connect):
# CUSTOM_MANUAL + z = MANUAL_POWER of zone z+1, CUSTOM_OUTPUT + z = OUTPUT_POWER,
# CUSTOM_ALARMS + z = ALARMS.
CUSTOM_MANUAL: Final = 0
CUSTOM_OUTPUT: Final = 4
CUSTOM_ALARMS: Final = 8
CUSTOM_BLOCK: Final = 12


def zone_address(zone: int, address: int) -> int:
    """16-bit address of a zone-map parameter of zone ``zone`` (0-based)."""
    return ZONE_OFFSET[zone] + address
