"""Device protocols of the bonder, their simulated twins and (later) real drivers."""
