"""The twin gate of the recipe library (``[library] twin_gate``, ADR 0172).

Every new recipe version, from the watch folder, ``put_recipe`` or an inline ``start``, is
predicted on the machine's twin (in the nice-19 child of ADR 0171) before it is accepted.
Its summary travels with ``RecipeAccepted`` as ``prediction``; under "refuse" a predicted
failure is refused as the recipe's errors, naming the failing checks. Predictions are kept
per recipe content and configuration (the key-value store), so a recipe is predicted once
however often it is put, and again after the machine's configuration (its ``[thermal]``
model, its limits) changed.
"""

from __future__ import annotations

from typing import Any, Final

import structlog

from daemon.config import Settings, config_hash
from daemon.mes.outbox import KeyValues
from daemon.recipe.load import LoadedRecipe, RecipeIssue
from daemon.run.predict_worker import PredictWorker

log = structlog.get_logger(__name__)

KEY_PREFIX: Final = "prediction:"


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What RecipeAccepted carries of a prediction document (docs/predict.md)."""
    p = doc["recipes"][0]
    seeds = p.get("seeds")
    return {
        "verdict": p["verdict"],
        "min_margin": p["min_margin_fraction"],
        "cycle_s": p["cycle_s"],
        "yield": seeds["yield"] if seeds else None,
        "failed_checks": list(p["failed_checks"]),
        "reason": p["reason"],
        "details": {c["check"]: c["detail"] for c in p["checks"] if not c["ok"]},
    }


def issues(file: str, prediction: dict[str, Any]) -> list[RecipeIssue]:
    """A predicted failure as a refused recipe's errors: why the run would end, then each
    check that would not hold, with the twin's value and limit."""
    out = [RecipeIssue(file, "prediction", f"predicted to fail on this machine's twin: "
                       f"{prediction['reason']}")]  # fmt: skip
    details = prediction.get("details", {})
    for check in prediction["failed_checks"]:
        out.append(RecipeIssue(file, f"prediction.{check}", details.get(check) or "not held"))
    return out


def refusal_text(prediction: dict[str, Any]) -> str:
    checks = ", ".join(prediction["failed_checks"]) or "no check"
    return f"predicted to fail on this machine's twin: {prediction['reason']} (failing: {checks})"


class TwinGate:
    def __init__(self, settings: Settings, predictor: PredictWorker, kv: KeyValues) -> None:
        self.mode = settings.library.twin_gate
        self.seeds = settings.library.twin_gate_seeds
        self._settings = settings
        self._predictor = predictor
        self._kv = kv
        self._config = config_hash(settings)

    def _key(self, loaded: LoadedRecipe) -> str:
        return f"{KEY_PREFIX}{loaded.sha256}:{self._config}:{self.seeds}"

    def cached(self, loaded: LoadedRecipe) -> dict[str, Any] | None:
        value = self._kv.get(self._key(loaded), None)
        return value if isinstance(value, dict) else None

    async def predict(self, loaded: LoadedRecipe, source: str) -> dict[str, Any] | None:
        """The prediction of ``loaded`` (kept from before, or made now); None when off.

        A prediction that cannot be made (the child died) is reported as the verdict
        "unavailable": the gate refuses predicted failures, not recipes it could not judge.
        """
        if self.mode == "off":
            return None
        known = self.cached(loaded)
        if known is not None:
            return known
        try:
            doc = await self._predictor.predict(loaded.text, source, self._settings, self.seeds)
        except Exception as exc:
            log.exception("twin_gate_prediction_failed", source=source)
            return {"verdict": "unavailable", "reason": f"{type(exc).__name__}: {exc}"}
        result = summary(doc)
        self._kv.put(self._key(loaded), result)
        if result["verdict"] != "pass":
            log.warning("twin_gate_predicted_failure", source=source, **result)
        return result

    def refuses(self, prediction: dict[str, Any] | None) -> bool:
        return self.mode == "refuse" and prediction is not None and prediction["verdict"] == "fail"
