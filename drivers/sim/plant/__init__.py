"""The simulated plant: lumped-node physics of the bonder, integrated lazily on a Clock.

There is no background task. ``advance()`` integrates from the last time it ran up to
``clock.now()`` in equal substeps no longer than ``params.dt_s``; every simulated-driver call
and every actuator method calls it first, so the result does not depend on how fast the
clock runs (real, scaled or virtual time). Discrete events (faults, the O2 analyzer's
sample instants, the end of a dispense shot, the I/O watchdog) split the integration so they
happen at their exact time.

Thermal chain: lamp filaments → chips (with the solder's latent heat, enthalpy method) →
component → chuck → chiller fluid, plus radiation and gas losses from the chips and small
losses of the chuck and fluid to ambient. Every flux is counted once in the energy counters,
so ``energy_in_j − energy_chiller_j − energy_loss_j`` equals the change of ``stored_energy_j``
to rounding error.

Working space: one well-mixed gas volume with a pump, a leak, an N2 backfill valve and an N2
vent line; O2 is tracked as a partial pressure so mixing is exact.

The modules (docs/adr/0135):

- ``params``: ``PlantParams`` and the physical constants;
- ``fault_table``: the fault kinds each device accepts, ``PlantFault``, the faults in effect;
- ``state``: ``PlantState``, the snapshot;
- ``core``: ``PlantCore``, the live state variables every part works on;
- ``thermal``, ``gas``, ``lift``: the thermal chain, the working space, the lead lift: each
  part's device accessors and its integration over a span;
- ``events``: the fault queue and the discrete events;
- ``panel``, ``panel_thermal``: a panel of chip sites (layout, lamp head, view factors) and
  its thermal integration in place of the single chip's (docs/panel.md, docs/adr/0160);
- ``plant``: ``Plant``, the parts put together: the I/O coupler, the snapshot, ``advance``.

Import from here: ``from drivers.sim.plant import Plant, PlantParams``.
"""

from drivers.sim.plant.fault_table import (
    FAULT_KINDS,
    FAULT_VALUE_OPTIONAL,
    FAULT_VALUE_REQUIRED,
    PlantFault,
    SupportsPlantFault,
    TcFault,
    fault_device_key,
)
from drivers.sim.plant.panel import PanelLayout, PanelPhysics
from drivers.sim.plant.panel_thermal import SiteState
from drivers.sim.plant.params import (
    GAS_CONSTANT,
    KELVIN,
    STEFAN_BOLTZMANN,
    TC_CHANNELS,
    PlantParams,
)
from drivers.sim.plant.plant import Plant
from drivers.sim.plant.state import PlantState

__all__ = [
    "FAULT_KINDS",
    "FAULT_VALUE_OPTIONAL",
    "FAULT_VALUE_REQUIRED",
    "GAS_CONSTANT",
    "KELVIN",
    "STEFAN_BOLTZMANN",
    "TC_CHANNELS",
    "PanelLayout",
    "PanelPhysics",
    "Plant",
    "PlantFault",
    "PlantParams",
    "PlantState",
    "SiteState",
    "SupportsPlantFault",
    "TcFault",
    "fault_device_key",
]
