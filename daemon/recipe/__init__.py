"""Recipes: the pydantic model, loading from TOML, and validation against limits and physics."""
