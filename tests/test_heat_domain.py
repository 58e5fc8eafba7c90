"""The thermal domain is large enough: doubling its depth and width leaves the film temperature of
the paper device unchanged within the simulated time (100 us), on the axisymmetric mesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.studies.thermal import heat_problem

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
BASE = ["pump.heat_fraction=0.1", "pump.pulse_ns=1e9", "heat.mesh=axisymmetric"]


def _film_history(extra: list[str]) -> tuple[np.ndarray, float]:
    device = load_device(PAPER, BASE + extra)
    problem = heat_problem(device)
    history = problem.run(100e-6)
    probes = np.interp([2e-6, 10e-6, 100e-6], history.times, history.film_max_temperature)
    problem.steady()
    return probes, problem.film_max_temperature()


def test_sink_does_not_change_the_transient() -> None:
    default, steady_default = _film_history([])
    larger, steady_larger = _film_history(
        ["mesh.lateral_extent_um=1000", "substrate.thickness_um=1000"]
    )
    rise = default - 295.0
    assert rise[-1] > 90.0  # the film is well heated by 100 us
    # MgF2: sqrt(alpha t) = 26 um at 100 us against 500 um to the sink: no change beyond the
    # mesh-to-mesh difference (the grading differs with the domain size)
    assert np.max(np.abs(larger - default) / rise) < 1e-4
    # the steady state does feel the sink (it is the real substrate's back side): ~1 %
    assert steady_larger > steady_default
    assert (steady_larger - steady_default) / (steady_default - 295.0) == pytest.approx(
        0.0, abs=0.02
    )
