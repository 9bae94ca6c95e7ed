"""The entry points: the command lines, the serve supervisor, the emulators' launcher."""
