"""The interlocks, their rules and the safe-state sequence."""
