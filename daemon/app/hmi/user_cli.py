"""`bonderd user add NAME --role R`: an account of the operator station (docs/hmi.md).

The password comes from stdin, never from the command line: typed twice at a terminal
(not echoed), else the first line of the input (`printf '%s\\n' "$PW" | bonderd user add …`).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from daemon.app.hmi.users import UsersError, add_user
from daemon.config import Settings

EXIT_OK, EXIT_INVALID = 0, 2


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsersError("password (stdin): the two entries differ")
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def run(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.users_file or settings.hmi.users_file
    try:
        new = add_user(path, args.name, args.role, _password())
    except UsersError as exc:
        print(f"bonderd: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"bonderd: {path}: cannot write the users file: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    what = "added" if new else "updated (new password and role)"
    print(f"bonderd: user {args.name} {what}, role {args.role}, in {path}")
    print("bonderd: a running daemon reads the file at start: restart it to use the change")
    return EXIT_OK
