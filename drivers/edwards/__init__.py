"""Edwards nXDS dry scroll pump (serial ASCII protocol)."""
