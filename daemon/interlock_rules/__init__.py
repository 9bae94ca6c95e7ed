"""The interlock rules (``rules``) and the simulation's invariant checker (``invariants``)."""
