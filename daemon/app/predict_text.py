"""A prediction (docs/predict.md) as text for a person: `bonderd predict`, `bonderctl predict`."""

from __future__ import annotations

from typing import Any


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return (
            f"{v:.{digits}g}"
            if abs(v) < 1e-2 and v != 0
            else f"{v:.{digits}f}".rstrip("0").rstrip(".")
        )
    return str(v)


def prediction_text(p: dict[str, Any]) -> str:
    """One recipe's prediction (an entry of the document's ``recipes``) for a person."""
    parts: list[str] = []
    out = parts.append
    verdict = p["verdict"].upper()
    out(f"{p['source']}: predicted {verdict} ({p['recipe']['kind']} '{p['recipe']['name']}')\n")
    if p["verdict"] != "pass":
        out(f"  {p['result']}: {p['reason']}\n")
    out(f"  cycle {_num(p['cycle_s'], 1)} s:")
    out(", ".join(f" {s['name']} {_num(s['duration_s'], 1)} s" for s in p["steps"]) + "\n")
    out(f"  {'check':32} {'ok':4} {'value':>10} {'limit':>14} {'margin':>10} {'of window':>9}\n")
    for c in p["checks"]:
        unit = f" {c['unit']}" if c["unit"] else ""
        frac = "—" if c["margin_fraction"] is None else f"{c['margin_fraction']:.0%}"
        # A rule of order ("purge completed before pump_down started") has no number.
        limit = c["limit"] if len(str(c["limit"])) <= 14 else "(order)"
        out(
            f"  {c['check']:32} {'ok' if c['ok'] else 'FAIL':4} {_num(c['value']):>10} "
            f"{limit!s:>14} {_num(c['margin']) + unit:>10} {frac:>9}\n"
        )
    for i in p["interlocks"]:
        out(f"  interlock {i['code']} at t={_num(i['t_s'], 1)} s: {i['message']}\n")
    seeds = p["seeds"]
    if seeds:
        out(
            f"  over {seeds['n']} disturbed seeds: yield {seeds['yield']:.0%} "
            f"({seeds['passed']}/{seeds['n']}), cycle mean {_num(seeds['cycle_s']['mean'], 1)} s "
            f"max {_num(seeds['cycle_s']['max'], 1)} s\n"
        )
        out(f"  {'check':32} {'worst margin':>12} {'mean':>10} {'Cpk':>6} {'pass':>6}\n")
        for c in seeds["checks"]:
            out(
                f"  {c['check']:32} {_num(c['worst_margin']):>12} {_num(c['mean']):>10} "
                f"{_num(c['cpk'], 2):>6} {c['pass_share']:>6.0%}\n"
            )
    if "report" in p:
        out(f"  report (prediction): {p['report']}\n")
    return "".join(parts)
