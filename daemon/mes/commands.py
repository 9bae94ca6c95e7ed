"""The commands' envelope and arguments: one pydantic model per command, the same for every
origin (MQTT, the watch folder, a local station), and the refusal of hostile text.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from daemon.config import NAME_PATTERN
from daemon.mes.outbox import safe_text

SQLITE_MAX_INT: Final = 2**63 - 1  # the records store integers as SQLite int64


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---- command payloads ---------------------------------------------------------------------


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoArgs(Args):
    pass


class StartArgs(Args):
    recipe: str | None = Field(default=None, min_length=1, max_length=100, pattern=NAME_PATTERN)
    version: int | None = Field(default=None, ge=1, le=SQLITE_MAX_INT)
    recipe_toml: str | None = None
    lot_id: str = Field(min_length=1, max_length=64)
    operator: str | None = Field(default=None, max_length=64)
    # Who runs a recipe the twin predicts to fail, and why (twin_gate = "refuse"): recorded
    # with the run as the warning `prediction_overridden`.
    override_prediction: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_recipe(self) -> StartArgs:
        if (self.recipe is None) == (self.recipe_toml is None):
            raise ValueError("give exactly one of 'recipe' (a library name) or 'recipe_toml'")
        if self.version is not None and self.recipe is None:
            raise ValueError("'version' goes with 'recipe'")
        return self


class HoldArgs(Args):
    """``hold`` and ``resume``: who commands it, for the run record (optional)."""

    operator: str | None = Field(default=None, max_length=64)


class AbortArgs(Args):
    reason: str | None = Field(default=None, max_length=500)


class PutRecipeArgs(Args):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    recipe_toml: str


class AckAlarmArgs(Args):
    code: str = Field(min_length=1, max_length=100)


class ListRunsArgs(Args):
    limit: int = Field(default=20, ge=1, le=500)


class GetReportArgs(Args):
    run_id: str = Field(min_length=1, max_length=128)


PREDICT_MAX_SEEDS: Final = 100  # ~2 min of a nice-19 core on an idle controller


class PredictArgs(Args):
    """``predict``: a library recipe (latest, or ``version``) or a recipe's text."""

    recipe: str | None = Field(default=None, min_length=1, max_length=100, pattern=NAME_PATTERN)
    version: int | None = Field(default=None, ge=1, le=SQLITE_MAX_INT)
    recipe_toml: str | None = None
    seeds: int = Field(default=0, ge=0, le=PREDICT_MAX_SEEDS)

    @model_validator(mode="after")
    def _one_recipe(self) -> PredictArgs:
        if (self.recipe is None) == (self.recipe_toml is None):
            raise ValueError("give exactly one of 'recipe' (a library name) or 'recipe_toml'")
        if self.version is not None and self.recipe is None:
            raise ValueError("'version' goes with 'recipe'")
        return self


ARGS: Final[dict[str, type[Args]]] = {
    "start": StartArgs,
    "hold": HoldArgs,
    "resume": HoldArgs,
    "abort": AbortArgs,
    "reset": NoArgs,
    "status": NoArgs,
    "list_recipes": NoArgs,
    "put_recipe": PutRecipeArgs,
    "ack_alarm": AckAlarmArgs,
    "list_runs": ListRunsArgs,
    "get_report": GetReportArgs,
    "predict": PredictArgs,
    # Only on `…/cmd/local` (the broker's ACL gives that topic to the machine's operator).
    "take_control": NoArgs,
    "release_control": NoArgs,
}
ENVELOPE_KEYS: Final = frozenset({"command", "command_id", "args"})


def field_errors(exc: ValidationError) -> tuple[str, str]:
    parts = []
    code = "invalid_field"
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "args"
        if err["type"] == "missing":
            code = "missing_field"
            parts.append(f"args.{loc}: required field is missing")
        elif err["type"] == "extra_forbidden":
            parts.append(f"args.{loc}: unknown field")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"args.{loc}: {msg}" if err["loc"] else f"args: {msg}")
    return code, "; ".join(parts)


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def surrogate_problem(doc: Any) -> str | None:
    """``path: reason`` for the first text in ``doc`` that UTF-8 cannot carry, or None.

    JSON may spell a lone UTF-16 surrogate (``"\\ud800"``); Python decodes it into a str that
    no UTF-8 encoder, SQLite or MQTT publish accepts. One C-speed dump finds out whether there
    is one at all; only then is the document walked (iteratively) to name where.
    """
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    except (ValueError, RecursionError):
        return None  # nothing to do with surrogates; the schema refuses it
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if not encodable(node):
                bad = next(c for c in node if 0xD800 <= ord(c) <= 0xDFFF)
                return (
                    f"{path or 'payload'}: not valid Unicode text: a lone surrogate "
                    f"(U+{ord(bad):04X}) cannot be carried as UTF-8"
                )
        elif isinstance(node, dict):
            for k, v in node.items():
                if not encodable(k):
                    where = f"{path}.{safe_text(k)}" if path else safe_text(k)
                    return f"{where}: not valid Unicode text (a key with a lone surrogate)"
                stack.append((v, f"{path}.{k}" if path else k))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    return None
