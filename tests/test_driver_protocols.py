"""Framing of the lead-lift devices' protocols, against the examples their manuals print."""

from __future__ import annotations

import pytest

from drivers.nordson import protocol as nd
from drivers.omnicure import protocol as oc
from drivers.zaber import protocol as zb


def test_omnicure_crc8_reproduces_the_manuals_examples() -> None:
    assert oc.frame("CONN") == b"CONN18\r"
    assert oc.unframe(b"READY0A") == "READY"


def test_omnicure_bad_crc_and_error_replies_are_errors_not_text() -> None:
    with pytest.raises(ValueError, match="CRC"):
        oc.unframe(b"READY0B")
    with pytest.raises(oc.ErrorReply, match="Err67"):
        oc.unframe(b"Err67")


def test_ultimus_checksum_reproduces_the_manuals_example() -> None:
    assert nd.packet("PS  ", "0500") == b"\x0208PS  0500F0\x03"
    assert nd.parse(b"\x0208PS  0500F0") == "PS  0500"


def test_ultimus_corrupted_packet_is_refused() -> None:
    with pytest.raises(ValueError, match="checksum"):
        nd.parse(b"\x0208PS  0600F0")
    with pytest.raises(ValueError, match="length"):
        nd.parse(b"\x0209PS  0500" + nd.checksum(b"09PS  0500").encode())


def test_zaber_reply_parsing() -> None:
    r = zb.parse_reply("@01 1 OK BUSY -- 12345")
    assert (r.device, r.axis, r.ok, r.busy, r.flag, r.data) == (1, 1, True, True, "--", "12345")
    stalled = zb.parse_reply("@01 1 OK IDLE FS 0")
    assert stalled.fault and not stalled.busy
    rejected = zb.parse_reply("@01 1 RJ IDLE WR BADCOMMAND")
    assert not rejected.ok and rejected.data == "BADCOMMAND" and not rejected.fault
    for bad in ("", "@01 1 MAYBE IDLE -- 0", "#01 1 OK IDLE -- 0", "@01 1 OK IDLE fs 0"):
        with pytest.raises(ValueError):
            zb.parse_reply(bad)
    assert zb.command(1, 1, "move abs 100") == b"/1 1 move abs 100\n"
