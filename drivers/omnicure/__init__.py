"""Excelitas OmniCure S2000 UV spot-curing source, RS-232."""
