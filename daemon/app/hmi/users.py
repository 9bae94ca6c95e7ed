"""The station's accounts: a JSON file of names, roles and argon2 password hashes.

``bonderd user add NAME --role R`` writes it (the password read from stdin, never from the
command line, where `ps` and the shell history would keep it). The daemon reads it at
start-up; verifying a password costs tens of milliseconds of CPU by design, so the server
calls ``verify`` in a worker thread, one at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["operator", "engineer", "maintenance"]
ROLES: Final[tuple[str, ...]] = get_args(Role)
# Each role may do what the ones before it may (issue 16): operators run lots, engineers
# also reset latched trips (and will manage recipes), maintenance also sees diagnostics.
RANK: Final = {role: i for i, role in enumerate(ROLES)}
USER_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PASSWORD_MIN: Final = 8
PASSWORD_MAX: Final = 1024  # argon2 takes any length; a megabyte "password" is an attack
# RFC 9106's second recommendation (t=3, 64 MiB) on one lane: a check then occupies one of
# the machine's cores, not all of them, beside the control loop.
_HASHER: Final = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)


@cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so that a wrong name costs as long as a
    wrong password and the answer's timing does not tell which names exist."""
    return _HASHER.hash("not a password of anybody")


class UsersError(Exception):
    """The users file or a new account cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str

    def may(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


def load_users(path: Path) -> dict[str, User]:
    """The accounts in ``path``; none if the file does not exist (only the anonymous view)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsersError(f"{path}: cannot read the users file: {exc.strerror}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UsersError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("users"), dict):
        raise UsersError(f'{path}: must be an object with a "users" table')
    users: dict[str, User] = {}
    for name, entry in doc["users"].items():
        where = f"{path}: users.{name}"
        if not USER_NAME.match(name):
            raise UsersError(f"{where}: not a valid user name")
        if not isinstance(entry, dict):
            raise UsersError(f"{where}: must be an object with role and password_hash")
        role, hashed = entry.get("role"), entry.get("password_hash")
        if role not in ROLES:
            raise UsersError(f"{where}.role: must be one of {', '.join(ROLES)} (found {role!r})")
        if not isinstance(hashed, str) or not hashed.startswith("$argon2"):
            raise UsersError(f"{where}.password_hash: not an argon2 hash")
        users[name] = User(name, role, hashed)
    return users


def add_user(path: Path, name: str, role: str, password: str) -> bool:
    """Create or replace the account ``name``; True if it is new. The file is replaced
    atomically. A new file is readable by its owner only (it holds hashes, not passwords, but
    those are worth an offline attack); a replaced one keeps its owner, group and mode (the
    service reads it as group ``bonderd``, docs/hmi.md), never readable by others."""
    if not USER_NAME.match(name):
        raise UsersError(
            f"NAME: {name!r}: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit"
        )
    if role not in ROLES:
        raise UsersError(f"--role: must be one of {', '.join(ROLES)} (found {role!r})")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise UsersError(
            f"password (stdin): must be {PASSWORD_MIN} to {PASSWORD_MAX} characters, "
            f"found {len(password)}"
        )
    existing = load_users(path)
    new = name not in existing
    table = {u.name: {"role": u.role, "password_hash": u.password_hash} for u in existing.values()}
    table[name] = {"role": role, "password_hash": _HASHER.hash(password)}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        before: os.stat_result | None = path.stat()
    except FileNotFoundError:
        before = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"users": table}, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o600 if before is None else before.st_mode & 0o770)
        if before is not None:
            with contextlib.suppress(PermissionError):  # only root may give files away
                os.chown(tmp, before.st_uid, before.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return new


def verify(users: dict[str, User], name: str, password: str) -> User | None:
    """The user if the password is theirs, else None. Blocking and CPU-heavy: in a thread."""
    user = users.get(name)
    try:
        _HASHER.verify(user.password_hash if user is not None else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return user
