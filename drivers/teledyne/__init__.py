"""Teledyne 3000TA trace oxygen analyzer (RS-232 2400 baud, streamed output)."""
