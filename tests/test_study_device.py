"""Design studies on the user's own device: ``cqdlaser run STUDY [CONFIG] [--set KEY=VALUE]...`` and
``run_study(name, device=...)``; the paper's studies refuse a device in one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest

import cqdlaser
from cqdlaser.studies import api
from cqdlaser.studies.cli import _studies_and_config, main
from cqdlaser.studies.common import paper_device
from cqdlaser.studies.design import bragg
from cqdlaser.studies.registry import STUDIES, takes_device
from cqdlaser.studies.study_device import PAPER_DEFAULT, StudyDevice

DEVICE_TOML = """\
# The inorganic CQD film on sapphire over a 400 nm square DFB, no cap, lasing at 650 nm.
[film]
material = "cqd_inorganic"
thickness_nm = 100

[grating]
period_nm = 400
pillar_diameter_nm = 160
pillar_height_nm = 130
material = "sio2"

[substrate]
material = "sapphire"

[optics]
wavelength_nm = 640
"""
COARSE = ("mesh.scale=8",)
"""A coarse cross-section: the study's numbers, not their accuracy, are under test."""


def _config(folder: Path) -> Path:
    path = folder / "sapphire_dfb.toml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(DEVICE_TOML)
    MPI.COMM_WORLD.barrier()
    return path


def _cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    """``main(argv + ['--json'])``: its exit code and its JSON document (on every rank)."""
    capsys.readouterr()
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    text = MPI.COMM_WORLD.bcast(out if MPI.COMM_WORLD.rank == 0 else None, root=0)
    return code, json.loads(text) if code == 0 else None


@pytest.mark.study
def test_bragg_on_my_device_cli_and_api(
    capsys: pytest.CaptureFixture[str], shared_tmp: Path
) -> None:
    """The CLI's bragg on a config with --set: the JSON names the device and the inverse design
    aims at the --set wavelength; run_study on the same device gives the same numbers."""
    config = _config(shared_tmp)
    sets = ["optics.wavelength_nm=650", *COARSE]
    argv = ["run", "bragg", str(config), "--quick", "--no-figures", "--out", str(shared_tmp)]
    code, document = _cli_json(capsys, [*argv, *(a for s in sets for a in ("--set", s))])
    assert code == 0
    summary = document["bragg"]["summary"]
    assert summary["device"]["source"] == f"{config} with {', '.join(sets)}"
    assert "substrate sapphire" in summary["device"]["description"]
    assert "film cqd_inorganic 100 nm" in summary["device"]["description"]
    assert "period 400 nm" in summary["device"]["description"]
    assert summary["target_nm"] == 650
    assert {i["target_nm"] for i in summary["inverse"]} == {650}
    # the period puts the odd edge at 650 nm: bracketed around the 400 nm period, shorter than it
    # (the device's own TE odd edge is red of 650 nm)
    te_period = next(
        i
        for i in summary["inverse"]
        if i["polarisation"] == "TE" and i["parameter"] == "grating.period_nm"
    )
    assert summary["device_te_odd_nm"] > 650
    assert 340 * 400 / 430 < te_period["value_for_650nm"] < 400
    saved = json.loads((shared_tmp / "bragg" / "bragg.json").read_text())
    assert saved["inputs"]["source"] == summary["device"]["source"]
    assert saved["inputs"]["config"]["substrate"]["material"] == "sapphire"
    assert saved["validation"] == []  # the paper's 643 nm line is no check of this device
    rows = saved["rows"]
    periods = sorted({r["value"] for r in rows if r["parameter"] == "grating.period_nm"})
    assert periods == pytest.approx([400 * 390 / 430, 400.0, 400 * 470 / 430])

    device = cqdlaser.load_device(config, sets)
    result = cqdlaser.run_study(
        "bragg", device=device, quick=True, out=shared_tmp / "api", figures=False
    )
    assert result.summary["device"]["source"] == "given Device"
    from_api = json.loads((shared_tmp / "api" / "bragg.json").read_text())
    assert from_api["rows"] == rows
    assert from_api["sensitivity"] == saved["sensitivity"]
    assert result.summary["inverse"] == summary["inverse"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "fig1c", "CONFIG"],
        ["run", "calibration", "--set", "film.thickness_nm=60"],
        ["run", "bragg", "fig4b", "CONFIG"],
        ["run", "paper", "--set", "film.thickness_nm=60"],
    ],
)
def test_studies_on_the_papers_devices_refuse_a_device(
    argv: list[str], capsys: pytest.CaptureFixture[str], shared_tmp: Path
) -> None:
    config = str(_config(shared_tmp))
    capsys.readouterr()
    code = main([config if a == "CONFIG" else a for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    if MPI.COMM_WORLD.rank == 0:
        (line,) = err.strip().splitlines()
        study = next(a for a in argv[1:] if not takes_device(a) and a in [*STUDIES, "paper"])
        assert f"study = '{study}'" in line and "runs on the paper's devices" in line


def test_a_wrong_device_fails_before_any_study_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, shared_tmp: Path
) -> None:
    """A bad --set value, a typo'd study, two configs, a missing config: exit 2, one line, and
    no study started."""
    ran: list[str] = []
    monkeypatch.setattr(api, "run_study", lambda name, *a, **k: ran.append(name))
    config = str(_config(shared_tmp))
    cases = {
        "film.thickness_nm = -5": ["run", "bragg", "--set", "film.thickness_nm=-5"],
        "substrate.material = 'unobtainium'": [
            "run",
            "lasing_duration",
            config,
            "--set",
            "substrate.material=unobtainium",
        ],
        "did you mean 'bragg'": ["run", "brag", config],
        "one CONFIG per run": ["run", "bragg", config, config.replace(".toml", "2.toml")],
        "no such file": ["run", "bragg", str(shared_tmp / "missing.toml")],
    }
    for expected, argv in cases.items():
        capsys.readouterr()
        assert main([*argv, "--out", str(shared_tmp / "out")]) == 2, argv
        err = capsys.readouterr().err
        if MPI.COMM_WORLD.rank == 0:
            assert expected in err and len(err.strip().splitlines()) == 1, err
    assert ran == []
    assert not (shared_tmp / "out").exists()


def test_words_of_run_are_studies_or_a_config(shared_tmp: Path) -> None:
    config = _config(shared_tmp)
    bare = shared_tmp / "mydevice"
    if MPI.COMM_WORLD.rank == 0:
        bare.write_text(DEVICE_TOML)
    MPI.COMM_WORLD.barrier()
    assert _studies_and_config(["bragg", str(config), "sensitivity"]) == (
        ["bragg", "sensitivity"],
        [str(config)],
    )
    assert _studies_and_config(["cw_feasibility", str(bare)]) == (["cw_feasibility"], [str(bare)])
    assert _studies_and_config(["bragg", "missing.toml"]) == (["bragg"], ["missing.toml"])
    assert _studies_and_config(["bragg", "brag"]) == (["bragg", "brag"], [])


def test_the_design_studies_take_a_device() -> None:
    assert {name for name in STUDIES if takes_device(name)} == {
        "bragg",
        "sensitivity",
        "lasing_duration",
        "cw_feasibility",
        "fig4d",
    }
    assert not takes_device("paper")


def test_the_output_names_and_describes_the_device(shared_tmp: Path) -> None:
    mine = StudyDevice(cqdlaser.load_device(_config(shared_tmp)), "sapphire_dfb.toml")
    assert mine.description() == (
        "film cqd_inorganic 100 nm, period 400 nm, no cladding, substrate sapphire, 640 nm TE"
    )
    assert not mine.is_paper and mine.to_dict()["config"]["film"]["thickness_nm"] == 100
    paper = StudyDevice(paper_device("si_sio2_cladding"))
    assert paper.is_paper and paper.label()["source"] == PAPER_DEFAULT
    assert "cladding sio2 1000 nm, substrate si" in paper.description()
    assert mine.variant(["film.thickness_nm=60"]).film.thickness_nm == 60


def test_bragg_sweeps_follow_the_device_and_keep_the_papers() -> None:
    """The paper device's sweeps are the paper's values exactly; a device's are scaled to its
    period and film, never below the thinnest allowed film."""
    paper = paper_device(bragg.CONFIG)
    grids = bragg._sweep_grids(paper, quick=False)
    assert grids["grating.period_nm"] == np.linspace(390, 470, 9).tolist()
    assert grids["film.thickness_nm"] == list(bragg.FILMS_NM)
    assert bragg._sweep_grids(paper, quick=True)["film.thickness_nm"] == [10.0, 60.0, 120.0]
    thin = cqdlaser.load_device(paper, ["film.thickness_nm=30", "grating.period_nm=215"])
    grids = bragg._sweep_grids(thin, quick=True)
    assert grids["film.thickness_nm"] == [5.0, 15.0, 30.0]
    assert grids["grating.period_nm"] == pytest.approx([195.0, 215.0, 235.0])
    assert bragg.sensitivity_parameters(StudyDevice(paper)) == bragg.SENSITIVITY_PARAMETERS


@pytest.mark.study
def test_thermal_design_studies_on_my_device(
    capsys: pytest.CaptureFixture[str], shared_tmp: Path
) -> None:
    """One CONFIG for two studies in one run: sensitivity around the device's threshold, film and
    substrate (the linear model: doubling the pump at threshold doubles the rise), and the lasing
    duration of the device as it is, equal to its film on its own substrate."""
    config = _config(shared_tmp)
    argv = ["run", "sensitivity", "lasing_duration", str(config), "--quick", "--no-figures"]
    sets = ["laser.threshold_kw_cm2=60", "pump.intensity_kw_cm2=100", "mesh.scale=3"]
    code, document = _cli_json(
        capsys, [*argv, "--out", str(shared_tmp), *(a for s in sets for a in ("--set", s))]
    )
    assert code == 0
    for name in ("sensitivity", "lasing_duration"):
        assert document[name]["summary"]["device"]["source"].startswith(str(config))
        saved = json.loads((shared_tmp / name / f"{name}.json").read_text())
        assert saved["device"]["config"]["laser"]["threshold_kw_cm2"] == 60
    sensitivity = document["sensitivity"]["summary"]
    assert sensitivity["baseline"]["intensity_kw_cm2"] == 60
    assert sensitivity["baseline"]["substrate"] == "sapphire"
    doubled = next(
        r
        for r in sensitivity["baseline_reading_table"]
        if r["parameter"] == "threshold" and r["factor"] == 2.0
    )
    assert doubled["change_rise_percent"] == pytest.approx(100.0, abs=1e-6)
    duration = document["lasing_duration"]["summary"]
    assert duration["reference_intensity_kw_cm2"] == 100
    own, sapphire = duration["by_substrate"]["device"], duration["by_substrate"]["sapphire"]
    assert own["thermal_resistance_k_cm2_per_kw"] == pytest.approx(
        sapphire["thermal_resistance_k_cm2_per_kw"], rel=1e-12
    )
    # diamond conducts heat better than sapphire
    assert (
        duration["by_substrate"]["diamond"]["thermal_resistance_k_cm2_per_kw"]
        < 0.8 * (own["thermal_resistance_k_cm2_per_kw"])
    )
    rows = (shared_tmp / "lasing_duration" / "lasing_duration_vs_intensity.csv").read_text()
    first = float(rows.splitlines()[1].split(",")[2])
    assert first == pytest.approx(55.0 * 60 / 52)  # the paper's grid, scaled to the threshold
