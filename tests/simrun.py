"""The virtual-time harness, under the name the tests have always imported."""

from daemon.virtual_run import (
    DIO_WATCHDOG_S,
    RECIPES,
    REPO,
    LampLog,
    SimRun,
    run_recipe,
    spy_lamps,
)

__all__ = ["DIO_WATCHDOG_S", "RECIPES", "REPO", "LampLog", "SimRun", "run_recipe", "spy_lamps"]
