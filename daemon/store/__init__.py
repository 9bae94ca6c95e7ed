"""Run records: the SQLite store, the trace samples, the CSV export."""
