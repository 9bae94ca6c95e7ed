"""The plant's discrete events: scheduled faults (and what each does to the plant), the O2
analyzer's sample instants, the end of a dispense shot, the I/O coupler's watchdog and the
vacuum holds engaging. ``Plant.advance`` integrates from one to the next, so each happens at
its exact time.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Set

from drivers.protocols import OUT_CHUCK_VACUUM, OUT_LAMP_CONTACTOR, OUT_SUPPORT_VACUUM
from drivers.sim.plant.fault_table import (
    FAULT_KINDS,
    FAULT_VALUE_OPTIONAL,
    FAULT_VALUE_REQUIRED,
    ActiveFaults,
    PlantFault,
    SupportsPlantFault,
    TcFault,
    fault_device_key,
)
from drivers.sim.plant.gas import WorkingSpace
from drivers.sim.plant.lift import LeadLift
from drivers.sim.plant.panel_thermal import PanelThermal


class PlantEvents(WorkingSpace, PanelThermal, LeadLift):
    """The fault queue and the instants at which the plant changes discontinuously."""

    # ----------------------------------------------------------------- faults

    def unresponsive(self, device: str) -> bool:
        """Whether the device named like a driver ("tc", "lamps", ...) does not answer."""
        return device in self._faults.unresponsive

    @property
    def unresponsive_devices(self) -> Set[str]:
        """The devices (named like drivers) that do not answer, as of now."""
        return self._faults.unresponsive

    def check_fault(self, fault: PlantFault) -> None:
        """Raise ValueError if this plant cannot apply the fault."""
        # The thermocouples on the machine now: a panel's instrumented sites are put on by
        # the recipe it was prepared for.
        key = fault_device_key(fault.device, self._p.zones, self._tc_channels)
        if key is None:
            raise ValueError(f"unknown fault device {fault.device!r}")
        if fault.kind not in FAULT_KINDS[key]:
            allowed = ", ".join(sorted(FAULT_KINDS[key]))
            raise ValueError(f"kind {fault.kind!r} not valid for {fault.device!r} ({allowed})")
        if fault.kind in FAULT_VALUE_REQUIRED and fault.value is None:
            raise ValueError(f"kind {fault.kind!r} needs a value")
        if key == "film.site_<n>":
            site, panel = int(fault.device[10:]), self._panel
            if panel is None or site >= panel.sites:
                raise ValueError(f"{fault.device!r}: no such site on the chuck")
            if fault.value is not None and not 0.0 < fault.value <= 1.0:
                raise ValueError("uneven: the share of the film's pressure must be in (0, 1]")
        if fault.value is not None:
            if not math.isfinite(fault.value):
                raise ValueError("fault value must be finite")
            if fault.kind not in FAULT_VALUE_REQUIRED | FAULT_VALUE_OPTIONAL:
                raise ValueError(f"kind {fault.kind!r} takes no value")

    def schedule_fault(
        self,
        fault: PlantFault | SupportsPlantFault,
        at_t: float,
        on_fire: Callable[[float], None] | None = None,
    ) -> int:
        """Apply ``fault`` when the plant's integration passes ``at_t`` (now, if already past).

        ``on_fire`` is called with the plant time the fault took effect. Returns a handle
        for ``cancel_fault``.
        """
        pf = fault if isinstance(fault, PlantFault) else fault.to_plant_fault()
        self.check_fault(pf)
        if not math.isfinite(at_t):
            raise ValueError(f"fault time must be finite, got {at_t}")
        handle = next(self._seq)
        heapq.heappush(self._fault_queue, (at_t, handle, pf, on_fire))
        return handle

    def cancel_fault(self, handle: int) -> bool:
        """Drop a scheduled fault that has not fired; False if there was none."""
        before = len(self._fault_queue)
        self._fault_queue = [e for e in self._fault_queue if e[1] != handle]
        heapq.heapify(self._fault_queue)
        return len(self._fault_queue) < before

    def clear_faults(self) -> None:
        """Repair everything and drop pending faults. Actuators stay as they are (a tripped
        pump or failed chiller stays stopped until started again)."""
        self.advance()
        self._fault_queue.clear()
        self._faults = ActiveFaults()
        self._sync_holds()  # a repaired hold pulls its vacuum again if its valve is open

    def _apply_fault(self, f: PlantFault) -> None:
        flt = self._faults
        dev, kind, val = f.device, f.kind, f.value
        if kind == "no_response":
            base = dev.split(".", 1)[0]
            if dev.startswith("tc."):
                ch = dev[3:]
                reading = self._tc_clean(ch)
                flt.tc[ch] = TcFault("no_response", self._t, 0.0, reading)
            else:
                # A zone's SCR not answering stalls the whole bank's bus transaction.
                flt.unresponsive.add(base)
            return
        if dev.startswith("tc."):
            ch = dev[3:]
            reading = self._tc_clean(ch)
            if kind == "stuck":
                flt.tc[ch] = TcFault(kind, self._t, reading if val is None else val, reading)
            else:
                flt.tc[ch] = TcFault(kind, self._t, 0.0 if val is None else val, reading)
        elif dev == "gauge":
            flt.gauge = kind
            if kind == "stuck":
                flt.gauge_stuck_mbar = self._p_mbar if val is None else val
        elif dev == "o2":
            flt.o2 = kind
            if kind == "stuck":
                flt.o2_stuck_ppm = self._o2_sample[0] if val is None else val
        elif kind == "leak":
            flt.extra_leak_mbar_l_s += val if val is not None else 0.0
        elif kind == "tear":
            flt.torn = True
        elif kind == "uneven":
            self._site_contact[int(dev[10:])] = 1.0 if val is None else val
            self._panel_k_band = None  # the site's constants again at the next span
        elif dev == "chiller":
            flt.chiller_failed = True
            self._chiller_running = False
            self._chiller_q = 0.0
        elif dev == "pump":
            flt.pump_tripped = True
            self._pump_running = False
        elif dev.startswith("lamps"):
            zones = range(self._p.zones) if dev == "lamps" else [int(dev[7:]) - 1]
            for z in zones:
                if kind == "fail":
                    flt.lamp_dead.add(z)
                else:
                    flt.lamp_stuck_pct[z] = 100.0 if val is None else val
        elif kind == "estop":
            flt.estop = True
            self._outputs[OUT_LAMP_CONTACTOR] = False
        elif kind == "door_open":
            flt.door_open = True
        elif dev == "zstage" and kind == "stall":
            # Following error: the axis stops (jammed, lost motor phase) while the
            # controller still runs its profile and reports busy.
            flt.zstage_stalled = True
            self._z_v = 0.0
        elif dev == "zstage":
            flt.zstage_failed = True
            self._z_moving = False
            self._z_v = 0.0
            self._z_target = self._z
        elif dev in (OUT_CHUCK_VACUUM, OUT_SUPPORT_VACUUM):
            flt.hold_failed.add(dev)
            self._sync_holds()
        elif dev == "uv":
            flt.uv_failed = True
            self._uv_shutter = False
        elif dev == "dispenser":
            flt.dispenser_failed = True
            self._disp_end = None

    # ----------------------------------------------------------------- events

    def _next_event(self) -> float:
        t_ev = (self._o2_n + 1) * self._p.o2_sample_period_s
        if self._fault_queue:
            t_ev = min(t_ev, self._fault_queue[0][0])
        if self._disp_end is not None:
            t_ev = min(t_ev, self._disp_end)
        if self._dio_deadline is not None:
            t_ev = min(t_ev, self._dio_deadline)
        for due in self._hold_due.values():
            if due is not None:
                t_ev = min(t_ev, due)
        return t_ev

    def _process_events(self) -> None:
        t = self._t
        while self._fault_queue and self._fault_queue[0][0] <= t:
            _, _, pf, cb = heapq.heappop(self._fault_queue)
            self._apply_fault(pf)
            if cb is not None:
                cb(t)
        if self._disp_end is not None and self._disp_end <= t:
            self._disp_end = None
        if self._dio_deadline is not None and self._dio_deadline <= t:
            # The coupler's watchdog drops every output; it re-arms on the next contact.
            for name in self._outputs:
                self._outputs[name] = False
            self._uv_shutter = False  # uv_enable dropped with the rest
            self._dio_deadline = None
            self._sync_holds()
        self._engage_due_holds()
        period = self._p.o2_sample_period_s
        n = math.floor(t / period + 1e-9)
        if n > self._o2_n:
            self._o2_n = n
            if self._faults.o2 != "fail":
                val = self._faults.o2_stuck_ppm if self._faults.o2 == "stuck" else self.o2_ppm
                self._o2_sample = (val, n * period)
