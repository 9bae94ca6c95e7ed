"""`bonderctl`: the operator's and MES's command-line client of `bonderd serve` over MQTT.

Human-readable output for every command; ``--json`` prints the daemon's whole reply (for
``watch``: one JSON object per message) for scripts. Exit codes (CONTRACT.md, README): see
``EXIT_CODES``. ``--local`` sends on ``…/cmd/local``, the topic the broker gives to the
machine's own operator (``take-control`` / ``release-control`` need it).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from daemon.app.o2 import o2_text
from daemon.app.predict_text import prediction_text
from daemon.app.tables import print_runs, print_table
from daemon.config import ConfigError, MqttSettings, load_settings
from daemon.mes.mqtt import CommandClient, CommandTimeout, is_mqtt_error

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_TIMEOUT, EXIT_NO_BROKER = 0, 1, 2, 3, 4
EXIT_CODES = """\
exit codes:
  0  the daemon replied ok (watch: stopped with Ctrl-C)
  1  the daemon replied with an error; its code and message are printed
  2  usage: a bad option, an invalid configuration, a file that cannot be read or written
  3  no reply within --timeout: the broker answered, but no bonderd serve for this
     equipment did (is it running? is --equipment right?)
  4  the broker cannot be reached or refused the connection (address, port, TLS,
     user and password)"""
DEFAULT_CONFIG = Path("/etc/bonderd/bonderd.toml")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return ""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with EXIT_USAGE (2, argparse's own) and point at --help."""

    def error(self, message: str) -> Any:  # argparse types it NoReturn
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="bonderctl",
        description="Command a bonder (bonderd serve) over MQTT: status, runs, holds, alarms, "
        "recipes, reports, live view.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://[user[:password]@]host[:port] or mqtts://… (default: [mqtt] of --config)",
    )
    p.add_argument(
        "--equipment", metavar="ID", help="equipment id (default: from the config, bonder-01)"
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"daemon config to take the broker and equipment from (default {DEFAULT_CONFIG}, "
        "if present)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for a reply (default 10); none: exit 3",
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="command as the machine's local operator (…/cmd/local; the broker's ACL decides)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the daemon's whole reply as JSON (scripts)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=text, description=text, epilog=EXIT_CODES, formatter_class=fmt
        )

    def operator(cmd: argparse.ArgumentParser, what: str) -> None:
        cmd.add_argument(
            "--operator",
            default=_login(),
            metavar="NAME",
            help=f"who {what}, for the run record and report (default: your login name)",
        )

    add("status", "the machine's state, control mode, run, step, alarms and control loop")
    st = add("start", "start a run: a recipe from the library by name, or a recipe file")
    st.add_argument("recipe", metavar="RECIPE", help="library name, or a path to a .toml file")
    st.add_argument("--lot", required=True, metavar="ID", help="the lot id (required)")
    operator(st, "starts the run")
    st.add_argument(
        "--version", type=int, metavar="N", help="library version (default: the newest)"
    )
    st.add_argument(
        "--override-prediction",
        metavar="WHO_AND_WHY",
        help="run a recipe the twin predicts to fail (twin_gate = refuse): the engineer "
        "and the reason, recorded with the run",
    )
    pd = add("predict", "predict a recipe on the machine's twin: verdict, margins, cycle time")
    pd.add_argument("recipe", metavar="RECIPE", help="library name, or a path to a .toml file")
    pd.add_argument(
        "--version", type=int, metavar="N", help="library version (default: the newest)"
    )
    pd.add_argument(
        "--seeds", type=int, default=0, metavar="N", help="disturbed seeds, 0 to 100 (default 0)"
    )
    operator(add("hold", "hold the run at the next step boundary (lamps off)"), "holds")
    operator(add("resume", "resume a held run"), "resumes")
    ab = add("abort", "abort the run into the safe state")
    ab.add_argument("--reason", help="why, for the run record (default: who aborted)")
    add("reset", "clear a latched interlock trip, and an aborted run's state")
    al = add("alarms", "list the active alarms, or acknowledge one with --ack")
    al.add_argument("--ack", metavar="CODE", help="acknowledge (clear) the alarms with this code")
    add("recipes", "the recipe library: the newest version of each recipe")
    pr = add("put-recipe", "add a recipe file to the library (a new version if it changed)")
    pr.add_argument("file", type=Path, metavar="FILE", help="the recipe (.toml)")
    ru = add("runs", "the recorded runs, newest first")
    ru.add_argument(
        "--limit", type=int, default=20, metavar="N", help="how many (1 to 500, default 20)"
    )
    rp = add("report", "fetch a run's HTML report and write it as OUT/RUN_ID.html")
    rp.add_argument("run_id", metavar="RUN_ID", help="the run (bonderctl runs lists them)")
    rp.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="directory (default: here)"
    )
    add("take-control", "take local control: the MES's commands are refused (needs --local)")
    add("release-control", "give control back to the MES (needs --local)")
    add("watch", "live state, events and telemetry until Ctrl-C")
    return p


def _mqtt_settings(args: argparse.Namespace) -> tuple[MqttSettings, str]:
    settings = load_settings(args.config or DEFAULT_CONFIG, required=args.config is not None)
    mqtt = settings.mqtt
    if args.broker:
        url = urlsplit(args.broker if "://" in args.broker else f"mqtt://{args.broker}")
        if url.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(f"--broker: scheme must be mqtt or mqtts, not {url.scheme!r}")
        update: dict[str, Any] = {
            "host": url.hostname or mqtt.host,
            "port": url.port or (8883 if url.scheme == "mqtts" else 1883),
        }
        if url.username:
            update["username"] = unquote(url.username)
            update["password"] = SecretStr(unquote(url.password)) if url.password else None
        mqtt = mqtt.model_copy(update=update)
    return mqtt, args.equipment or settings.equipment_id


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    c = args.command
    if c == "start":
        path = Path(args.recipe)
        start: dict[str, Any] = {"lot_id": args.lot}
        if args.operator:
            start["operator"] = args.operator
        if path.suffix == ".toml" and path.is_file():
            start["recipe_toml"] = path.read_text(encoding="utf-8")
        else:
            start["recipe"] = args.recipe
            if args.version is not None:
                start["version"] = args.version
        if args.override_prediction:
            start["override_prediction"] = args.override_prediction
        return "start", start
    if c == "predict":
        path = Path(args.recipe)
        ask: dict[str, Any] = {"seeds": args.seeds}
        if path.suffix == ".toml" and path.is_file():
            ask["recipe_toml"] = path.read_text(encoding="utf-8")
        else:
            ask["recipe"] = args.recipe
            if args.version is not None:
                ask["version"] = args.version
        return "predict", ask
    if c in ("hold", "resume"):
        return c, ({"operator": args.operator} if args.operator else {})
    if c == "abort":
        return "abort", ({"reason": args.reason} if args.reason else {})
    if c == "alarms":
        return ("ack_alarm", {"code": args.ack}) if args.ack else ("status", {})
    if c == "recipes":
        return "list_recipes", {}
    if c == "runs":
        return "list_runs", {"limit": args.limit}
    if c == "report":
        return "get_report", {"run_id": args.run_id}
    if c == "put-recipe":
        text = args.file.read_text(encoding="utf-8")
        name = _recipe_name(text) or args.file.stem
        return "put_recipe", {"name": name, "recipe_toml": text}
    return c.replace("-", "_"), {}


def _recipe_name(text: str) -> str | None:
    import tomllib  # noqa: PLC0415 - only this sub-command reads TOML

    try:
        name = tomllib.loads(text).get("name")
    except tomllib.TOMLDecodeError:
        return None
    return name if isinstance(name, str) else None


def _dash(v: object) -> str:
    return "—" if v is None or v == "" else str(v)


def _alarm_lines(alarms: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{a.get('code')} [{a.get('severity')}] {a.get('message')}" for a in alarms]


def _status_lines(r: dict[str, Any]) -> list[str]:
    alarms = r.get("alarms") or []
    lines = [
        f"state {r.get('state')}  control {r.get('control')}  e10 {r.get('e10')}  "
        f"run {_dash(r.get('run_id'))}  step {_dash(r.get('step'))}  alarms {len(alarms)}"
    ]
    recipe = r.get("recipe")
    if isinstance(recipe, dict):
        lines.append(f"recipe {recipe.get('name')} v{recipe.get('version')}")
    lines += [f"alarm  {a}" for a in _alarm_lines(alarms)]
    last = r.get("last_result")
    if isinstance(last, dict):
        lines.append(
            f"last run {last.get('run_id')}: {last.get('result')}"
            + (f" — {last['reason']}" if last.get("reason") else "")
        )
    loop = r.get("control_loop")
    if isinstance(loop, dict):
        lines.append(
            f"control loop: period {_dash(loop.get('period_ms'))} ms, late p99 "
            f"{_dash(loop.get('late_p99_ms'))} ms (last minute), overruns "
            f"{_dash(loop.get('overruns'))}"
        )
    if "software_version" in r:
        lines.append(
            f"bonderd {r.get('software_version')}, events pending "
            f"{_dash(r.get('events_pending'))}, last seq {_dash(r.get('last_seq'))}"
        )
    return lines


def _human(args: argparse.Namespace, r: dict[str, Any]) -> list[str]:
    """The reply's result as lines a person reads."""
    c = args.command
    if c == "status":
        return _status_lines(r)
    if c == "alarms":
        if args.ack:
            rest = _alarm_lines(r.get("alarms") or [])
            return [
                f"cleared {r.get('cleared')} alarm(s) {args.ack}",
                *(rest or ["no active alarms"]),
            ]
        return _alarm_lines(r.get("alarms") or []) or ["no active alarms"]
    if c == "start":
        recipe = r.get("recipe") or {}
        return [
            f"started run {r.get('run_id')}: recipe {recipe.get('name')} v{recipe.get('version')} "
            f"(sha256 {str(recipe.get('sha256'))[:12]}), lot {r.get('lot_id')}"
        ]
    if c == "hold":
        return [f"hold by {r.get('by')}: state {r.get('state')} (held at the next step boundary)"]
    if c == "resume":
        return [f"resumed by {r.get('by')}: state {r.get('state')}"]
    if c == "abort":
        return [f"aborting run {_dash(r.get('run_id'))}: state {r.get('state')}"]
    if c in ("reset",):
        return [f"state {r.get('state')}"]
    if c in ("take-control", "release-control"):
        return [f"control {r.get('control')}"]
    if c == "predict":
        return prediction_text(r["recipes"][0]).rstrip("\n").split("\n")
    if c == "put-recipe":
        what = "added as a new version" if r.get("new_version") else "unchanged (same content)"
        lines = [
            f"recipe {r.get('name')} v{r.get('version')} {what}, sha256 {str(r.get('sha256'))[:12]}"
        ]
        p = r.get("prediction")
        if isinstance(p, dict):
            checks = ", ".join(p.get("failed_checks") or []) or "none"
            lines.append(
                f"twin predicts {str(p.get('verdict')).upper()}: cycle {p.get('cycle_s')} s, "
                f"min margin {p.get('min_margin')}, failing checks: {checks}"
            )
        return lines
    # Anything else (a newer daemon's command): its fields, one a line.
    return [f"{k}: {v if not isinstance(v, dict | list) else json.dumps(v)}" for k, v in r.items()]


def _print_reply(args: argparse.Namespace, reply: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    if not reply.get("ok"):
        err = reply.get("error") or {}
        print(
            f"bonderctl: {args.command}: error [{err.get('code')}]: {err.get('message')}",
            file=sys.stderr,
        )
        return
    if args.json:
        return
    result = reply.get("result") or {}
    if args.command == "recipes":
        recipes = result.get("recipes") or []
        if not recipes:
            print("the library holds no recipe")
            return
        print_table(
            ("NAME", "VERSION", "SHA256", "ADDED", "SOURCE"),
            [
                (
                    str(r.get("name")),
                    f"v{r.get('version')}",
                    str(r.get("sha256"))[:12],
                    str(r.get("added_at")),
                    str(r.get("source", "")),
                )
                for r in recipes
            ],
        )
        return
    if args.command == "runs":
        print_runs(result.get("runs") or [])
        return
    for line in _human(args, result):
        print(line)


def _save_report(out_dir: Path, result: dict[str, Any]) -> Path:
    """Write the reply's HTML as ``<out_dir>/<run_id>.html``; the daemon's path is its own."""
    run_id = str(result.get("run_id"))
    if Path(run_id).name != run_id or run_id.startswith("."):
        # The name comes from the broker: it must not steer the file out of --out.
        raise OSError(f"refusing to write a report for run id {run_id!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{run_id}.html"
    target.write_text(str(result.get("html", "")), encoding="utf-8")
    return target


def watch_line(kind: str, text: str) -> str:
    """One message of ``watch`` as a person reads it."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return f"{kind:<12} {text}"
    try:
        if kind == "telemetry":
            temps = "  ".join(
                f"{k} {v:.1f}" for k, v in (doc.get("temps_c") or {}).items() if v is not None
            )
            p = doc.get("pressure_mbar")
            lamps = doc.get("lamp_pct")
            return (
                f"{kind:<12} {temps} °C  p {_dash(None if p is None else f'{p:.3g}')} mbar  "
                f"{o2_text(doc.get('o2_ppm'), p)}  lamps {_dash(lamps)} %"
                + (f"  step {doc['step']}" if doc.get("step") else "")
            )
        if kind == "state":
            return f"{kind:<12} " + _status_lines(doc)[0]
        if kind == "events":
            rest = "  ".join(
                f"{k} {v if not isinstance(v, dict | list) else json.dumps(v, ensure_ascii=False)}"
                for k, v in doc.items()
                if k not in ("event", "seq", "ts")
            )
            return f"{kind:<12} #{doc.get('seq')} {doc.get('event')}  {rest}".rstrip()
    except (TypeError, ValueError, AttributeError):
        pass
    return f"{kind:<12} {text}"


async def _watch(client: CommandClient, as_json: bool) -> int:
    await client.subscribe("availability", "state", "events", "telemetry")
    while True:
        msg = await client.received()
        kind = msg.topic.rsplit("/", 1)[-1]
        text = msg.payload.decode("utf-8", errors="replace")
        if as_json:
            try:
                payload: Any = json.loads(text)
            except ValueError:
                payload = text
            print(json.dumps({"topic": kind, "payload": payload}, ensure_ascii=False), flush=True)
        else:
            print(watch_line(kind, text), flush=True)


async def _main(args: argparse.Namespace) -> int:
    mqtt, equipment = _mqtt_settings(args)
    command, payload = ("watch", {}) if args.command == "watch" else _request(args)
    try:
        async with CommandClient.connect(mqtt, equipment) as client:
            if args.command == "watch":
                return await _watch(client, args.json)
            try:
                reply = await client.request(
                    command, payload, timeout_s=args.timeout, local=args.local
                )
            except CommandTimeout as exc:
                print(
                    f"bonderctl: {command}: {exc} from {equipment} (is bonderd serve running? "
                    "is --equipment right?)",
                    file=sys.stderr,
                )
                return EXIT_TIMEOUT
    except Exception as exc:
        if is_mqtt_error(exc):
            print(
                f"bonderctl: cannot reach the broker at {mqtt.host}:{mqtt.port}: {exc} "
                "(is it running? --broker URL)",
                file=sys.stderr,
            )
            return EXIT_NO_BROKER
        raise
    if args.command == "report" and reply.get("ok"):
        saved = _save_report(args.out, reply.get("result") or {})
        if not args.json:
            print(saved)
            return EXIT_OK
    _print_reply(args, reply)
    return EXIT_OK if reply.get("ok") else EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except ConfigError as exc:
        print(f"bonderctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"bonderctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
