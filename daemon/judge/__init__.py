"""Conformance: every process condition of a finished run, per recipe kind."""
