"""The validation report: every number the paper states, next to what cqdlaser computes.

Each study adds a ``validation`` list to its JSON: rows with the quantity, the paper's value, the
model's value, the unit, the study and a note (the reading it rests on; why they differ). The
report collects them in one Markdown table, with the relative difference, and embeds the figures.
Differences above 10 % must carry an explanation in their note.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mpi4py import MPI

from cqdlaser.studies.output import atomic_write_text

EXPLAIN_ABOVE = 0.10


def row(
    quantity: str, paper: float | str | None, model: float | str | None, unit: str, note: str = ""
) -> dict[str, Any]:
    """One validation row (numbers in the unit given; strings for qualitative statements)."""
    return {"quantity": quantity, "paper": paper, "model": model, "unit": unit, "note": note}


def difference(paper: Any, model: Any) -> float | None:
    """Relative difference model/paper - 1, or None when either is not a number."""
    if isinstance(paper, int | float) and isinstance(model, int | float) and paper != 0:
        return float(model) / float(paper) - 1.0
    return None


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _calibration(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["summary"]
    ratio = s["ratio_a_over_b"]
    return [
        row(
            "lasing sustained at 88 kW/cm2 on MgF2 (the calibration target, reading B)",
            1.8,
            s["under_b_lasing_duration_88_s"] * 1e6,
            "us",
            f"fitted: heat fraction {s['heat_fraction_reading_b']:.4f} of the incident pump",
        ),
        row(
            "film temperature after 2 us, inorganic film at 51 kW/cm2 on MgF2 (Fig. 4b)",
            60.0,
            s["under_b_fig4b_temperature_2us_c"],
            "C",
            f"the two statements cannot both hold with heat proportional to the pump: 60 C at "
            f"2 us needs a heat fraction {ratio:.2f}x larger "
            f"({s['heat_fraction_reading_a']:.3f}), and then lasing at 88 kW/cm2 would stop "
            f"after {s['under_a_lasing_duration_88_s'] * 1e6:.2f} us instead of 1.8 us",
        ),
        row(
            "heat fraction of the incident pump",
            None,
            s["heat_fraction"],
            "",
            f"not given by the paper; estimates: absorbed fraction x quantum defect "
            f"{s['estimate_quantum_defect']:.3f}, Auger dominated "
            f"{s['estimate_auger_dominated']:.3f} (calibration.json); "
            f"{_stored_note(s)}",
        ),
    ]


STORED_TOLERANCE = 0.01
"""Relative difference above which the stored calibrated heat fraction is flagged as stale."""


def _stored_note(s: dict[str, Any]) -> str:
    stored, diff = s["stored_heat_fraction"], s["stored_relative_difference"]
    text = (
        f"the default of every command (the films' heat_fraction_calibrated in the data file) "
        f"is {stored:.5f}, {diff * 100:+.2f} % from this fit"
    )
    if abs(diff) > STORED_TOLERANCE:
        text += " - STALE: update heat_fraction_calibrated in physics/materials.toml"
    return text


def _fig4b(doc: dict[str, Any]) -> list[dict[str, Any]]:
    b = doc["summary"]["reading_b"]
    return [
        row(
            "organic (300 nm, 83 kW/cm2) vs inorganic (120 nm, 51 kW/cm2) film at 2 us",
            "marked difference",
            f"{b['organic_2us_c']:.0f} C vs {b['inorganic_2us_c']:.0f} C "
            f"(rise ratio {b['rise_ratio_organic_over_inorganic_2us']:.2f})",
            "",
            "same heat fraction for both films (equal optical density at 442 nm)",
        )
    ]


def _sensitivity(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["summary"]
    best = s["best_match_k_halved_others_doubled"]
    table = {(r["parameter"], r["factor"]): r for r in s["baseline_reading_table"]}
    rise = {k: v["change_rise_percent"] for k, v in table.items()}
    note = (
        "percentages of the steady temperature in C for threshold and thickness doubled and the "
        f"substrate conductivity halved (reading {best['reading']}): the reading closest to the "
        f"paper (RMS {best['rms_from_paper_percent']:.0f} %); of the rise DeltaT the changes are "
        f"{rise[('threshold', 2.0)]:+.0f} %, {rise[('thickness', 2.0)]:+.0f} %, "
        f"{rise[('substrate_k', 0.5)]:+.0f} % (k halved), {rise[('substrate_k', 2.0)]:+.0f} % "
        "(k doubled)"
    )
    return [
        row(
            "steady temperature change, threshold doubled",
            80.0,
            best["threshold_percent"],
            "%",
            note,
        ),
        row(
            "steady temperature change, film thickness doubled (equal OD)",
            14.0,
            best["thickness_percent"],
            "%",
            note,
        ),
        row(
            "steady temperature change, substrate conductivity changed 2x",
            50.0,
            best["substrate_k_percent"],
            "%",
            note,
        ),
    ]


def _diffusion_time(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["summary"]
    return [
        row(
            "time for heat to cross the 120 nm film",
            s["paper_ns"],
            s["d2_over_alpha_ns"],
            "ns",
            "d^2/alpha; the film's rho c_p (not given) was estimated to give it; the "
            f"interface response reaches 63 % / 90 % of its 1D course at "
            f"{s['t63_fem_ns']:.0f} / {s['t90_fem_ns']:.0f} ns (FEM)",
        )
    ]


def _lasing_duration(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["summary"]
    organic = s.get("by_substrate_88", {}).get("organic/mgf2", {})
    rows = [
        row(
            "lasing sustained at 88 kW/cm2, full device (grating and SOG cap) on MgF2",
            s["paper_inorganic_mgf2_88_duration_us"],
            s["inorganic_mgf2_88_duration_us"],
            "us",
            "predicted, not fitted: the heat fraction is fitted on the paper's thermal "
            "model (film on substrate); the cap and grating add heat capacity near the film",
        )
    ]
    if organic:
        rows.append(
            row(
                "organic film at 88 kW/cm2 on MgF2",
                "fails to sustain lasing",
                f"lases {organic['lasing_duration_us'] * 1e3:.0f} ns",
                "",
                "its threshold (83 kW/cm2) is reached within tens of ns",
            )
        )
    return rows


def _fig4d(doc: dict[str, Any]) -> list[dict[str, Any]]:
    cw = doc["summary"]["cw_possible_at_threshold"]
    yes = [k for k, v in cw.items() if v]
    return [
        row(
            "substrates for CW operation at a 50 kW/cm2 threshold",
            "Si or Al with a low-index cladding (Discussion)",
            ", ".join(yes) if yes else "none",
            "",
            "thermal criterion only (film on substrate, constant conductivities, reading B heat "
            "fraction); bare Si guides no mode (its index exceeds the film's): it needs the "
            "low-index cladding the paper suggests (cw_feasibility)",
        )
    ]


def _cw_feasibility(doc: dict[str, Any]) -> list[dict[str, Any]]:
    best = doc["summary"]["best_by_substrate_120nm_52"]
    ranked = sorted(best.items(), key=lambda kv: -kv[1]["margin"])
    text = "; ".join(
        f"{name}"
        + (f" + {d['cladding_nm']:.0f} nm {d['cladding']}" if d["cladding_nm"] else "")
        + f": margin {d['margin']:.2f}"
        for name, d in ranked[:4]
    )
    return [
        row(
            "designs closest to CW at the paper's 52 kW/cm2 threshold (120 nm film)",
            "Si or Al with a low-index cladding (Discussion)",
            text,
            "",
            "CW needs margin >= 1 (R P_th0/T0 <= 1/e), with the cladding's optical loss "
            "raising the threshold and its thermal resistance raising R (cw_feasibility.csv)",
        )
    ]


EXTRACTORS = {
    "cw_feasibility": _cw_feasibility,
    "calibration": _calibration,
    "fig4b": _fig4b,
    "sensitivity": _sensitivity,
    "diffusion_time": _diffusion_time,
    "lasing_duration": _lasing_duration,
    "fig4d": _fig4d,
}
"""Study -> rows built from its JSON summary (for studies that do not list ``validation``)."""


def collect(results_dir: Path) -> list[dict[str, Any]]:
    """The validation rows of every study under ``results_dir`` (``<study>/<study>.json``)."""
    rows = []
    for path in sorted(
        p for p in results_dir.glob("*/*.json") if not p.parent.name.startswith(".")
    ):
        doc = json.loads(path.read_text())
        study = path.parent.name
        found = list(doc.get("validation", []))
        if study in EXTRACTORS and path.stem == study:
            found += EXTRACTORS[study](doc)
        for r in found:
            d = difference(r.get("paper"), r.get("model"))
            rows.append({**r, "study": study, "difference": d})
    return rows


def write_report(
    results_dir: Path,
    path: Path,
    *,
    quick: bool,
    figures_dir: Path | None = None,
    comm: MPI.Comm = MPI.COMM_WORLD,
) -> Path:
    """Write the Markdown report (rank 0), with the studies' PNG figures copied beside it."""
    if comm.rank != 0:
        return path
    rows = collect(results_dir)
    figures_dir = figures_dir or path.parent / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for png in sorted(p for p in results_dir.glob("*/*.png") if not p.parent.name.startswith(".")):
        if png.parent.resolve() == figures_dir.resolve():
            continue
        target = figures_dir / png.name
        shutil.copyfile(png, target)
        figures.append(target)
    lines = [
        "# Validation against the paper",
        "",
        "Adachi et al., *Microsecond-sustained lasing from colloidal quantum dot solids*, "
        "Nat. Commun. 6:8694 (2015). Generated by `cqdlaser run paper"
        + (" --quick`" if quick else "`")
        + "; each row comes from the study named, whose JSON holds the inputs and provenance. "
        "Differences above 10 % are explained in the note.",
        "",
        "| quantity | paper | cqdlaser | unit | difference | study | note |",
        "|---|---|---|---|---|---|---|",
    ]
    unexplained = []
    for r in rows:
        d = r["difference"]
        diff = "-" if d is None else f"{100 * d:+.0f} %"
        if d is not None and abs(d) > EXPLAIN_ABOVE and not r.get("note"):
            unexplained.append(r["quantity"])
        lines.append(
            f"| {r['quantity']} | {_fmt(r['paper'])} | {_fmt(r['model'])} | {r['unit']} | {diff} "
            f"| {r['study']} | {r.get('note', '')} |"
        )
    if unexplained:
        raise RuntimeError(f"validation rows differ by > 10 % without a note: {unexplained}")
    lines += ["", "## Figures", ""]
    for fig in figures:
        rel = fig.relative_to(path.parent) if fig.is_relative_to(path.parent) else fig
        lines += [f"![{fig.stem}]({rel})", ""]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
