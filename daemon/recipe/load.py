"""Reading a recipe: bytes → UTF-8 text → TOML → model → rules.

Whatever the source (a file, the watch folder, an MQTT ``put_recipe``), a recipe is refused
with *every* problem found, each naming the file, the field path as written in TOML
(``steps[3].peak_window_c.max``) and a reason a process engineer can act on. Numbering of
``steps[i]`` starts at 0, as in the order of the ``[[steps]]`` tables.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
import tomllib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from daemon.config import Limits, describe_pydantic_error, toml_key_path
from daemon.recipe.model import AnyRecipe, Recipe
from daemon.recipe.rules import check_rules

# The "field" of a problem with the file as a whole (size, encoding, syntax).
WHOLE_FILE = "(file)"

_ADAPTER: TypeAdapter[AnyRecipe] = TypeAdapter(Recipe)
_TAG_KEYS = ("type", "kind")

# Bounds on what a recipe may be, checked before the schema is (docs/adr/0140): a recipe is a
# few tables and a few tens of steps, so these are far above any real one and far below what
# makes validation slow. Constants, not [limits], so that the config hash of every recorded
# run stays what it was.
MAX_DEPTH = 16  # tables and arrays inside each other; a recipe needs 4 (steps[i].x.y)
MAX_STEPS = 200  # [[steps]] tables
MAX_ARRAY_ITEMS = 1000  # items of any one array (steps aside)


@dataclass(frozen=True)
class RecipeIssue:
    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class RecipeInvalid(Exception):
    """The recipe cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[RecipeIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True)
class LoadedRecipe:
    recipe: AnyRecipe
    text: str  # exactly the bytes received, decoded; text.encode() hashes to sha256
    sha256: str  # hex digest of the exact bytes: what records and MES events refer to
    source: str


def parse_recipe(data: bytes, source: str, limits: Limits) -> LoadedRecipe:
    """Parse and validate a recipe; raise :class:`RecipeInvalid` with all problems found."""

    def whole_file(reason: str) -> RecipeInvalid:
        return RecipeInvalid([RecipeIssue(source, WHOLE_FILE, reason)])

    if len(data) > limits.recipe_max_bytes:
        raise whole_file(_too_large(limits, size=len(data)))
    if not data.strip():
        raise whole_file("the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        raise whole_file(
            f"not valid UTF-8 text: byte 0x{data[exc.start]:02X} at line {line}, column {col} "
            "cannot be read; save the file as UTF-8"
        ) from exc
    try:
        # Editors on Windows PCs put a byte-order mark in front; it carries no meaning.
        doc = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise whole_file(f"not valid TOML: {exc}") from exc
    except RecursionError as exc:  # inline arrays/tables nested some thousand levels deep
        raise whole_file(_too_deep()) from exc
    if not doc:
        raise whole_file("the file holds only comments and blank lines: there is no recipe in it")
    bounds = _bounds_issue(doc)
    if bounds is not None:
        raise RecipeInvalid([RecipeIssue(source, *bounds)])

    try:
        # Strict: TOML values are typed, so "245" or true where a number belongs is a mistake,
        # not something to coerce.
        recipe = _ADAPTER.validate_python(doc, strict=True)
    except ValidationError as exc:
        raise RecipeInvalid(_model_issues(exc, doc, source)) from exc

    problems = check_rules(recipe, limits)
    if problems:
        raise RecipeInvalid([RecipeIssue(source, field, reason) for field, reason in problems])
    return LoadedRecipe(
        recipe=recipe, text=text, sha256=hashlib.sha256(data).hexdigest(), source=source
    )


def load_recipe_file(path: Path, limits: Limits) -> LoadedRecipe:
    """Read a recipe file and :func:`parse_recipe` it.

    Never reads more than ``limits.recipe_max_bytes + 1`` bytes, and refuses anything that is
    not a regular file, so a FIFO or device dropped where a recipe is expected cannot block
    or flood the daemon. Unreadable files are reported as :class:`RecipeInvalid` too, so that
    every caller reports them the same way.
    """
    source = str(path)

    def whole_file(reason: str) -> RecipeInvalid:
        return RecipeInvalid([RecipeIssue(source, WHOLE_FILE, reason)])

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise whole_file(f"cannot open the file: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise whole_file("not a regular file")
        with open(fd, "rb", closefd=False) as f:
            data = f.read(limits.recipe_max_bytes + 1)
    except OSError as exc:
        raise whole_file(f"cannot read the file: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > limits.recipe_max_bytes:
        raise whole_file(_too_large(limits, size=None))
    return parse_recipe(data, source, limits)


def _too_deep() -> str:
    return (
        f"tables and arrays are nested more than {MAX_DEPTH} levels deep; a recipe needs at "
        "most 4 (steps[i].table.key)"
    )


def _bounds_issue(doc: dict[str, Any]) -> tuple[str, str] | None:
    """The first bound the parsed TOML exceeds (field, reason), or None.

    Iterative, so that no nesting the TOML parser accepted can exhaust the stack here.
    """
    steps = doc.get("steps")
    if isinstance(steps, list) and len(steps) > MAX_STEPS:
        return "steps", (
            f"{len(steps)} steps; the equipment takes at most {MAX_STEPS} steps in one recipe"
        )
    stack: list[tuple[object, list[int | str]]] = [(doc, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return toml_key_path(path[:MAX_DEPTH]), _too_deep()
        if isinstance(node, dict):
            stack.extend((v, [*path, k]) for k, v in node.items())
        elif isinstance(node, list):
            if len(node) > MAX_ARRAY_ITEMS and path != ["steps"]:
                return toml_key_path(path) or WHOLE_FILE, (
                    f"an array of {len(node)} items; at most {MAX_ARRAY_ITEMS} are accepted"
                )
            stack.extend((v, [*path, i]) for i, v in enumerate(node))
    return None


def _too_large(limits: Limits, *, size: int | None) -> str:
    size_text = f"{size} bytes; " if size is not None else ""
    return (
        f"the file is larger than the equipment accepts ({size_text}limit "
        f"{limits.recipe_max_bytes} bytes, limits.recipe_max_bytes)"
    )


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    col = len(data[start:offset].decode("utf-8", errors="replace")) + 1
    return line, col


# --- pydantic errors in TOML terms ------------------------------------------------------------


def _model_issues(exc: ValidationError, doc: dict[str, Any], source: str) -> list[RecipeIssue]:
    # A dict keeps the first occurrence of each issue in order: linear, where `issue not in
    # list` was quadratic (6000 steps took seconds).
    issues: dict[RecipeIssue, None] = {}
    for err in exc.errors(include_url=False):
        issues.setdefault(RecipeIssue(source, *_translate(err, doc)), None)
    return list(issues)


_ABSENT = object()


def _translate(err: ErrorDetails, doc: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    parts, parent = _toml_parts(loc, doc)
    ctx: dict[str, Any] = dict(err.get("ctx") or {})

    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        if not isinstance(err["input"], dict):
            return toml_key_path(parts), describe_pydantic_error({**err, "type": "model_type"})
        key = str(ctx.get("discriminator", "'type'")).strip("'\"")
        tags = _tags(_type_at(loc))
        what = "recipe kind" if key == "kind" else "step type"
        known = ", ".join(tags)
        path = toml_key_path([*parts, key])
        if kind == "union_tag_not_found":
            return path, f"required key is missing: say which {what} this is, one of: {known}"
        tag = str(ctx.get("tag"))
        close = difflib.get_close_matches(tag, tags, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return path, f"unknown {what} '{tag}'{hint}; known: {known}"

    path = toml_key_path(parts) or WHOLE_FILE
    if kind == "extra_forbidden":
        owner = _type_at(loc[:-1])
        allowed = list(owner.model_fields) if _is_model(owner) else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return path, f"unknown key{hint} (allowed here: {', '.join(allowed)})"
    if kind == "missing":
        step = parent.get("type") if isinstance(parent, dict) else None
        where = f" from this '{step}' step" if isinstance(step, str) else ""
        return path, f"required key is missing{where}"
    value = err["input"]
    if (
        kind in {"greater_than_equal", "greater_than"}
        and parts
        and str(parts[-1]).endswith("_s")
        and isinstance(value, int | float)
        and value < 0
    ):
        return path, f"a duration cannot be negative (found {value:g} s)"
    return path, describe_pydantic_error(err)


def _toml_parts(loc: tuple[int | str, ...], doc: dict[str, Any]) -> tuple[list[int | str], object]:
    """Follow a pydantic ``loc`` through the parsed TOML and keep only real TOML path parts.

    pydantic inserts the tag of a discriminated union member (``reflow``, ``vacuum_film_bond``)
    into ``loc``; it is recognised as the value of the table's ``type``/``kind`` key that is
    not itself a key of the table. Returns the path and the table holding its last part.
    """
    parts: list[int | str] = []
    node: object = doc
    parent: object = None
    for elem in loc:
        if isinstance(node, dict):
            if elem in node:
                parts.append(elem)
                parent, node = node, node[elem]
            elif any(node.get(k) == elem for k in _TAG_KEYS):
                continue
            else:
                parts.append(elem)
                parent, node = node, _ABSENT
        elif isinstance(node, list) and isinstance(elem, int) and 0 <= elem < len(node):
            parts.append(elem)
            parent, node = node, node[elem]
        elif node is _ABSENT:
            parts.append(elem)
        # Otherwise pydantic descended into a member of a scalar union: not part of the path.
    return parts, parent


def _type_at(loc: tuple[int | str, ...]) -> Any:
    """The model type pydantic was validating at ``loc`` (``None`` if it cannot be followed)."""
    tp: Any = Recipe
    for elem in loc:
        tp = _unwrap(tp)
        members = _union_members(tp)
        if members is not None:
            matching = [m for m in members if elem in _tags(m)]
            if not matching:
                return None
            tp = matching[0]
        elif get_origin(tp) is list and isinstance(elem, int):
            tp = get_args(tp)[0]
        elif _is_model(tp) and isinstance(elem, str) and elem in tp.model_fields:
            tp = tp.model_fields[elem].annotation
        elif _is_model(tp) and elem in _tags(tp):
            continue
        else:
            return None
    return _unwrap(tp)


def _unwrap(tp: Any) -> Any:
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        members = _union_members(tp, keep_none=True)
        if members is not None:
            not_none = [m for m in members if m is not type(None)]
            if len(not_none) == 1:
                tp = not_none[0]
                continue
        return tp


def _union_members(tp: Any, *, keep_none: bool = False) -> list[Any] | None:
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    members = [m for m in get_args(tp) if keep_none or m is not type(None)]
    return members if keep_none or len(members) > 1 else None


def _tags(tp: Any) -> list[str]:
    """The discriminator values a model (or a union of models) answers to."""
    tp = _unwrap(tp)
    members = _union_members(tp) or [tp]
    tags: list[str] = []
    for member in members:
        if not _is_model(member):
            continue
        for key in _TAG_KEYS:
            field = member.model_fields.get(key)
            if field is not None and get_origin(field.annotation) is Literal:
                tags += [str(a) for a in get_args(field.annotation)]
    return tags


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
