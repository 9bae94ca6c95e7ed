"""Nordson EFD Ultimus fluid dispenser, RS-232."""
