"""The chip's thermal loop, its model's source, identification and fit."""
