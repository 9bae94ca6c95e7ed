"""OmniCure S2000 RS-232 framing (S2000 user's guide, "Remote Automated Control").

19200 8N1, no flow control. Every command and every answer is ``<text><CRC-8 as two hex
digits><CR>``; an error is ``ErrNN<CR>``. The CRC is CRC-8/MAXIM (polynomial 0x31 reflected,
init 0, no final xor): it reproduces both examples the manual prints, ``CONN18`` and
``READY0A``.
"""

from __future__ import annotations

from typing import Final

BAUDRATE: Final = 19200
EOL: Final = b"\r"


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def frame(text: str) -> bytes:
    body = text.encode("ascii")
    return body + f"{crc8(body):02X}".encode("ascii") + EOL


def unframe(line: bytes) -> str:
    """The text of one answer (without CR); ValueError on a bad CRC or an ``ErrNN``."""
    if line.startswith(b"Err"):
        raise ErrorReply(line.decode("ascii", errors="replace"))
    if len(line) < 3:
        raise ValueError(f"answer too short: {line!r}")
    body, crc = line[:-2], line[-2:]
    try:
        got = int(crc.decode("ascii"), 16)
        text = body.decode("ascii")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"garbled answer {line!r}") from exc
    if got != crc8(body):
        raise ValueError(f"CRC mismatch in {line!r} (expected {crc8(body):02X})")
    return text


class ErrorReply(ValueError):
    """The unit answered ``ErrNN``."""


# GUS (get unit status) bits. To confirm on the unit: the guide lists them by name only.
ST_ALARM: Final = 1 << 0
ST_LAMP_ON: Final = 1 << 1
ST_SHUTTER_OPEN: Final = 1 << 2
ST_SHUTTER_FAULT: Final = 1 << 3
ST_LAMP_READY: Final = 1 << 4
ST_FRONT_PANEL_LOCKED: Final = 1 << 5
