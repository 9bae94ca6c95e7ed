"""Gefran GFX4-IR 4-zone SCR power controller for IR lamps (Modbus RTU)."""
