"""Nordson EFD Ultimus RS-232 packets (Ultimus I/II/V operating manuals, appendix "RS-232
communication protocol").

One exchange: host ``ENQ``, unit ``ACK``; host ``STX <len 2> <command 4> <data> <checksum 2>
ETX``, unit ``STX 02A0 <cs> ETX`` (A0 = success) or ``... A2 ...`` (A2 = failure); for a
feedback command the host then sends ``ACK`` and the unit its data packet ``STX <len> D0...
<cs> ETX``; the host ends with ``EOT``. ``len`` counts the command and data characters, as
two decimal digits (to confirm for > 9: the one working example we found sends "10"). The
checksum is the two's complement of the byte sum of length, command and data, low byte, as
two upper-case hex digits ("08PS  0500" -> "F0", the manual's example).
"""

from __future__ import annotations

from typing import Final

STX: Final = b"\x02"
ETX: Final = b"\x03"
EOT: Final = b"\x04"
ENQ: Final = b"\x05"
ACK: Final = b"\x06"
NAK: Final = b"\x15"
SUCCESS: Final = "A0"
FAILURE: Final = "A2"


def checksum(body: bytes) -> str:
    return f"{(-sum(body)) & 0xFF:02X}"


def packet(command: str, data: str = "") -> bytes:
    """``command`` is the command field as the manual spells it, spaces included ("PS  ", "E8")."""
    text = command + data
    if len(text) > 99:
        raise ValueError("packet too long")
    body = f"{len(text):02d}{text}".encode("ascii")
    return STX + body + checksum(body).encode("ascii") + ETX


def parse(raw: bytes) -> str:
    """The command+data text of one packet (``raw`` without ETX); ValueError if malformed."""
    start = raw.rfind(STX)
    if start < 0:
        raise ValueError(f"no STX in {raw!r}")
    frame = raw[start + 1 :]
    if len(frame) < 4:
        raise ValueError(f"packet too short: {raw!r}")
    body, cs = frame[:-2], frame[-2:]
    try:
        text = body.decode("ascii")
        length = int(text[:2])
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"garbled packet {raw!r}") from exc
    if cs.decode("ascii", errors="replace") != checksum(body):
        raise ValueError(f"checksum mismatch in {raw!r}")
    if length != len(text) - 2:
        raise ValueError(f"length {length} does not match {raw!r}")
    return text[2:]


# Pressure units (E6 command): the driver works in kPa, one decimal on the wire.
UNITS_KPA: Final = "02"
PRESSURE_SCALE: Final = 10  # wire units per kPa
TIME_SCALE: Final = 10_000  # wire units per second (5 digits: 0.0001 .. 9.9999 s)
TIME_MAX_S: Final = 9.9999
