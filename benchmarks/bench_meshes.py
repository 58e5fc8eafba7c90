"""Time and peak memory to build each mesh kind for the paper device.

Each kind is built in a fresh process (so that the peak resident memory is its own) through the
public API (``cqdlaser.mesh``), and one table row is printed: kind, cells, vertices, min quality,
seconds, the seconds split into Gmsh on rank 0 (``gmsh s``) and DOLFINx distributing the mesh
(``distr. s``), read from the library's named ``dolfinx.common.Timer``s, and peak memory (MiB).
For ``device-resolved`` the row also gives the resolved pillars (in the quarter) and the cells per
pillar; ``--resolved-pillars-um`` takes a comma-separated list (one row each, ``paper`` for the
default patch: the spot plus a margin).

    python benchmarks/bench_meshes.py
    python benchmarks/bench_meshes.py --kinds device-resolved --resolved-pillars-um 2,4,8 --scale 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cqdlaser.geometry.device import Device

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIG = ROOT / "studies" / "configs" / "paper_inorganic_mgf2.toml"
KINDS = ("stack", "cross-section", "cell", "axisymmetric", "device", "device-resolved")
# The paper device, for when the config file is not there.
PAPER = {
    "film": {"material": "cqd_inorganic", "thickness_nm": 120},
    "grating": {"period_nm": 430, "pillar_diameter_nm": 160, "pillar_height_nm": 130},
    "cap": {"material": "sog", "thickness_nm": 1000},
    "substrate": {"material": "mgf2", "thickness_um": 500},
    "pump": {"spot_um": [30, 50]},
}


def _device(config: str | None, overrides: list[str]) -> Device:
    import cqdlaser

    path = config or (str(PAPER_CONFIG) if PAPER_CONFIG.is_file() else None)
    return cqdlaser.load_device(path if path else PAPER, overrides)


def _seconds(timer: str) -> float:
    """Total wall seconds of a named dolfinx Timer (0 where it never ran on this rank)."""
    import dolfinx.common

    try:
        return dolfinx.common.timing(timer)[1].total_seconds()
    except RuntimeError:
        return 0.0


def build_one(kind: str, config: str | None, overrides: list[str]) -> dict[str, object]:
    """Build one mesh kind in this process; counts, quality, seconds and peak memory (MiB).

    Seconds come from the library's named timers: Gmsh on rank 0 (``mesh s``, the hand-over
    excluded) and the hand-over to the distributed mesh.
    """
    import cqdlaser
    from cqdlaser.geometry.builders import DISTRIBUTE_TIMER, GMSH_TIMER

    device = _device(config, overrides)
    extra: dict[str, object] = {}
    resolved = kind == "device-resolved"
    if resolved:
        from cqdlaser.geometry.device_mesh import patch_pillars

        nx, ny = patch_pillars(device)
        extra["pillars"] = nx * ny
    result = cqdlaser.mesh(device, "device" if resolved else kind, resolved=resolved)
    distribute = _seconds(DISTRIBUTE_TIMER)
    extra["mesh_seconds"] = _seconds(GMSH_TIMER) - distribute
    extra["distribute_seconds"] = distribute
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "kind": kind,
        "cells": result.cells,
        "vertices": result.vertices,
        "min_quality": result.min_quality,
        "seconds": result.build_s,
        "peak_mib": peak,
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--config", help="device TOML (default: the paper's MgF2 device)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated mesh kinds")
    parser.add_argument("--scale", type=float, default=None, help="mesh.scale override")
    parser.add_argument(
        "--resolved-pillars-um",
        default="paper",
        help="half-widths of the resolved patch, comma-separated (paper: the spot plus a margin, "
        "2356 pillars)",
    )
    parser.add_argument("--set", action="append", default=[], help="section.key=value override")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per kind")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    overrides = list(args.set)
    if args.scale is not None:
        overrides.append(f"mesh.scale={args.scale}")
    if args.one:
        print(json.dumps(build_one(args.one, args.config, overrides)))
        return 0

    print(
        f"{'kind':<16}{'cells':>12}{'vertices':>12}{'min quality':>13}{'seconds':>10}"
        f"{'gmsh s':>9}{'distr. s':>9}{'peak MiB':>10}{'pillars':>9}{'cells/pillar':>14}"
    )
    runs = []
    for kind in args.kinds.split(","):
        if kind != "device-resolved":
            runs.append((kind, kind, overrides))
            continue
        for value in args.resolved_pillars_um.split(","):
            patch = [] if value == "paper" else [f"mesh.resolved_pillars_um={value}"]
            runs.append((kind, f"resolved {value}", overrides + patch))
    for kind, label, extra in runs:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            kind,
            *(["--config", args.config] if args.config else []),
        ]
        cmd += [a for o in extra for a in ("--set", o)]
        try:
            run = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT
            )
        except subprocess.TimeoutExpired:
            print(f"{label:<16}  (over {args.timeout:g} s)")
            continue
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["?"])[-1]
            note = "not built yet" if "ModuleNotFoundError" in last else last[:90]
            print(f"{label:<16}  skipped: {note}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        row = (
            f"{label:<16}{r['cells']:>12}{r['vertices']:>12}{r['min_quality']:>13.2e}"
            f"{r['seconds']:>10.2f}{r['mesh_seconds']:>9.2f}{r['distribute_seconds']:>9.2f}"
            f"{r['peak_mib']:>10.0f}"
        )
        if "pillars" in r:
            row += f"{r['pillars']:>9}{r['cells'] / r['pillars']:>14.0f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
