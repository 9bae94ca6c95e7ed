"""Recipe steps: one async function per step type."""
