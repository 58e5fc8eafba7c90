r"""CW feasibility map: which substrate, cladding, film thickness and threshold let the CQD DFB
laser lase CW, by what margin, and the optimum cladding over an absorbing substrate.

Thermal part. With constant conductivities the steady film maximum rises linearly with the pump,
T_ss = T_sink + R P, R the thermal resistance (K per W/m2 of incident pump; reported in K per
kW/cm2), one steady solve on the axisymmetric mesh per design. The threshold law is
P_th(T) = P_th0' exp((T - 295 K)/T0), T0 = 72 K, so CW needs P >= P_th(T_sink + R P), possible iff

    a = R P_th0' / T0 <= 1/e,

between the two Lambert-W roots (``physics.laser.cw_exponential``). The margin is (1/e)/a: the
factor by which R (or the heat fraction, or the threshold) may still grow. A lower threshold lowers
the heat at threshold too: the device is pumped at ~P_th0', so a is linear in P_th0'; the largest
nominal threshold that allows CW is P_th0 x margin, whatever the threshold axis.

Optical part: the shared threshold model (:mod:`physics.laser`, ``[laser]`` of the config; the
same as ``cqdlaser lasing``). The threshold of a DFB of modal loss alpha and gain confinement
Gamma scales as (alpha_int + alpha_mirror + alpha) / (Gamma g'), g' the material gain per unit
pump. Taking the paper device (inorganic film, 120 nm, on MgF2, no absorbing layer) as the
reference, whose loss budget alpha_int + alpha_mirror is alpha_ref,

    P_th0'(design) = P_th0 (Gamma_ref / Gamma) (1 + alpha / alpha_ref).

alpha_ref = :data:`ALPHA_REF_PER_CM` = 400/cm (``laser.loss_budget_per_cm``): the paper's net
modal gain is 1200/cm at about 4x threshold (physics.md 1.3); with the modal gain linear in pump
from zero at threshold, one threshold's worth of pump buys 1200/3 = 400/cm of gain, the loss budget
that P_th0 pays for (the other limit, gain linear from zero pump with alpha_int small, gives
300/cm; the optimum claddings are reported for both). Gamma_ref is the paper laser's in the
model of ``[laser] optics`` (:func:`physics.laser.reference_gain_confinement`, unless ``laser.
reference_gain_confinement`` sets it). Gamma and alpha are those of the design's lasing mode
(:func:`studies.threshold.device_threshold`): with ``stack``, its TE0 mode from the exact
multilayer solver (complex root of the transfer-matrix dispersion): absorption in Al or Si under
the cladding, and leakage into a substrate of higher index than the mode (Si, diamond, SiC), in
one exact loss; with ``vector``, its full-vector band edge of least threshold gain, alpha = k0 n/Q
(minutes per design). Without a cladding those substrates have no such mode: no laser.

Heat fraction: the calibrated one (:func:`~cqdlaser.studies.paper.calibration.study_heat_fraction`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.physics.laser import (
    KW_CM2,
    ThresholdModel,
    cw_exponential,
    optical_threshold_factor,
    reference_gain_confinement,
    thermal_resistance,
)
from cqdlaser.studies.api import load_device
from cqdlaser.studies.common import matplotlib_backend, paper_device, save_figure
from cqdlaser.studies.output import logger, provenance, write_csv, write_json
from cqdlaser.studies.paper.calibration import study_heat_fraction
from cqdlaser.studies.study_device import StudyDevice, study_device
from cqdlaser.studies.sweep import PointFailure, SweepError, failures, sweep
from cqdlaser.studies.thermal import heat_problem
from cqdlaser.studies.threshold import device_threshold

BASE_CONFIG = "paper_inorganic_mgf2"
SUBSTRATES = ("glass", "mgf2", "sapphire", "si", "al", "diamond", "sic")
CLADDED = ("si", "al", "diamond", "sic")
"""Substrates that need a low-index cladding: absorbing (Si, Al) or of higher index (diamond, SiC)
than the film."""
CLADDINGS = ("sio2", "mgf2")
ALPHA_REF_PER_CM = 400.0
ALPHA_REF_ALTERNATIVE_PER_CM = 300.0
T0_K = 72.0
NOMINAL_THRESHOLD_KW_CM2 = 52.0
REFERENCE_FILM_NM = 120.0

FULL = {
    "film_nm": (60.0, 80.0, 100.0, 120.0, 160.0, 200.0),
    "cladding_nm": (50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0, 1500.0),
    "cladded": CLADDED,
    "mesh_scale": 1.0,
    "refine_points": 6,
}
QUICK = {
    "film_nm": (REFERENCE_FILM_NM,),
    "cladding_nm": (100.0, 300.0, 1000.0),
    "cladded": ("si", "al"),
    "mesh_scale": 3.0,
    "refine_points": 1,
}
THRESHOLDS_KW_CM2 = (10.0, 15.0, 20.0, 26.0, 30.0, 35.0, 40.0, 45.0, 52.0)


@dataclass(frozen=True)
class Design:
    """One design point: substrate, optional cladding (material, thickness) and film thickness."""

    substrate: str
    cladding: str | None = None
    cladding_nm: float = 0.0
    film_nm: float = REFERENCE_FILM_NM

    def overrides(self) -> list[str]:
        """Config overrides of the base device (``paper_inorganic_mgf2``)."""
        out = [f"substrate.material={self.substrate}", f"film.thickness_nm={self.film_nm}"]
        if self.cladding is None:
            out.append("cladding=false")
        else:
            out += [
                f"cladding.material={self.cladding}",
                f"cladding.thickness_nm={self.cladding_nm}",
            ]
        return out


def design_device(
    design: Design, heat_fraction: float, mesh_scale: float = 1.0, base: Device | None = None
) -> Device:
    """The device of a design point, with the study's heat fraction and mesh scale, on ``base``
    (a user's device; default the paper laser, :data:`BASE_CONFIG`)."""
    overrides = [
        *design.overrides(),
        f"pump.heat_fraction={heat_fraction}",
        "heat.mesh=axisymmetric",
        f"mesh.scale={mesh_scale}",
    ]
    return paper_device(BASE_CONFIG, overrides) if base is None else load_device(base, overrides)


def device_resistance(device: Device, comm: MPI.Comm) -> float:
    """Steady film maximum rise per unit incident pump, R (K m^2/W), of a linear device."""
    if device.heat.nonlinear:
        raise ValueError("the CW map uses a linear device (heat.nonlinear = false)")
    with heat_problem(device, comm) as problem:
        problem.steady()
        rise = problem.film_max_temperature() - device.heat.sink_temperature_k
    return thermal_resistance(rise, device.pump.intensity)


def lasing_mode(device: Device, comm: MPI.Comm) -> dict[str, Any]:
    """The lasing mode of a design: its kind, n_eff, gain confinement and modal loss (1/cm), from
    the shared threshold model in the model of ``[laser] optics``
    (:func:`studies.threshold.device_threshold`: the stack's exact multilayer root, milliseconds
    on every rank; or the full-vector band edges, collective on ``comm``)."""
    _, optics = device_threshold(device, comm)
    method = {"stack": "exact multilayer root", "vector": "full-vector band edge, k0 n/Q"}
    return {
        "guided": optics.kind != "none",
        "mode_kind": optics.kind,
        "n_eff": optics.n_eff_complex.real,
        "gain_confinement": optics.gain_confinement,
        "mode_loss_per_cm": optics.loss_per_cm,
        "loss_method": method[optics.model] if optics.kind != "none" else "no lasing mode",
    }


def evaluate(
    design: Design,
    comm: MPI.Comm,
    heat_fraction: float,
    mesh_scale: float,
    base: Device | None = None,
) -> dict[str, Any]:
    """Thermal resistance and lasing mode of one design (collective on ``comm``)."""
    device = design_device(design, heat_fraction, mesh_scale, base)
    resistance = device_resistance(device, comm)
    return {**asdict(design), "thermal_resistance": resistance, **lasing_mode(device, comm)}


def threshold_factor(mode: dict[str, Any], gamma_ref: float, alpha_ref: float) -> float:
    """P_th0'/P_th0 = (Gamma_ref/Gamma)(1 + alpha/alpha_ref) (inf without a lasing mode):
    :func:`physics.laser.optical_threshold_factor` with the study's alpha_ref."""
    if not mode["guided"]:
        return math.inf
    return optical_threshold_factor(
        mode["gain_confinement"], mode["mode_loss_per_cm"], gamma_ref, alpha_ref
    )


def cw_row(
    design: dict[str, Any],
    threshold_kw_cm2: float,
    gamma_ref: float,
    heat_fraction: float,
    alpha_ref: float = ALPHA_REF_PER_CM,
) -> dict[str, Any]:
    """The CW verdict of a design at a nominal threshold P_th0 (kW/cm2)."""
    r = design["thermal_resistance"]
    factor = threshold_factor(design, gamma_ref, alpha_ref)
    effective = threshold_kw_cm2 * factor
    a_thermal = r * threshold_kw_cm2 * KW_CM2 / T0_K
    row: dict[str, Any] = {
        "substrate": design["substrate"],
        "cladding": design["cladding"] or "none",
        "cladding_nm": design["cladding_nm"],
        "film_nm": design["film_nm"],
        "threshold_kw_cm2": threshold_kw_cm2,
        "guided": design["guided"],
        "gain_confinement": design["gain_confinement"],
        "mode_loss_per_cm": design["mode_loss_per_cm"],
        "threshold_factor": factor,
        "effective_threshold_kw_cm2": effective,
        "thermal_resistance_k_cm2_per_kw": r * KW_CM2,
        "criterion_thermal_only": a_thermal,
    }
    if math.isfinite(factor):
        cw = cw_exponential(r, ThresholdModel(threshold=effective * KW_CM2, t0=T0_K))
        low, high = cw.pump_range if cw.pump_range is not None else (math.nan, math.nan)
        row.update(
            criterion=cw.criterion,
            cw_possible=cw.possible,
            cw_low_kw_cm2=low / KW_CM2,
            cw_high_kw_cm2=high / KW_CM2,
            margin=cw.margin,
            max_threshold_for_cw_kw_cm2=threshold_kw_cm2 * cw.margin,
            max_heat_fraction_for_cw=heat_fraction * cw.margin,
        )
    else:
        row.update(
            criterion=math.inf,
            cw_possible=False,
            cw_low_kw_cm2=math.nan,
            cw_high_kw_cm2=math.nan,
            margin=0.0,
            max_threshold_for_cw_kw_cm2=0.0,
            max_heat_fraction_for_cw=0.0,
        )
    row["status"] = "ok"
    return row


def designs_for(grid: dict[str, Any]) -> list[Design]:
    """The design points of a grid (``FULL`` or ``QUICK``)."""
    out = []
    for film in grid["film_nm"]:
        out += [Design(s, film_nm=film) for s in SUBSTRATES]
        out += [
            Design(s, c, t, film)
            for s in grid["cladded"]
            for c in CLADDINGS
            for t in grid["cladding_nm"]
        ]
    return out


def cw_map(
    designs: Sequence[Design],
    heat_fraction: float,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    mesh_scale: float = 1.0,
    base: Device | None = None,
) -> list[dict[str, Any] | PointFailure]:
    """Evaluate designs in parallel (one rank per design); the same list on every rank, with a
    :class:`~cqdlaser.studies.sweep.PointFailure` for each design that failed."""
    return sweep(
        list(designs),
        lambda d, sub: evaluate(d, sub, heat_fraction, mesh_scale, base),
        comm,
        desc="cw_feasibility",
        keep_going=True,
    )


def failed_row(failure: PointFailure) -> dict[str, Any]:
    """The table row of a design whose evaluation failed: the design and the reason."""
    design: Design = failure.point
    return {
        "substrate": design.substrate,
        "cladding": design.cladding or "none",
        "cladding_nm": design.cladding_nm,
        "film_nm": design.film_nm,
        "status": f"failed: {failure.reason}",
    }


def reference_confinement(base: Device | None = None) -> float:
    """Gamma_ref of the device the map is built around (default the paper laser's own, in the
    model of its ``[laser] optics``: :func:`physics.laser.reference_gain_confinement`)."""
    device = paper_device(BASE_CONFIG) if base is None else base
    return reference_gain_confinement(device)


def refinement(
    designs: list[dict[str, Any]],
    substrate: str,
    cladding: str,
    gamma_ref: float,
    points: int,
    film_nm: float = REFERENCE_FILM_NM,
) -> list[Design]:
    """Extra cladding thicknesses around the grid minimum of a (``film_nm`` film), geometric
    between the minimum's neighbours on the grid."""
    pts = sorted(
        (
            d["cladding_nm"],
            d["thermal_resistance"] * threshold_factor(d, gamma_ref, ALPHA_REF_PER_CM),
        )
        for d in designs
        if d["substrate"] == substrate and d["cladding"] == cladding and d["film_nm"] == film_nm
    )
    if len(pts) < 2 or points < 1:
        return []
    t = [p[0] for p in pts]
    i = int(np.argmin([p[1] for p in pts]))
    lo, hi = t[max(i - 1, 0)], t[min(i + 1, len(t) - 1)]
    new = np.geomspace(lo, hi, points + 2)[1:-1]
    return [
        Design(substrate, cladding, round(float(x), 1), film_nm)
        for x in new
        if not np.isclose(x, t[i])
    ]


def optimum_cladding(
    designs: list[dict[str, Any]],
    substrate: str,
    cladding: str,
    gamma_ref: float,
    alpha_ref: float,
    frame: Frame | None = None,
) -> dict[str, Any] | None:
    """The evaluated cladding thickness with the least a (the frame's film, default 120 nm;
    independent of P_th0; the margins at the frame's threshold, default 52 kW/cm2).

    a is proportional to R (Gamma_ref/Gamma)(1 + alpha/alpha_ref); the optimum is the best design
    evaluated (grid plus refinement), bracketed by its evaluated neighbours.
    """
    pts = sorted(
        (d["cladding_nm"], d["thermal_resistance"] * threshold_factor(d, gamma_ref, alpha_ref))
        for d in designs
        if d["substrate"] == substrate
        and d["cladding"] == cladding
        and d["film_nm"] == (frame or Frame()).film_nm
    )
    pts = [(t, v) for t, v in pts if math.isfinite(v)]
    if not pts:
        return None
    i = int(np.argmin([v for _, v in pts]))
    best_t, best_v = pts[i]
    nominal = (frame or Frame()).threshold_kw_cm2
    margin = (1.0 / math.e) / (best_v * nominal * KW_CM2 / T0_K)
    return {
        "substrate": substrate,
        "cladding": cladding,
        "alpha_ref_per_cm": alpha_ref,
        "optimum_cladding_nm": best_t,
        "bracket_low_nm": pts[max(i - 1, 0)][0],
        "bracket_high_nm": pts[min(i + 1, len(pts) - 1)][0],
        "on_grid_edge": i in (0, len(pts) - 1),
        "criterion_at_52": 1.0 / (math.e * margin),
        "margin_at_52": margin,
        "max_threshold_for_cw_kw_cm2": nominal * margin,
    }


BEST_KEYS = (
    "cladding",
    "cladding_nm",
    "thermal_resistance_k_cm2_per_kw",
    "effective_threshold_kw_cm2",
    "criterion",
    "cw_possible",
    "cw_low_kw_cm2",
    "cw_high_kw_cm2",
    "margin",
    "max_threshold_for_cw_kw_cm2",
    "max_heat_fraction_for_cw",
)
"""What the summary keeps of each substrate's best design."""

NOTES = {
    "thermal_resistance": "steady film-maximum rise per incident pump, axisymmetric mesh, "
    "constant conductivities (linear): K per kW/cm2",
    "criterion": "a = R P_th0' / T0 with P_th0' the effective threshold; CW iff a <= 1/e",
    "threshold_model": "P_th0' = P_th0 (Gamma_ref/Gamma)(1 + alpha/alpha_ref), TE0 mode",
    "margin": "(1/e)/a; max_threshold_for_cw = P_th0 margin; max_heat_fraction = eta margin",
    "criterion_thermal_only": "R P_th0 / T0 without the optical factor",
    "no_guided_mode": "Si, diamond, SiC without a cladding (index above the film's): no laser",
    "optimum_cladding": "argmin_t R(t) (Gamma_ref/Gamma)(1 + alpha(t)/alpha_ref) at 120 nm "
    "film over the evaluated thicknesses (grid, then refine_points between the grid "
    "minimum's neighbours); independent of P_th0",
}
"""How to read the columns of the CW tables (written into cw_feasibility.json)."""


def run(
    out: Path,
    *,
    quick: bool = False,
    comm: MPI.Comm = MPI.COMM_WORLD,
    heat_fraction: float | None = None,
    device: StudyDevice | Device | None = None,
) -> dict[str, Any]:
    """Compute the CW map; write cw_designs.csv, cw_map.csv, cw_optimum.csv, cw_feasibility.json.

    Args:
        out: Output folder.
        quick: A coarse grid and mesh.
        comm: Communicator; designs run in parallel over its ranks.
        heat_fraction: Override the heat fraction (default: the calibration).
        device: A device to map around instead of the paper laser (:meth:`Frame.of`).
    """
    t0 = time.perf_counter()
    spec = study_device(device, "cw_feasibility", comm, config=BASE_CONFIG)
    frame = Frame.of(spec)
    heat_fraction, origin = study_heat_fraction(heat_fraction, spec.device)
    grid = frame.grid(QUICK if quick else FULL, quick)
    gamma_ref = reference_confinement(frame.base)
    evaluated = evaluated_designs(grid, gamma_ref, heat_fraction, comm, frame)
    failed = failures(evaluated)
    designs = [d for d in evaluated if not isinstance(d, PointFailure)]
    thresholds = frame.thresholds()
    rows = [cw_row(d, p, gamma_ref, heat_fraction) for d in designs for p in thresholds]
    design_rows = [
        {k: v for k, v in r.items() if k != "threshold_kw_cm2"}
        for r in rows
        if r["threshold_kw_cm2"] == frame.threshold_kw_cm2
    ] + [failed_row(f) for f in failed]
    optima = [
        o
        for alpha in (ALPHA_REF_PER_CM, ALPHA_REF_ALTERNATIVE_PER_CM)
        for s in grid["cladded"]
        for c in CLADDINGS
        if (o := optimum_cladding(designs, s, c, gamma_ref, alpha, frame)) is not None
    ]
    at_ref = [r for r in design_rows if r["film_nm"] == frame.film_nm and r["status"] == "ok"]
    cw_key, best_key = frame.summary_keys()
    summary = {
        "device": spec.label(),
        "reference_film_nm": frame.film_nm,
        "nominal_threshold_kw_cm2": frame.threshold_kw_cm2,
        "heat_fraction": heat_fraction,
        "heat_fraction_origin": origin,
        "gamma_ref": gamma_ref,
        "alpha_ref_per_cm": ALPHA_REF_PER_CM,
        "t0_k": T0_K,
        "criterion_limit": 1.0 / math.e,
        cw_key: sorted({f"{r['substrate']}/{r['cladding']}" for r in at_ref if r["cw_possible"]}),
        best_key: best_by_substrate(at_ref),
        "optimum_cladding": optima,
        "failed_designs": [failed_row(f) for f in failed],
    }
    write_csv(out / "cw_map.csv", rows=rows, comm=comm)
    write_csv(out / "cw_designs.csv", rows=design_rows, comm=comm)
    write_csv(out / "cw_optimum.csv", rows=optima, comm=comm)
    inputs = {
        "base_config": BASE_CONFIG,
        "grid": {k: list(v) if isinstance(v, tuple) else v for k, v in grid.items()},
        "claddings": CLADDINGS,
        "thresholds_kw_cm2": thresholds,
    }
    meta = provenance(comm, inputs=inputs, started=t0, quick=quick, device=spec.to_dict())
    write_json(out / "cw_feasibility.json", {"summary": summary, "notes": NOTES, **meta}, comm=comm)
    if comm.rank == 0:
        logger.info(
            "cw_feasibility: CW at %g kW/cm2, %g nm film: %s",
            frame.threshold_kw_cm2,
            frame.film_nm,
            summary[cw_key],
        )
    if failed:
        raise SweepError("cw_feasibility (the others are in cw_designs.csv)", failed)
    return summary


def evaluated_designs(
    grid: dict[str, Any],
    gamma_ref: float,
    heat_fraction: float,
    comm: MPI.Comm,
    frame: Frame | None = None,
) -> list[dict[str, Any]]:
    """The grid's designs (and a user's own design), then the cladding thicknesses refined
    around each grid optimum; a design whose evaluation failed is a
    :class:`~cqdlaser.studies.sweep.PointFailure`."""
    frame = frame or Frame()
    scale = grid["mesh_scale"]
    first = [*designs_for(grid), *frame.own_design(designs_for(grid))]
    designs = cw_map(first, heat_fraction, comm, mesh_scale=scale, base=frame.base)
    ok = [d for d in designs if not isinstance(d, PointFailure)]
    extra = [
        d
        for sub in grid["cladded"]
        for c in CLADDINGS
        for d in refinement(ok, sub, c, gamma_ref, grid["refine_points"], frame.film_nm)
    ]
    return designs + cw_map(extra, heat_fraction, comm, mesh_scale=scale, base=frame.base)


@dataclass(frozen=True)
class Frame:
    """What the map is built around: the paper laser (``base`` None: 120 nm film, 52 kW/cm2),
    or a user's device, its film thickness and ``[laser]`` threshold.

    Attributes:
        base: The user's device (None: :data:`BASE_CONFIG`).
        film_nm: The reference film thickness (the summary's and the optima's).
        threshold_kw_cm2: The nominal threshold P_th0 (the design table's).
    """

    base: Device | None = None
    film_nm: float = REFERENCE_FILM_NM
    threshold_kw_cm2: float = NOMINAL_THRESHOLD_KW_CM2

    @classmethod
    def of(cls, spec: StudyDevice) -> Frame:
        """The paper's frame, or one around the device of ``spec``."""
        if spec.is_paper:
            return cls()
        d = spec.device
        return cls(d, d.film.thickness_nm, d.laser.threshold_kw_cm2)

    def grid(self, grid: dict[str, Any], quick: bool) -> dict[str, Any]:
        """The design grid: the paper's film thicknesses scaled to the device's film, its mesh
        scale (at least the quick grid's when ``quick``); the paper's grid unchanged."""
        if self.base is None:
            return grid
        films = tuple(
            self.film_nm if t == REFERENCE_FILM_NM else self.film_nm * t / REFERENCE_FILM_NM
            for t in grid["film_nm"]
        )
        own = self.base.mesh.scale
        return {
            **grid,
            "film_nm": films,
            "mesh_scale": max(own, grid["mesh_scale"]) if quick else own,
        }

    def thresholds(self) -> tuple[float, ...]:
        """The threshold axis (kW/cm2): the paper's, scaled to the nominal threshold (its last)."""
        if self.base is None:
            return THRESHOLDS_KW_CM2
        scale = self.threshold_kw_cm2 / NOMINAL_THRESHOLD_KW_CM2
        return (*(scale * p for p in THRESHOLDS_KW_CM2[:-1]), self.threshold_kw_cm2)

    def own_design(self, designs: Sequence[Design]) -> list[Design]:
        """The user's device as a design point, unless the grid has it (none for the paper)."""
        if self.base is None:
            return []
        d = self.base
        clad = d.cladding
        own = Design(
            d.substrate.material,
            None if clad is None else clad.material,
            0.0 if clad is None else clad.thickness_nm,
            self.film_nm,
        )
        return [] if own in designs else [own]

    def summary_keys(self) -> tuple[str, str]:
        """The summary's keys for the CW designs and the best design per substrate."""
        if self.base is None:
            return "cw_at_52_kw_cm2_120nm", "best_by_substrate_120nm_52"
        return "cw_at_device_threshold_and_film", "best_by_substrate_at_device_threshold_and_film"


def best_by_substrate(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per substrate, the guided design with the largest CW margin (its :data:`BEST_KEYS`)."""
    best: dict[str, dict[str, Any]] = {}
    for s in SUBSTRATES:
        candidates = [r for r in rows if r["substrate"] == s and r["guided"]]
        if candidates:
            b = max(candidates, key=lambda r: r["margin"])
            best[s] = {k: b[k] for k in BEST_KEYS}
    return best


def plot(out: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Draw cw_feasibility.png/pdf from the CSV files."""
    if comm.rank != 0:
        return
    matplotlib_backend()
    import matplotlib.pyplot as plt

    d = np.genfromtxt(
        out / "cw_designs.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    summary = json.loads((out / "cw_feasibility.json").read_text())["summary"]
    film_nm = summary.get("reference_film_nm", REFERENCE_FILM_NM)
    m = np.genfromtxt(out / "cw_map.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    bare = d[(d["cladding"] == "none") & (d["film_nm"] == film_nm)]
    x = np.arange(len(bare))
    ax.bar(x, np.where(bare["guided"], bare["criterion"], np.nan), color="C0", label="with optics")
    ax.plot(x, bare["criterion_thermal_only"], "k_", ms=20, label="thermal only")
    ax.axhline(1 / math.e, color="r", ls="--", label="1/e")
    ax.set_xticks(x, bare["substrate"], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("a = R P$_{th0}$/T$_0$ (52 kW/cm$^2$, 120 nm)")
    ax.set_title("bare substrates (no bar: no guided mode)", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    clad = d[(d["cladding"] != "none") & (d["film_nm"] == film_nm)]
    for i, (s, c) in enumerate(
        dict.fromkeys(zip(clad["substrate"], clad["cladding"], strict=True))
    ):
        rows = clad[(clad["substrate"] == s) & (clad["cladding"] == c)]
        order = np.argsort(rows["cladding_nm"])
        ax.semilogx(
            rows["cladding_nm"][order],
            rows["criterion"][order],
            "o-",
            ms=3,
            color=f"C{i}",
            label=f"{s} / {c}",
        )
        ax.semilogx(
            rows["cladding_nm"][order], rows["criterion_thermal_only"][order], ":", color=f"C{i}"
        )
    ax.axhline(1 / math.e, color="r", ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("cladding thickness (nm)")
    ax.set_ylabel("a (solid: with mode loss, dotted: thermal)")
    ax.set_title("cladding: thermal resistance vs optical loss", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[2]
    ref = d[(d["film_nm"] == film_nm) & d["guided"]]
    for i, s in enumerate(dict.fromkeys(ref["substrate"])):
        cand = ref[ref["substrate"] == s]
        b = cand[int(np.argmax(cand["margin"]))]
        rows = m[
            (m["substrate"] == s)
            & (m["cladding"] == b["cladding"])
            & (m["cladding_nm"] == b["cladding_nm"])
            & (m["film_nm"] == film_nm)
        ]
        label = s if b["cladding"] == "none" else f"{s} / {b['cladding_nm']:.0f} nm {b['cladding']}"
        ax.plot(rows["threshold_kw_cm2"], rows["cw_high_kw_cm2"], "-", color=f"C{i}", label=label)
        ax.plot(rows["threshold_kw_cm2"], rows["cw_low_kw_cm2"], "--", color=f"C{i}")
    ax.set_xlabel("nominal threshold P$_{th0}$ (kW/cm$^2$)")
    ax.set_ylabel("CW pump window (kW/cm$^2$)")
    ax.set_yscale("log")
    ax.set_title("CW window of the best design, 120 nm film (-- low, - high)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "cw_feasibility", comm)
