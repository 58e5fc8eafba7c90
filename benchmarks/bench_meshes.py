"""Time and peak memory to build each mesh kind for the paper device.

Each kind is built in a fresh process (so that the peak resident memory is its own) and one table
row is printed: kind, cells, vertices, min quality, seconds, peak memory (MiB). For
``device-resolved`` the row also gives the resolved pillars (in the quarter), the seconds spent
building the mesh on rank 0 (``mesh s``: the rest is DOLFINx distributing it) and the cells per
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
import time
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
    from cqdlaser.geometry.config import apply_overrides, device_from_dict, read_config

    path = config or (str(PAPER_CONFIG) if PAPER_CONFIG.is_file() else None)
    data = read_config(path) if path else PAPER
    return device_from_dict(apply_overrides(data, overrides))


def build_one(kind: str, config: str | None, overrides: list[str]) -> dict[str, object]:
    """Build one mesh kind in this process; counts, quality, seconds and peak memory (MiB)."""
    import cqdlaser.geometry  # noqa: F401  (orders the DOLFINx imports)
    from cqdlaser.geometry.builders import build_mesh

    device = _device(config, overrides)
    extra: dict[str, object] = {}
    start = time.perf_counter()
    if kind == "device-resolved":
        from cqdlaser.geometry import device_mesh

        nx, ny = device_mesh.patch_pillars(device)
        extra["pillars"] = nx * ny
        build_resolved = device_mesh._resolved_mesh

        def timed(*args: object) -> None:
            begin = time.perf_counter()
            build_resolved(*args)  # type: ignore[arg-type]
            extra["mesh_seconds"] = time.perf_counter() - begin

        device_mesh._resolved_mesh = timed  # type: ignore[assignment]
        data = build_mesh(device, "device", resolved=True)
    elif kind == "stack":
        data = build_mesh(device, "stack", optical=False)
    else:
        data = build_mesh(device, kind)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "kind": kind,
        **data.counts(),
        "min_quality": data.quality_min,
        "seconds": seconds,
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
        f"{'peak MiB':>10}{'pillars':>9}{'mesh s':>9}{'cells/pillar':>14}"
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
            f"{r['seconds']:>10.2f}{r['peak_mib']:>10.0f}"
        )
        if "pillars" in r:
            row += f"{r['pillars']:>9}{r['mesh_seconds']:>9.2f}{r['cells'] / r['pillars']:>14.0f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
