"""ADAM-6018+ Modbus map (ADAM-6000 series user manual, appendix "I/O Modbus mapping table").

AI values 40001-40008 (holding registers 0-7): raw 0..65535 over the channel's input range
(0x0000 = range minimum, 0xFFFF = range maximum). AI status 40101-40116 (registers 100-115),
two registers per channel, low word first; status bits as the ADAM-6000+ table gives them.
"""

from typing import Final

AI_VALUE_BASE: Final = 0
AI_STATUS_BASE: Final = 100
CHANNELS: Final = 8
RAW_FULL_SCALE: Final = 0xFFFF

STATUS_FAILED: Final = 1 << 0  # failed to provide an AI value
STATUS_OVER_RANGE: Final = 1 << 1
STATUS_UNDER_RANGE: Final = 1 << 2
STATUS_OPEN_CIRCUIT: Final = 1 << 3  # burnout: open thermocouple
STATUS_ADC_FAILED: Final = 1 << 7

# Type K thermocouple range of the ADAM-6018+ (°C); the module's range is set with its
# utility and must match the driver's configuration.
TYPE_K_MIN_C: Final = 0.0
TYPE_K_MAX_C: Final = 1370.0
