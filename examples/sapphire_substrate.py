"""Does the paper's CQD laser lase longer on sapphire than on MgF2, and can it lase CW there?

A design question answered end to end with the public API, as one would in a notebook: the
inorganic CQD film and the paper's SiO2-pillar DFB grating, capped with spin-on glass, moved from
MgF2 (k = 21-30 W/m/K) to c-cut sapphire (k = 30-35 W/m/K, n = 1.77 so the film, n = 1.97, still
guides). For each substrate: the guided modes of the layer stack (does the film still guide, how
much of the mode is in the gain?), the DFB band edges (where will it lase?), the film temperature
under an 88 kW/cm2, 2.5 us pump, how long it lases, and whether it can lase CW. One figure compares
the two temperature histories.

Run: ``python examples/sapphire_substrate.py [OUT]`` (default ``results/example_sapphire``), or
under MPI: ``mpirun -n 2 python examples/sapphire_substrate.py``. The meshes are coarsened
(``mesh.scale``) for a quick answer; drop ``COARSE`` for production numbers.
"""

import sys
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

import cqdlaser

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/example_sapphire")

DEVICE = {
    "film": {"material": "cqd_inorganic", "thickness_nm": 120},
    "grating": {"period_nm": 430, "pillar_diameter_nm": 160, "pillar_height_nm": 130},
    "cap": {"material": "sog", "thickness_nm": 1000},
    "substrate": {"material": "sapphire", "thickness_um": 500, "c_axis": "z"},
    # heat_fraction: the share of the pump that heats the film; omitted, it is the films'
    # calibrated value (0.09987, docs/validation.md), or from absorption and PLQY with
    # "heat_fraction_model": "absorption".
    "pump": {"spot_um": [30, 50], "intensity_kw_cm2": 88, "pulse_ns": 2500, "heat_fraction": 0.1},
    "optics": {"wavelength_nm": 643, "polarisation": "TE"},
    "heat": {"end_time_us": 2.5, "mesh": "axisymmetric"},
    "laser": {"threshold_kw_cm2": 52, "t0_k": 72},
}
COARSE = ["mesh.scale=2", "mesh.film_elements=1", "mesh.pillar_elements=3"]


def say(*args: object) -> None:
    """Print once under MPI."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        print(*args, flush=True)


def study(substrate: str) -> tuple[cqdlaser.HeatResult, cqdlaser.LasingResult]:
    device = cqdlaser.load_device(DEVICE, [f"substrate.material={substrate}", *COARSE])
    modes = cqdlaser.modes(device, polarisations=["TE"])
    te0 = modes.select("TE", 0)
    say(
        f"{substrate}: TE0 n_eff {te0.n_eff:.4f}, gain confinement {te0.gain_confinement:.3f}, "
        f"Bragg estimate {te0.bragg_wavelength_nm:.1f} nm"
    )
    edges = cqdlaser.bands(device, n_bands=2)
    say(
        "  band edges: "
        + ", ".join(f"{e.wavelength_nm:.1f} nm ({e.symmetry})" for e in edges.band_edges)
    )
    temperature = cqdlaser.heat(device, out=OUT / substrate / "heat")
    say(
        f"  film max after 2 us: {temperature.temperature_at(2e-6):.1f} K "
        f"(heat fraction {temperature.heat_fraction:.3f})"
    )
    laser = cqdlaser.lasing(device, out=OUT / substrate / "lasing")
    duration = laser.lasing_duration_s
    say(
        "  lasing "
        + ("never reaches threshold" if duration is None else f"for {duration * 1e6:.2f} us")
        + f"; thermal resistance {laser.thermal_resistance_k_cm2_per_kw:.3f} K per kW/cm2; "
        + ("CW possible" if laser.cw_possible else "no CW")
        + f" (margin {laser.cw_margin:.2f})"
    )
    return temperature, laser


def main() -> None:
    results = {name: study(name) for name in ("mgf2", "sapphire")}
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, (temperature, laser) in results.items():
        temperature.plot(ax=ax)
        ax.lines[-2].set_label(f"{name}: film max")
        ax.lines[-1].set_label(f"{name}: spot mean")
        if laser.lasing_duration_s is not None:
            ax.axvline(laser.lasing_duration_s * 1e6, ls=":", color=ax.lines[-2].get_color())
    ax.set_title("inorganic CQD DFB, 88 kW/cm2: MgF2 vs sapphire")
    ax.legend(fontsize="small")
    OUT.mkdir(parents=True, exist_ok=True)
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        fig.savefig(OUT / "sapphire_vs_mgf2.png", dpi=150, bbox_inches="tight")
    say(f"figure: {OUT / 'sapphire_vs_mgf2.png'}")
    longer = results["sapphire"][1].lasing_duration_s or 0.0
    shorter = results["mgf2"][1].lasing_duration_s or 0.0
    say(f"answer: sapphire lases {longer * 1e6:.2f} us vs {shorter * 1e6:.2f} us on MgF2")


if __name__ == "__main__":
    main()
