"""Julabo FL/SL recirculating chiller (RS-232, 4800 7E1, ASCII commands)."""
