"""The connected machine: the driver factory, the monitor, device identities, motion constants."""
