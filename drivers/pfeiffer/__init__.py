"""Pfeiffer TPG 361/362 gauge controller (RS-232, mnemonic protocol)."""
