"""The virtual-time harness, under the name the tests have always imported."""

from daemon.run.virtual import (
    BOND_RECIPES,
    RECIPES,
    REFLOW_RECIPES,
    REPO,
    LampLog,
    SimRun,
    run_recipe,
    spy_lamps,
)

__all__ = [
    "BOND_RECIPES",
    "RECIPES",
    "REFLOW_RECIPES",
    "REPO",
    "LampLog",
    "SimRun",
    "run_recipe",
    "spy_lamps",
]
