"""Report: the TE0 and TM0 modes of a 120 nm CQD film on Si and on sapphire under MgF2 claddings,
exact (``cqdlaser.physics.multilayer``) and checked by the independent PML finite-element solve
(``cqdlaser.physics.stack_pml``).

The film is the inorganic CQD film of ``studies/configs/paper_inorganic_mgf2.toml``
(``cqd_inorganic``), in air, on a cladding of ``mgf2`` over a semi-infinite ``si`` or ``sapphire``
substrate, at 643 nm (indices from ``physics/materials.toml``). Both substrates have a higher index
than the film's modes: the modes are leaky, 2 k0 Im N their loss (Si also absorbs what leaks
in). Columns: Re N, Im N, loss (1/cm), kind; the PML solve's Re N and Im N with their differences
from the exact root (4 nm quadratic elements, 1 um of substrate and of air, 1 um PMLs). The PML
solve is shifted at the exact root: the check is that N is an eigenvalue of that independent
discretisation, to its error (the tests shift it at a guided N instead, where that suffices).

Run: ``python benchmarks/leaky_modes.py [--h-nm 4]``.
"""

from __future__ import annotations

import argparse

from cqdlaser.physics.materials import get_material
from cqdlaser.physics.multilayer import PlanarLayer, Stack, multilayer_modes
from cqdlaser.physics.stack_pml import pml_stack_index

WAVELENGTH = 643e-9
FILM_NM = 120.0
CLADDINGS_NM = (100.0, 200.0, 500.0, 1000.0)
SUBSTRATES = ("si", "sapphire")


def film_stack(substrate: str, cladding_nm: float) -> Stack:
    """The film on an MgF2 cladding over a substrate (materials by name), air above."""
    return Stack(
        WAVELENGTH,
        get_material(substrate).permittivity,
        (
            PlanarLayer("cladding", get_material("mgf2").permittivity, cladding_nm * 1e-9),
            PlanarLayer("film", get_material("cqd_inorganic").permittivity, FILM_NM * 1e-9),
        ),
        get_material("air").permittivity,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--h-nm", type=float, default=4.0, help="PML solve: element size (nm)")
    args = parser.parse_args(argv)
    header = (
        f"{'substrate':9} {'clad nm':>7} {'mode':4} {'Re N':>10} {'Im N':>11} {'loss /cm':>10} "
        f"{'kind':6} {'PML Re N':>10} {'PML Im N':>11} {'dRe N':>8} {'dIm/Im':>8}"
    )
    print(header)
    print("-" * len(header))
    for substrate in SUBSTRATES:
        for cladding_nm in CLADDINGS_NM:
            stack = film_stack(substrate, cladding_nm)
            for pol in ("TE", "TM"):
                mode = multilayer_modes(stack, pol)[0]
                n = mode.n_eff_complex
                check = pml_stack_index(stack, pol, n, h=args.h_nm * 1e-9)
                print(
                    f"{substrate:9} {cladding_nm:7.0f} {pol}0  {n.real:10.6f} {n.imag:11.4e} "
                    f"{mode.loss_per_cm:10.4g} {mode.kind:6} {check.real:10.6f} "
                    f"{check.imag:11.4e} {check.real - n.real:8.1e} "
                    f"{(check.imag - n.imag) / n.imag:8.1e}"
                )


if __name__ == "__main__":
    main()
