"""One run: the executor, its state machine, the result document, and the rig that assembles a machine."""
