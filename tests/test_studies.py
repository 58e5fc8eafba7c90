"""Studies in their quick form: they run (serially and under MPI) and write well-formed outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cqdlaser.studies.registry import run_studies


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.study
def test_fig1c_quick(study_outputs: Path) -> None:
    result = run_studies(["fig1c"], study_outputs, quick=True, figures=False)["fig1c"]
    out = study_outputs / "fig1c"
    rows = _read_csv(out / "fig1c.csv")
    assert len(rows) >= 10
    gamma_in = [float(r["gamma_inorganic"]) for r in rows]
    gamma_org = [float(r["gamma_organic"]) for r in rows]
    # confinement grows with thickness, and the denser film confines more at every thickness
    assert gamma_in == sorted(gamma_in) and all(
        a >= b for a, b in zip(gamma_in, gamma_org, strict=True)
    )
    # physics.md 1.3: Gamma = 0.54 (inorganic, 120 nm) and 0.80 (organic, 300 nm) on glass
    assert result["gamma_inorganic_120nm"] == pytest.approx(0.54, abs=0.01)
    assert result["gamma_organic_300nm"] == pytest.approx(0.80, abs=0.01)
    assert 0.6 < result["ratio_at_organic_optimum"] < 0.7
    meta = json.loads((out / "fig1c.json").read_text())
    assert meta["versions"]["dolfinx"] and meta["mpi_size"] >= 1
    assert not list(out.glob("*.png")), "study tests draw no figures"


@pytest.mark.study
def test_bragg_quick(study_outputs: Path) -> None:
    summary = run_studies(["bragg"], study_outputs, quick=True, figures=False)["bragg"]
    out = study_outputs / "bragg"
    rows = _read_csv(out / "bragg.csv")
    assert {r["polarisation"] for r in rows} == {"TE", "TM"}
    # band edges red-shift with the period and with the film thickness (more high-index material)
    for pol in ("TE", "TM"):
        for key in ("grating.period_nm", "film.thickness_nm"):
            odd = [
                float(r["odd_nm"])
                for r in rows
                if r["parameter"] == key and r["polarisation"] == pol
            ]
            assert odd == sorted(odd) and len(odd) >= 3
    # the nominal device is far red of 643 nm; a ~40 nm TM film above the pillars lases there
    assert summary["relative_difference_te_odd"] > 0.1
    tm_film = next(
        i
        for i in summary["inverse"]
        if i["polarisation"] == "TM" and i["parameter"] == "film.thickness_nm"
    )
    assert 20.0 < tm_film["value_for_643nm"] < 60.0
    assert (out / "bragg_sensitivity.csv").is_file()


def test_report_table_and_unexplained_differences(shared_tmp: Path) -> None:
    from mpi4py import MPI

    from cqdlaser.studies.output import write_json
    from cqdlaser.studies.paper.report import row, write_report

    good = [row("a time", 70.0, 71.0, "ns"), row("a statement", "qualitative", "yes", "")]
    write_json(shared_tmp / "one" / "one.json", {"validation": good})
    MPI.COMM_WORLD.barrier()
    report = write_report(shared_tmp, shared_tmp / "validation.md", quick=True)
    if MPI.COMM_WORLD.rank == 0:
        text = report.read_text()
        assert "| a time | 70 | 71 | ns | +1 % | one |" in text
        assert "| a statement | qualitative | yes |  | - | one |" in text
        write_json(
            shared_tmp / "two" / "two.json",
            {"validation": [row("far off", 1.0, 1.5, "s")]},
            comm=MPI.COMM_SELF,
        )
        with pytest.raises(RuntimeError, match="far off"):
            write_report(shared_tmp, shared_tmp / "v2.md", quick=True, comm=MPI.COMM_SELF)


def test_a_failed_study_publishes_nothing(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study that fails half-way leaves its folder as it was (here: absent), and says where its
    partial output is (a staging folder beside it, which the validation report ignores)."""
    from mpi4py import MPI

    from cqdlaser.studies import registry
    from cqdlaser.studies.paper import report

    def half_done(out: Path, *, quick: bool, comm: MPI.Comm) -> dict:
        from cqdlaser.studies.output import write_json

        write_json(out / "meshes.json", {"validation": []}, comm=comm)
        comm.barrier()
        raise RuntimeError("mesh generator crashed")

    monkeypatch.setattr(registry, "study", lambda name: half_done)
    with pytest.raises(RuntimeError, match="mesh generator crashed"):
        registry.run_one("meshes", shared_tmp / "meshes", quick=True)
    MPI.COMM_WORLD.barrier()
    assert not (shared_tmp / "meshes").exists()
    (partial,) = [p for p in shared_tmp.iterdir() if p.name.startswith(".staging-meshes-")]
    assert (partial / "meshes.json").is_file()
    assert report.collect(shared_tmp) == []
