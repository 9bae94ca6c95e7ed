"""`bonderctl`: the operator's and MES's command-line client of `bonderd serve` over MQTT.

Exit codes (CONTRACT.md): 0 ok reply, 1 error reply (or the broker cannot be reached),
3 no reply within the timeout. ``--local`` sends on ``…/cmd/local``, the topic the broker
gives to the machine's own operator (``take-control`` / ``release-control`` need it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from daemon.config import ConfigError, MqttSettings, load_settings
from daemon.mes.mqtt import CommandClient, CommandTimeout, is_mqtt_error

EXIT_OK, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 3
DEFAULT_CONFIG = Path("/etc/bonderd/bonderd.toml")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bonderctl", description="Command a bonder over MQTT")
    p.add_argument("--broker", help="mqtt://[user[:password]@]host[:port] or mqtts://…")
    p.add_argument("--equipment", help="equipment id (default: from the config, bonder-01)")
    p.add_argument(
        "--config", type=Path, help=f"daemon config to take defaults from ({DEFAULT_CONFIG})"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
    p.add_argument("--local", action="store_true", help="command as the machine's local operator")
    p.add_argument("--json", action="store_true", help="print the whole reply as JSON")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status")
    st = sub.add_parser("start", help="start a run: a library name or a recipe file")
    st.add_argument("recipe")
    st.add_argument("--lot", required=True)
    st.add_argument("--operator")
    st.add_argument("--version", type=int, help="library version (default: newest)")
    sub.add_parser("hold")
    sub.add_parser("resume")
    ab = sub.add_parser("abort")
    ab.add_argument("--reason")
    sub.add_parser("reset")
    al = sub.add_parser("alarms", help="list active alarms, or acknowledge one with --ack")
    al.add_argument("--ack", metavar="CODE")
    sub.add_parser("recipes")
    pr = sub.add_parser("put-recipe", help="add a recipe file to the library")
    pr.add_argument("file", type=Path)
    ru = sub.add_parser("runs", help="the recorded runs, newest first")
    ru.add_argument("--limit", type=int, default=20, help="how many (1 to 500, default 20)")
    rp = sub.add_parser("report", help="fetch a run's HTML report and write it locally")
    rp.add_argument("run_id", metavar="RUN_ID")
    rp.add_argument("--out", type=Path, default=Path("."), help="directory to write it to (.)")
    sub.add_parser("take-control")
    sub.add_parser("release-control")
    sub.add_parser("watch", help="live state, events and telemetry until Ctrl-C")
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
        return "start", start
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


def _print_reply(args: argparse.Namespace, reply: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
        return
    if not reply.get("ok"):
        err = reply.get("error") or {}
        print(f"error [{err.get('code')}]: {err.get('message')}", file=sys.stderr)
        return
    result = reply.get("result") or {}
    if args.command == "alarms" and not args.ack:
        alarms = result.get("alarms") or []
        if not alarms:
            print("no active alarms")
        for a in alarms:
            print(f"{a.get('code')} [{a.get('severity')}] {a.get('message')}")
        return
    if args.command == "recipes":
        for r in result.get("recipes", []):
            print(f"{r['name']}  v{r['version']}  {r['sha256'][:12]}  {r['added_at']}")
        return
    if args.command == "runs":
        _print_runs(result.get("runs") or [])
        return
    if args.command == "status":
        print(
            f"state {result.get('state')}  control {result.get('control')}  "
            f"e10 {result.get('e10')}  run {result.get('run_id') or '-'}  "
            f"step {result.get('step') or '-'}  alarms {len(result.get('alarms') or [])}"
        )
        return
    print(json.dumps(result, ensure_ascii=False))


def _print_runs(runs: list[dict[str, Any]]) -> None:
    if not runs:
        print("no runs recorded")
        return
    rows = [("RUN ID", "RECIPE", "LOT", "RESULT", "STARTED")]
    for r in runs:
        recipe = r.get("recipe") or {}
        rows.append(
            (
                str(r.get("run_id")),
                f"{recipe.get('name')} v{recipe.get('version')}",
                str(r.get("lot_id")),
                str(r.get("result") or r.get("state")),
                str(r.get("started_at")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]))


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


async def _watch(client: CommandClient) -> int:
    await client.subscribe("availability", "state", "events", "telemetry")
    while True:
        msg = await client.received()
        kind = msg.topic.rsplit("/", 1)[-1]
        text = msg.payload.decode("utf-8", errors="replace")
        if kind == "telemetry":
            try:
                t = json.loads(text)
                temps = " ".join(f"{k} {v:.1f}" for k, v in t["temps_c"].items() if v is not None)
                print(
                    f"telemetry  {temps} °C  p {t['pressure_mbar']} mbar  "
                    f"O2 {t['o2_ppm']} ppm  lamps {t['lamp_pct']} %"
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                print(f"telemetry  {text}")
        else:
            print(f"{kind:<12} {text}", flush=True)


async def _main(args: argparse.Namespace) -> int:
    mqtt, equipment = _mqtt_settings(args)
    try:
        async with CommandClient.connect(mqtt, equipment) as client:
            if args.command == "watch":
                return await _watch(client)
            command, payload = _request(args)
            try:
                reply = await client.request(
                    command, payload, timeout_s=args.timeout, local=args.local
                )
            except CommandTimeout as exc:
                print(f"bonderctl: {command}: {exc} (is bonderd serve running?)", file=sys.stderr)
                return EXIT_TIMEOUT
    except Exception as exc:
        if is_mqtt_error(exc):
            print(f"bonderctl: broker {mqtt.host}:{mqtt.port}: {exc}", file=sys.stderr)
            return EXIT_ERROR
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
        return EXIT_ERROR
    except OSError as exc:
        print(f"bonderctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
