"""Advantech ADAM-6018+ 8-channel thermocouple input module (Modbus TCP)."""
