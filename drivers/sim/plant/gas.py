"""The working space: one well-mixed gas volume with a pump, a leak, an N2 backfill valve and
an N2 vent line (and a tear, when the film tears). O2 is tracked as a partial pressure so
mixing is exact; the pressure gauge and the O2 analyzer read it.
"""

from __future__ import annotations

import math

from drivers.protocols import VALVE_N2_PURGE, VALVE_PUMP, VALVE_VENT
from drivers.sim.plant.core import PlantCore
from drivers.sim.plant.params import PlantParams


def gas_constants(p: PlantParams) -> tuple[float, ...]:
    """The parameters ``WorkingSpace._integrate_gas`` uses on every span, and what it derives
    from them, in the order it unpacks them (docs/adr/0120)."""
    p_atm = p.p_atm_mbar
    n2_b = p.n2_critical_ratio
    return (
        p_atm,
        1.0 / p_atm,
        1.0 / p.volume_l,
        p.leak_mbar_l_s,
        p.tear_conductance_l_s,
        p.o2_air_ppm * 1e-6,
        p.o2_n2_ppm * 1e-6,
        p.n2_flow_max_mbar_l_s,
        n2_b,
        1.0 / (1.0 - n2_b),
        1.0 / p.n2_supply_mbar,
        p.vent_conductance_l_s,
        p.pump_speed_l_s,
        p.pump_ultimate_mbar,
    )


class WorkingSpace(PlantCore):
    """The gas in the working space, its valves and pump, the gauge's and analyzer's view."""

    _k_gas: tuple[float, ...]  # from the parameters (``Plant.__init__``)

    def set_valve(self, name: str, open_: bool) -> None:
        if name not in self._valves:
            raise ValueError(f"unknown valve {name!r}")
        self.advance()
        self._valves[name] = open_

    def valves(self) -> dict[str, bool]:
        self.advance()
        return dict(self._valves)

    def pump_start(self) -> None:
        self.advance()
        if self._faults.pump_tripped:
            raise RuntimeError("pump tripped")
        self._pump_running = True

    def pump_stop(self) -> None:
        self.advance()
        self._pump_running = False

    @property
    def pump_running(self) -> bool:
        return self._pump_running

    @property
    def pump_tripped(self) -> bool:
        return self._faults.pump_tripped

    def _pumping(self) -> bool:
        return self._pump_running and self._valves[VALVE_PUMP]

    @property
    def pressure_mbar(self) -> float:
        return self._p_mbar

    @property
    def o2_ppm(self) -> float:
        return self._p_o2 / self._p_mbar * 1e6

    def gauge_fault(self) -> tuple[str | None, float]:
        """(None | "fail" | "stuck", stuck value mbar)."""
        return self._faults.gauge, self._faults.gauge_stuck_mbar

    def o2_sample(self) -> tuple[float, float]:
        """The analyzer's latest streamed value and the time it was measured."""
        self.advance()
        return self._o2_sample

    @property
    def o2_measuring(self) -> bool:
        return self._faults.o2 != "fail"

    # ------------------------------------------------------------- integration

    def _integrate_gas(self, n: int, h: float) -> list[float]:
        """Integrate the gas over one span of ``n`` substeps of ``h``.

        Returns the mean pressure over each substep (what the film and the gas conduction
        act on the chips with).
        """
        (
            p_atm,
            inv_patm,
            inv_v,
            leak0,
            tear_g,
            x_air,
            x_n2,
            n2_max,
            n2_b,
            n2_inv_span,
            inv_sup,
            vent_g,
            pump_s,
            p_ult,
        ) = self._k_gas
        faults = self._faults
        leak = leak0 + faults.extra_leak_mbar_l_s
        tear_c = tear_g if faults.torn else 0.0
        n2_on = self._valves[VALVE_N2_PURGE]
        vent_c = vent_g if self._valves[VALVE_VENT] else 0.0
        s_pump = pump_s if self._pump_running and self._valves[VALVE_PUMP] else 0.0

        def n2_flow(p_mbar: float) -> float:
            """N2 backfill throughput, ISO 6358: choked up to the critical pressure ratio,
            then an elliptic fall to zero at the supply pressure."""
            ratio = p_mbar * inv_sup
            if ratio <= n2_b:
                return n2_max
            if ratio >= 1.0:
                return 0.0
            r = (ratio - n2_b) * n2_inv_span
            return n2_max * math.sqrt(1.0 - r * r)

        # Conductance to the outside (leak, tear, vent), what it brings in as O2 below the
        # atmosphere, and the pressure's relaxation factors over one substep.
        g_out = leak * inv_patm + tear_c + vent_c
        g_in_o2 = (leak * inv_patm + tear_c) * x_air + vent_c * x_n2
        inv_g_out = 1.0 / g_out if g_out else 0.0
        e_out = math.exp(-g_out * h * inv_v)
        # The mean over the substep of a pressure relaxing with factor e: (1 − e) / (h/τ).
        m_out = (1.0 - e_out) / (g_out * h * inv_v) if g_out else 1.0
        inv_g_pump = 1.0 / (g_out + s_pump) if s_pump else 0.0
        e_pump = math.exp(-(g_out + s_pump) * h * inv_v)
        m_pump = (1.0 - e_pump) / ((g_out + s_pump) * h * inv_v) if s_pump else 1.0

        pr, po2 = self._p_mbar, self._p_o2
        p_means: list[float] = []

        for _ in range(n):
            # Working-space gas: throughputs in mbar·L/s; outflows carry the current mixture.
            # The leak, the tear, the vent and the pump are linear in the pressure: over the
            # substep the pressure relaxes exactly toward where they (and the N2 inflow, held
            # at its start value) balance. An explicit step would pump down or vent 2–7 %
            # too fast per time constant (vent τ 0.2 s, pump 0.67 s; docs/adr/0121).
            if n2_on:
                # The N2 inflow falls with the pressure near the supply's: its mean over the
                # substep (Heun: at the start and at the end predicted with the start value).
                q_n2 = n2_flow(pr)
                if s_pump and pr > p_ult:
                    p_pred = pr + (pr - (g_out * p_atm + s_pump * p_ult + q_n2) * inv_g_pump) * (
                        e_pump - 1.0
                    )
                elif g_out:
                    p_pred = pr + (pr - (g_out * p_atm + q_n2) * inv_g_out) * (e_out - 1.0)
                else:
                    p_pred = pr + h * q_n2 * inv_v
                q_n2 = 0.5 * (q_n2 + n2_flow(p_pred))
                # Nor can it fill past the supply pressure, where it stops (its slope is
                # infinite there: a step would overshoot).
                q_fill = (1.0 - pr * inv_sup) / (h * inv_v * inv_sup)
                q_n2 = q_fill if q_n2 > q_fill else q_n2
            else:
                q_n2 = 0.0
            x = po2 / pr
            if s_pump and pr > p_ult:
                p_inf = (g_out * p_atm + s_pump * p_ult + q_n2) * inv_g_pump
                p_mean = p_inf + (pr - p_inf) * m_pump
                pr = p_inf + (pr - p_inf) * e_pump
            elif g_out:
                p_inf = (g_out * p_atm + q_n2) * inv_g_out
                p_mean = p_inf + (pr - p_inf) * m_out
                pr = p_inf + (pr - p_inf) * e_out
            else:
                p_mean = pr + 0.5 * h * q_n2 * inv_v
                pr += h * q_n2 * inv_v
            # O2: what flowed in over the substep brings its own mixture (air through the leak
            # and the tear, N2 through the vent line and the backfill); what left (the pump, the
            # leak and the vent above the atmosphere) took the mixture of the substep's start.
            # po2 = x·(p_end − gas in) + O2 in: mixing is exact, pumping keeps the fraction.
            dp_atm = p_atm - p_mean
            if dp_atm > 0.0:
                gas_in = (g_out * dp_atm + q_n2) * h * inv_v
                po2 = x * (pr - gas_in) + (g_in_o2 * dp_atm + q_n2 * x_n2) * h * inv_v
            else:
                gas_in = q_n2 * h * inv_v
                po2 = x * (pr - gas_in) + q_n2 * x_n2 * h * inv_v
            # max() without the call: the same result (NaN and -0.0 included), 10x a cycle.
            pr = 1e-9 if pr < 1e-9 else pr
            po2 = 0.0 if po2 < 0.0 else po2
            p_means.append(p_mean)

        self._p_mbar, self._p_o2 = pr, po2
        return p_means
