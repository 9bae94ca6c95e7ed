"""The simulated machine: the plant's physics, simulated drivers, clock and fault injection."""
