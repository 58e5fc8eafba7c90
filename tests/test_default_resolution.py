"""The default resolution of the r-z heat run is converged to its stated tolerance: the film's
maximum rise within 0.1 % of a converged run's (docs/benchmarks.md, ``bench_heat.py --cases
accuracy``), here on a small variant of the paper device (20 um substrate, 4 x 6 um spot, 12 um
domain) that meshes and runs in about a second.

The converged rise is a Richardson extrapolation (second order): of the default mesh and the mesh
with every size halved (``mesh.scale`` 0.5, thermal growth ratio 1.075) at 1 us, of that and the
mesh halved again in the steady state, and of the time grids with the first step and
``step_growth - 1`` halved and halved again. A coarser default
(the former 40 nm film elements and growth 1.3: -0.35 % at 1 us on the paper device) or a coarser
time grid (step growth 1.15: +0.1 %) fails.
"""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import pytest

import cqdlaser

CONFIG = Path(__file__).resolve().parents[1] / "studies" / "configs" / "paper_inorganic_mgf2.toml"
SMALL = [
    "substrate.thickness_um=20",
    "pump.spot_um=[4, 6]",
    "mesh.lateral_extent_um=12",
    "pump.heat_fraction=0.1",
    "heat.mesh=axisymmetric",
    "heat.end_time_us=1",
]
TOLERANCE = 1e-3
SPACE = (["mesh.scale=0.5", "mesh.grading=1.15"], ["mesh.scale=0.25", "mesh.grading=1.075"])
TIME = (
    ["heat.first_step_ns=0.5", "heat.step_growth=1.05"],
    ["heat.first_step_ns=0.25", "heat.step_growth=1.025"],
)


def _rise(overrides: list[str], steady: bool = False) -> float:
    """The film's maximum rise (K) at 1 us under the pump (or in the steady state)."""
    device = cqdlaser.load_device(CONFIG, [*SMALL, *overrides])
    result = cqdlaser.heat(device, steady=steady, comm=MPI.COMM_SELF)
    if steady:
        return result.steady_film_max_temperature_k - result.sink_temperature_k
    return float(result.film_max_temperature_k[-1]) - result.sink_temperature_k


def _extrapolated(coarse: float, fine: float) -> float:
    return fine + (fine - coarse) / 3.0


@pytest.mark.serial
def test_default_mesh_and_steps_within_a_tenth_of_a_percent() -> None:
    """At 1 us, the default run against the space and the time extrapolations (their errors add:
    reference = S + T - D), and the steady state against the space extrapolation."""
    default = _rise([])
    space = _extrapolated(default, _rise(SPACE[0]))
    time = _extrapolated(*(_rise(level) for level in TIME))
    assert default == pytest.approx(space + time - default, rel=TOLERANCE)
    # Each error alone is within the tolerance too (no cancellation of a large one).
    assert default == pytest.approx(space, rel=TOLERANCE)
    assert default == pytest.approx(time, rel=TOLERANCE)
    steady = _extrapolated(*(_rise(level, steady=True) for level in SPACE))
    assert _rise([], steady=True) == pytest.approx(steady, rel=TOLERANCE)
