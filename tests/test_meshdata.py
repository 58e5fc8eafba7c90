"""MeshData persistence and the 1D stack mesh: names, measures, and a write/read round trip."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

import pytest

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.meshdata import read_mesh, write_mesh
from cqdlaser.geometry.stack import build_stack, graded_elements

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"


@pytest.mark.parametrize("optical", [True, False])
def test_stack_regions_have_layer_thicknesses(optical: bool) -> None:
    device = load_device(PAPER, ["mesh.optical_padding_um=1.0"])
    data = build_stack(device, MPI.COMM_WORLD, optical=optical)
    m = data.region_measures()
    assert m["film"] == pytest.approx(120e-9, rel=1e-12)
    assert m["grating"] == pytest.approx(130e-9, rel=1e-12)
    assert m["cap"] == pytest.approx(1000e-9, rel=1e-12)
    assert m["substrate"] == pytest.approx(1e-6 if optical else 500e-6, rel=1e-12)
    assert ("cover" in m) == optical
    assert set(data.boundaries) == {"top", "bottom", "interface"}
    assert data.untagged_cells() == 0
    # at least mesh.film_elements elements across the film
    counts = {
        name: data.comm.allreduce(
            int(
                (
                    data.cell_tags.values[
                        data.cell_tags.indices < data.mesh.topology.index_map(1).size_local
                    ]
                    == tag
                ).sum()
            ),
            op=MPI.SUM,
        )
        for name, tag in data.regions.items()
    }
    assert counts["film"] >= device.mesh.film_elements


def test_graded_substrate_is_coarse_far_from_the_film() -> None:
    n = graded_elements(500e-6, 40e-9, 1.3)
    assert 40e-9 * (1.3**n - 1) / 0.3 >= 500e-6 > 40e-9 * (1.3 ** (n - 1) - 1) / 0.3


def test_write_read_round_trip(shared_tmp: Path) -> None:
    device = load_device(PAPER)
    data = build_stack(device, MPI.COMM_WORLD, optical=True)
    write_mesh(data, shared_tmp / "stack", info={"note": "test"})
    again = read_mesh(shared_tmp / "stack", MPI.COMM_WORLD)
    assert again.regions == data.regions and again.boundaries == data.boundaries
    assert again.kind == "stack" and again.z_levels == pytest.approx(data.z_levels)
    assert again.region_measures() == pytest.approx(data.region_measures(), rel=1e-12)
    assert not list(shared_tmp.glob("stack/.*tmp*"))
