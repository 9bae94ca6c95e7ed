"""Zaber motorized stage, ASCII protocol (the Z axis of the lead-lift)."""
