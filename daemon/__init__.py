"""bonderd: the daemon of the lamp-heated vacuum-film flip-chip bonder."""

__version__ = "0.1.0"
