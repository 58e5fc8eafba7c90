"""The threshold from the optics model of ``[laser] optics``: the planar stack's fundamental mode
(``stack``) or the full-vector band edge of least threshold gain (``vector``), each against the
paper laser's gain confinement in the same model, so the paper's device keeps its own measured
threshold under either and a design's threshold scales with its optics.

The vector solves run on a coarse quarter cell (``mesh.scale=3``, thin padding and PMLs): a few
tens of seconds each on two cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mpi4py import MPI

import pytest

import cqdlaser
from cqdlaser.physics.laser import REFERENCE_GAIN_CONFINEMENT, reference_gain_confinement
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.studies import band_edges
from cqdlaser.studies.cli import main
from cqdlaser.studies.threshold import device_threshold

CONFIGS = Path(__file__).parent.parent / "studies" / "configs"
PAPER = CONFIGS / "paper_inorganic_mgf2.toml"
SI = CONFIGS / "si_sio2_cladding.toml"
COARSE = [
    "mesh.scale=3",
    "mesh.film_elements=1",
    "mesh.optical_padding_um=1.0",
    "mesh.pml_thickness_um=0.5",
]
VECTOR = ["laser.optics=vector", *COARSE]
THERMAL = ["heat.mesh=stack", "heat.end_time_us=0.5", "pump.pulse_ns=500"]


@pytest.fixture(scope="module")
def paper_vector() -> cqdlaser.LasingResult:
    """``lasing`` of the paper device with the vector model (coarse optics, tiny heat run)."""
    return cqdlaser.lasing(cqdlaser.load_device(PAPER, [*VECTOR, *THERMAL]))


def test_reference_gain_confinement_follows_the_model_unless_set() -> None:
    stack = cqdlaser.load_device(PAPER)
    assert stack.laser.optics == "stack" and stack.laser.reference_gain_confinement is None
    assert reference_gain_confinement(stack) == REFERENCE_GAIN_CONFINEMENT["stack"] == 0.8115
    vector = cqdlaser.load_device(PAPER, ["laser.optics=vector"])
    assert reference_gain_confinement(vector) == REFERENCE_GAIN_CONFINEMENT["vector"] == 0.8854
    own = cqdlaser.load_device(
        PAPER, ["laser.optics=vector", "laser.reference_gain_confinement=0.5"]
    )
    assert reference_gain_confinement(own) == 0.5


def test_paper_device_is_its_own_reference_under_the_stack_model() -> None:
    model, optics = device_threshold(cqdlaser.load_device(PAPER, ["laser.optics=stack"]))
    assert optics.model == "stack" and optics.kind == "guided" and optics.polarisation == "TE"
    assert optics.factor == pytest.approx(1.0, abs=1e-3)
    assert model.threshold == pytest.approx(52e7 * optics.factor, rel=1e-12)


@pytest.mark.serial  # one rank; the vector solve under MPI: the CLI and API test
def test_paper_device_is_its_own_reference_under_the_vector_model(
    paper_vector: cqdlaser.LasingResult,
) -> None:
    """The A2 TE-like dark edge lases, with the reference's gain confinement to within the coarse
    mesh's error: factor 1 within 1 %."""
    mode = paper_vector.lasing_mode
    assert mode["model"] == "vector" and mode["kind"] == "band edge"
    assert (mode["family"], mode["symmetry"]) == ("TE-like", "A2")
    assert 745.0 < mode["wavelength_nm"] < 765.0
    assert mode["q_factor"] is None or mode["q_factor"] > 1e8  # dark: unbounded Q
    assert mode["gain_confinement"] == pytest.approx(0.8854, rel=1e-2)
    assert paper_vector.threshold_factor == pytest.approx(1.0, abs=1e-2)
    assert paper_vector.threshold_at_sink_kw_cm2 == pytest.approx(
        52.0 * paper_vector.threshold_factor, rel=1e-12
    )


@pytest.mark.serial  # one rank; the vector solve under MPI: the CLI and API test
def test_a_thinner_film_scales_the_threshold_with_its_band_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 60 nm film: the factor is (Gamma_ref/Gamma)(1 + alpha/alpha_ref) recomputed by hand from
    the lasing-mode row of the band-edge table the model solved, alpha = k0 n/Q."""
    tables: list[dict[str, Any]] = []
    solve = band_edges.band_edge_table

    def recorded(*args: Any, **kwargs: Any) -> dict[str, Any]:
        tables.append(solve(*args, **kwargs))
        return tables[-1]

    monkeypatch.setattr(band_edges, "band_edge_table", recorded)
    device = cqdlaser.load_device(PAPER, [*VECTOR, "film.thickness_nm=60"])
    model, optics = device_threshold(device, MPI.COMM_WORLD)
    (table,) = tables
    row = table["band_edges"][table["lasing_mode"]["index"]]
    rate = sum(1.0 / row[k] for k in ("q_factor", "q_absorption") if row[k] is not None)
    n_film = math.sqrt(complex(region_permittivity(device, ["film"])["film"]).real)
    wavelength = row["wavelength_nm"] * 1e-9
    alpha_per_cm = 2.0 * math.pi / wavelength * n_film * rate / 100.0
    by_hand = (0.8854 / row["gain_confinement"]) * (1.0 + alpha_per_cm / 400.0)
    print(
        f"60 nm film: {row['family']} {row['symmetry']} at {row['wavelength_nm']:.2f} nm, "
        f"Gamma {row['gain_confinement']:.4f}, alpha {alpha_per_cm:.4g}/cm, factor "
        f"{optics.factor:.4f} (by hand {by_hand:.4f})"
    )
    assert optics.factor == pytest.approx(by_hand, rel=1e-9)
    assert optics.factor == pytest.approx(table["lasing_mode"]["threshold_factor"], rel=1e-9)
    assert optics.factor > 1.05  # less gain confinement in a thinner film
    assert (optics.symmetry, optics.gain_confinement) == (row["symmetry"], row["gain_confinement"])
    assert model.threshold == pytest.approx(52e7 * by_hand, rel=1e-9)


@pytest.mark.serial  # one rank; the vector solve under MPI: the CLI and API test
def test_a_stack_without_a_guided_mode_does_not_lase_under_the_vector_model() -> None:
    """Bare Si guides no TE0: no band edges, no laser (the table says so before any mesh)."""
    model, optics = device_threshold(cqdlaser.load_device(SI, ["cladding=false", *VECTOR]))
    assert optics.model == "vector" and optics.kind == "none"
    assert optics.factor == math.inf and model.threshold == math.inf


def test_lasing_cli_and_api_agree_on_the_vector_factor(
    capsys: pytest.CaptureFixture[str], shared_tmp: Path, paper_vector: cqdlaser.LasingResult
) -> None:
    capsys.readouterr()
    sets = [a for o in [*VECTOR, *THERMAL] for a in ("--set", o)]
    code = main(["lasing", str(PAPER), *sets, "--out", str(shared_tmp), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    text = MPI.COMM_WORLD.bcast(out if MPI.COMM_WORLD.rank == 0 else None, root=0)
    cli = json.loads(text)
    assert cli["threshold_factor"] == pytest.approx(paper_vector.threshold_factor, rel=1e-6)
    for key in ("model", "family", "symmetry"):
        assert cli["lasing_mode"][key] == paper_vector.lasing_mode[key]


def test_an_unknown_optics_model_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["lasing", str(PAPER), "--set", "laser.optics=scalar"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cqdlaser: error:")]
    assert code == 2 and "Traceback" not in err
    if MPI.COMM_WORLD.rank == 0:
        assert lines == [
            "cqdlaser: error: laser.optics = 'scalar': must be one of 'stack', 'vector'"
        ], err
