"""WAGO 750-352 Modbus TCP fieldbus coupler: digital I/O and the valves on its outputs."""
