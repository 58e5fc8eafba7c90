"""No mesh loses a region: at the ends of every layer's accepted thickness range, every mesh kind
holds every region of the device, each with its analytic thickness, and no untagged cell.

Gmsh merges points closer than its geometry tolerance; at its default (1e-8, in our metres) layers
thinner than 10 nm vanished from the extruded meshes without a word.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import cqdlaser
from cqdlaser.geometry.builders import build_mesh

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
CLADDED = Path(__file__).parent.parent / "studies" / "configs" / "al_mgf2_cladding.toml"
COARSE = ["mesh.scale=10", "mesh.lateral_extent_um=60", "substrate.thickness_um=60"]

THIN = [
    (PAPER, "grating.pillar_height_nm=5"),
    (PAPER, "film.thickness_nm=5"),
    (PAPER, "cap.thickness_nm=1"),
    (CLADDED, "cladding.thickness_nm=1"),
]
"""The lower end of each layer's accepted range (the upper ends only make meshes bigger)."""

LAYERED = {
    "stack": ("substrate", "cladding", "grating", "film", "cap"),
    "axisymmetric": ("substrate", "cladding", "grating", "film", "cap"),
    "device": ("substrate", "cladding", "grating", "film", "cap"),
    "cross-section": ("substrate", "cladding", "pillars", "grating_fill", "film", "cap"),
}


def _expected(device: cqdlaser.Device, kind: str) -> set[str]:
    present = {
        "substrate": True,
        "cladding": device.cladding is not None,
        "grating": device.grating is not None,
        "pillars": device.grating is not None,
        "grating_fill": device.grating is not None,
        "film": True,
        "cap": device.cap is not None,
    }
    return {name for name in LAYERED[kind] if present[name]}


@pytest.mark.parametrize("kind", sorted(LAYERED))
@pytest.mark.parametrize(("config", "override"), THIN, ids=[o for _, o in THIN])
def test_thin_layers_keep_their_regions(config: Path, override: str, kind: str) -> None:
    # The device mesh's lateral elements follow the film thickness: coarsest scale for a 5 nm film.
    scale = ["mesh.scale=20"] if kind == "device" and override.startswith("film.") else []
    device = cqdlaser.load_device(config, [*COARSE, *scale, override])
    data = build_mesh(device, kind, optical=False if kind == "stack" else None)
    measures = data.region_measures()
    assert _expected(device, kind) <= set(measures), sorted(measures)
    assert all(v > 0 for v in measures.values())
    assert data.untagged_cells() == 0
    if kind == "stack":
        key, value = override.split("=")
        layer = {"grating.pillar_height_nm": "grating", "film.thickness_nm": "film"}.get(
            key, key.split(".")[0]
        )
        assert measures[layer] == pytest.approx(float(value) * 1e-9, rel=1e-9)
