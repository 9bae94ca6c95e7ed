"""``bonderd tune``: identify the chip's thermal model on the machine itself (ADR 0061).

The experiment is an ordinary vacuum-film bond run (chuck stabilize, purge, pump down,
reflow, cool, vent) through the executor, the interlocks and the safe state, with one
difference: during the reflow step the lamps are driven by :class:`IdentificationLoop`
instead of the profile controller —

- phase A, open loop: a staircase of lamp power steps well below the solder's solidus, which
  identifies the gain, the loss and the pair of lags;
- phase B, closed loop on the phase-A model: three times a ramp through the solder's melting
  band to liquidus + 25 °C, a hold, and a ramp back below solidus, which identifies the
  latent heat, the extra loss through molten joints, the component thermocouple's lag and
  which lag is the filament's.

The fit is daemon/thermal/fit.py (ADR 0064).
"""

from __future__ import annotations

from daemon.thermal.chuck_fit import CHUCK_SETPOINT_C, ChuckModel
from daemon.thermal.component_fit import ComponentModel
from daemon.thermal.fit import Record, fit_linear
from daemon.thermal.loop import ChipController, ChipLoop, Profile, ThermalModel

# Phase A: (lamp %, seconds). From a chip near room temperature this stays below ~130 °C
# on the bonder's nameplate numbers, far from any solder's solidus, and every step is long
# against the lags and short against the loss time constant, so both are seen.
STAIRCASE: tuple[tuple[float, float], ...] = (
    (10.0, 8.0),
    (2.0, 5.0),
    (14.0, 6.0),
    (4.0, 6.0),
    (12.0, 5.0),
    (0.0, 5.0),
)
PEAK_OVER_LIQUIDUS_C = 25.0
# The experiment's own conformance: the joints went fully molten. Its preliminary loop has
# no molten-joint loss in its model (phase B measures it) and integrates only near the
# setpoint, so a chip whose joints conduct much settles short of the peak: 232 °C on a
# 15 J/K chip.
PEAK_MIN_OVER_LIQUIDUS_C = 5.0
RAMP_C_PER_S = 6.0
PEAK_HOLD_S = 6.0  # per cycle: the molten joints' loss, steady
BELOW_SOLIDUS_C = 15.0
# Phase B goes through the melting band and back this many times: every crossing is evidence
# of the latent heat, the component thermocouple's lag and the split of the lag pair.
CYCLES = 3
SETTLE_BELOW_S = 2.0
# Phase A's own controller needs lags before they are fitted; any value of the right order
# keeps that loop stable, and phase B is fitted afterwards with the fitted ones.
PRELIMINARY_LAG_S = 0.3


class IdentificationLoop:
    """A ChipLoop that runs the identification experiment instead of following a profile."""

    def __init__(self, melt: tuple[float, float]) -> None:
        self.melt = melt
        self.record = Record()
        self._t0: float | None = None
        self._inner: ChipController | None = None
        self._phase_b: Profile | None = None
        self._tb0 = 0.0
        self._reflow_profile: Profile | None = None
        self.phase_a_model: ThermalModel | None = None
        self.done = False

    @property
    def expected_c(self) -> float | None:
        return None  # the reflow step's clock runs plainly: this is not a profile

    def duration_s(self) -> float:
        """An upper bound of the experiment's length, for sizing the reflow step."""
        solidus, liquidus = self.melt
        span = liquidus + PEAK_OVER_LIQUIDUS_C - 20.0
        down = liquidus + PEAK_OVER_LIQUIDUS_C - (solidus - BELOW_SOLIDUS_C)
        cycle = (2.0 * down) / RAMP_C_PER_S + PEAK_HOLD_S + SETTLE_BELOW_S
        return sum(s for _, s in STAIRCASE) + span / RAMP_C_PER_S + CYCLES * cycle + 10.0

    def update(
        self,
        t: float,
        profile: Profile,
        t_profile: float,
        *,
        measured_c: float,
        sink_c: float,
        cap_pct: float,
    ) -> float:
        if self._t0 is None:
            self._t0 = t
        elapsed = t - self._t0
        phase = "A"
        u = 0.0
        edge = 0.0
        for pct, seconds in STAIRCASE:
            if elapsed < edge + seconds:
                u = pct
                break
            edge += seconds
        else:
            phase = "B"
            u = self._phase_b_power(t, profile, t_profile, measured_c, sink_c, cap_pct)
        u = max(0.0, min(cap_pct, u))
        rec = self.record
        rec.t.append(t)
        rec.u.append(u)
        rec.y.append(measured_c)
        rec.sink.append(sink_c)
        rec.phase.append(phase)
        return u

    def _phase_b_power(  # noqa: PLR0917 - the loop's own arguments, passed on
        self,
        t: float,
        profile: Profile,
        t_profile: float,
        measured_c: float,
        sink_c: float,
        cap_pct: float,
    ) -> float:
        if self._inner is None:
            a = [i for i, p in enumerate(self.record.phase) if p == "A"]
            rec = self.record
            model = fit_linear(
                [rec.t[i] for i in a],
                [rec.u[i] for i in a],
                [rec.y[i] for i in a],
                [rec.sink[i] for i in a],
                lags=(PRELIMINARY_LAG_S,),
            )
            self.phase_a_model = model
            # The preliminary loop knows nothing of the latent heat: it is what phase B
            # measures. Phase B runs on the plain clock.
            self._inner = ChipController(model, None)
            solidus, liquidus = self.melt
            from daemon.recipe.model import Segment  # noqa: PLC0415 - avoids a cycle

            cycle = [
                Segment(
                    ramp_c_per_s=RAMP_C_PER_S,
                    to_c=liquidus + PEAK_OVER_LIQUIDUS_C,
                    hold_s=PEAK_HOLD_S,
                ),
                Segment(
                    ramp_c_per_s=RAMP_C_PER_S,
                    to_c=solidus - BELOW_SOLIDUS_C,
                    hold_s=SETTLE_BELOW_S,
                ),
            ]
            self._phase_b = Profile(
                measured_c,
                cycle * CYCLES,
                # No recipe rate limit here, and the latent heat is not in this loop's
                # model: let the feedback bring the chip through the band.
                catch_up_c_s=5.0,
            )
            self._tb0 = t
        assert self._phase_b is not None
        tb = t - self._tb0
        if self._reflow_profile is None:
            self._reflow_profile = profile
        if tb >= self._phase_b.duration_s:
            self.done = True
            if profile is self._reflow_profile:
                # Past the experiment, still in the reflow step: hold where phase B ended.
                return self._inner.update(
                    t,
                    self._phase_b,
                    self._phase_b.duration_s,
                    measured_c=measured_c,
                    sink_c=sink_c,
                    cap_pct=cap_pct,
                )
            # The cool step that follows: its profile, with the same loop (no gap).
            return self._inner.update(
                t, profile, t_profile, measured_c=measured_c, sink_c=sink_c, cap_pct=cap_pct
            )
        return self._inner.update(
            t, self._phase_b, tb, measured_c=measured_c, sink_c=sink_c, cap_pct=cap_pct
        )


def loop_factory(melt: tuple[float, float]) -> tuple[IdentificationLoop, object]:
    """The loop, and a ControllerFactory that hands it to the run's reflow step."""
    loop = IdentificationLoop(melt)

    def factory(model: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return loop

    return loop, factory


# ----------------------------------------------------------------- the run around it

# SAC305: the solder on the simulated plant and on the tuning coupon (docs/thermal-control.md).
DEFAULT_MELT = (217.0, 220.0)
# The chip's experiment runs on this chuck (the fit's accuracy on other plants,
# tests/test_tune.py, was established there, and moves when the chuck does).
EXPERIMENT_CHUCK_C = 25.0
# The chuck run's chuck_stabilize, its first step: the chuck and chiller's own phase.
CHUCK_STEP_INDEX = 0
# The chuck run's reflow: an ordinary profile on the model just identified, held briefly.
CHUCK_RUN_HOLD_S = 5.0
_EXPERIMENT_HEADER = """\
# bonderd tune: identification of the chip's thermal model (daemon/thermal/tune.py). The reflow
# step's lamps follow the identification experiment, not this profile.
"""
_CHUCK_RUN_HEADER = """\
# bonderd tune, second run: the chuck and its chiller (daemon/thermal/chuck_fit.py). A cold
# chuck step the chiller takes at full capacity, then a bond on the chip model just identified.
"""


def experiment_recipe(melt: tuple[float, float], hold: float) -> str:
    """A lamp experiment of ``hold`` seconds as a vacuum-film bond recipe (TOML text)."""
    return _tune_recipe(
        melt,
        hold,
        EXPERIMENT_CHUCK_C,
        _EXPERIMENT_HEADER,
        "bonderd-tune",
        "thermal model identification",
    )


def chuck_recipe(melt: tuple[float, float]) -> str:
    """The chuck run: a cold chuck step (``CHUCK_SETPOINT_C``), then a short bond."""
    return _tune_recipe(
        melt,
        CHUCK_RUN_HOLD_S,
        CHUCK_SETPOINT_C,
        _CHUCK_RUN_HEADER,
        "bonderd-tune-chuck",
        "chuck and chiller identification",
    )


def _tune_recipe(  # noqa: PLR0917 - the recipe's few variable parts
    melt: tuple[float, float],
    hold: float,
    chuck_c: float,
    header: str,
    name: str,
    description: str,
) -> str:
    solidus, liquidus = melt
    peak = liquidus + PEAK_OVER_LIQUIDUS_C
    return f"""\
{header}kind = "vacuum_film_bond"
name = "{name}"
description = "{description}"

[materials.solder]
name = "tuning coupon"
solidus_c = {solidus!r}
liquidus_c = {liquidus!r}

[materials.component]
polymer = "polyimide"
tg_c = 360.0
tg_margin_c = 40.0

[atmosphere]
o2_max_ppm = 50.0
o2_max_partial_mbar = 0.05

[[steps]]
type = "chuck_stabilize"
setpoint_c = {chuck_c!r}
tolerance_c = 1.0
settle_s = 5.0
timeout_s = 300.0

[[steps]]
type = "purge"
cycles = 2
pump_to_mbar = 1.0
backfill_to_mbar = 1000.0
o2_target_ppm = 10.0
timeout_s = 180.0

[[steps]]
type = "pump_down"
target_mbar = 2.0
timeout_s = 120.0

[[steps]]
type = "reflow"
control_tc = "chip"
peak_window_c = {{ min = {liquidus + PEAK_MIN_OVER_LIQUIDUS_C!r}, max = {peak + 10.0!r} }}
time_above_liquidus_s = {{ min = 1.0, max = 600.0 }}
max_ramp_c_per_s = 10.0
timeout_s = {hold + 120.0!r}

[[steps.segments]]
ramp_c_per_s = {RAMP_C_PER_S!r}
to_c = {peak!r}
hold_s = {hold!r}

[[steps]]
type = "cool"
to_c = 100.0
max_rate_c_per_s = 3.0
keep_vacuum = true
timeout_s = 300.0

[[steps]]
type = "vent"
to_mbar = 950.0
timeout_s = 60.0
"""


def section_toml(model: ThermalModel, identified_at: str) -> str:
    """The ``[thermal]`` section of the configuration file, as bonderd tune prints it."""
    return (
        "[thermal]\n"
        "# The chip's thermal model, identified by bonderd tune (docs/thermal-control.md).\n"
        "# Per chip heat capacity: °C/s per % of lamp power, losses per second, latent heat\n"
        "# in kelvin of chip temperature.\n"
        f"gain_c_s_per_pct = {model.gain_c_s_per_pct:.5g}\n"
        f"loss_per_s = {model.loss_per_s:.5g}\n"
        f"molten_loss_per_s = {model.molten_loss_per_s:.5g}\n"
        f"latent_heat_k = {model.latent_heat_k:.5g}\n"
        f"filament_tau_s = {model.filament_tau_s:.4g}\n"
        f"tc_tau_s = {model.tc_tau_s:.4g}\n"
        f"radiation_c_s_per_1e10_k4 = {model.radiation_c_s_per_1e10_k4:.4g}\n"
        f'identified_at = "{identified_at}"\n'
    )


def chuck_keys(chuck: ChuckModel, component: ComponentModel) -> dict[str, float]:
    """The ``[chuck_model]`` values of both fits (ADR 0175, 0176)."""
    return {
        "cool_rate_k_s": chuck.cool_rate_k_s,
        "lag_s": chuck.lag_s,
        "component_from_chip_per_s": component.from_chip_per_s,
        "component_to_chuck_per_s": component.to_chuck_per_s,
    }


def chuck_section_toml(chuck: ChuckModel, component: ComponentModel, identified_at: str) -> str:
    """The ``[chuck_model]`` section, as bonderd tune prints it (ADR 0175, 0176)."""
    return (
        "[chuck_model]\n"
        "# The chuck side, identified by bonderd tune (docs/predict.md): the chuck's cooling\n"
        "# rate with the chiller at full capacity, K/s, and its lag behind the coolant, s (the\n"
        "# chuck run); the component's couplings to chip and chuck per its heat capacity, 1/s\n"
        "# (the experiment's phase A). Only the twin reads it.\n"
        f"cool_rate_k_s = {chuck.cool_rate_k_s:.5g}\n"
        f"lag_s = {chuck.lag_s:.4g}\n"
        f"component_from_chip_per_s = {component.from_chip_per_s:.5g}\n"
        f"component_to_chuck_per_s = {component.to_chuck_per_s:.5g}\n"
        f'identified_at = "{identified_at}"\n'
    )


def replace_section(original: str, section: str, header: str = "[thermal]") -> str:
    """``original`` with its ``header`` table replaced by ``section`` (or ``section``
    appended); every other byte stays as it was (ADR 0061).

    The table runs from its header line to the next table header at the start of a line, or
    the end of the file; comments just above the next header stay with that header.
    """
    lines = original.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.strip() == header), None)
    if start is None:
        sep = (
            ""
            if not original or original.endswith("\n\n")
            else ("\n" if original.endswith("\n") else "\n\n")
        )
        return original + sep + section
    end = start + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    # Leave the comment block (and blank lines) that introduces the next table in place.
    keep = end
    while keep > start + 1 and (
        lines[keep - 1].strip() == "" or lines[keep - 1].lstrip().startswith("#")
    ):
        keep -= 1
    tail = lines[keep:]
    if end < len(lines) and tail and tail[0].strip() != "":
        tail = ["\n", *tail]
    return "".join(lines[:start]) + section + "".join(tail)
