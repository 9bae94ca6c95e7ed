"""Protocol-level emulators of the real devices, driven by the simulated plant."""
