"""One threshold model with the optics: the lasing mode's gain confinement and modal loss (exact,
guided or leaky) scale the ``[laser]`` reference threshold, for the lasing command, the design
studies and the API alike."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import cqdlaser
from cqdlaser.geometry.config import load_device
from cqdlaser.physics.laser import (
    KW_CM2,
    device_threshold_model,
    lasing_optics,
    optical_threshold_factor,
)

CONFIGS = Path(__file__).parent.parent / "studies" / "configs"
PAPER = CONFIGS / "paper_inorganic_mgf2.toml"
SI = CONFIGS / "si_sio2_cladding.toml"
THIN_MGF2 = ["cladding.material=mgf2", "cladding.thickness_nm=100"]


def test_factor_closed_form() -> None:
    assert optical_threshold_factor(0.4, 200.0, 0.8, 400.0) == pytest.approx(2.0 * 1.5)
    assert optical_threshold_factor(math.nan, 0.0, 0.8, 400.0) == math.inf
    assert optical_threshold_factor(0.0, 0.0, 0.8, 400.0) == math.inf


@pytest.mark.parametrize(
    "config",
    ["paper_inorganic_mgf2", "paper_organic_mgf2", "ase_inorganic_glass", "ase_organic_glass"],
)
def test_a_config_with_its_own_threshold_is_its_own_reference(config: str) -> None:
    """The paper laser's TE0 is the default reference (factor 1); the configs whose threshold
    is their own measurement (the organic laser, the ASE films) name their own TE0 as the
    reference, so their stated threshold holds as it is."""
    optics = lasing_optics(load_device(CONFIGS / f"{config}.toml"))
    assert optics.kind == "guided" and optics.loss_per_cm == 0.0
    assert optics.factor == pytest.approx(1.0, abs=1e-3)


def test_leaky_mode_on_si_under_a_thin_cladding() -> None:
    """TE0 of the film on Si under 100 nm of MgF2 leaks into the silicon: its loss (>1000/cm)
    raises the threshold 3.7x; under 1000 nm of SiO2 the leak is negligible; bare Si guides no
    TE0 at all (no laser)."""
    thin = lasing_optics(load_device(SI, THIN_MGF2))
    assert thin.kind == "leaky" and thin.loss_per_cm > 1000.0
    assert thin.factor == pytest.approx(
        (0.8115 / thin.gain_confinement) * (1.0 + thin.loss_per_cm / 400.0), rel=1e-12
    )
    thick = lasing_optics(load_device(SI))
    assert thick.kind == "leaky" and thick.loss_per_cm < 1e-3
    bare = lasing_optics(load_device(SI, ["cladding=false"]))
    assert bare.kind == "none" and bare.factor == math.inf
    model, _ = device_threshold_model(load_device(SI, THIN_MGF2))
    assert model.threshold == pytest.approx(52.0 * KW_CM2 * thin.factor, rel=1e-12)


def test_lasing_says_no_cw_where_only_the_heat_would_allow_it() -> None:
    """At a 20 kW/cm2 reference threshold the film on Si under 100 nm MgF2 would lase CW by its
    heat alone (a = R P_th0/T0 = 0.16 < 1/e), but its leaky mode raises the threshold 3.7x: no
    CW. The same device with a negligible loss budget effect (a huge budget) lases CW."""
    base = [*THIN_MGF2, "laser.threshold_kw_cm2=20", "mesh.scale=3", "heat.end_time_us=1"]
    leaky = cqdlaser.lasing(cqdlaser.load_device(SI, base))
    assert leaky.lasing_mode["kind"] == "leaky" and leaky.threshold_factor > 3.0
    assert leaky.threshold_at_sink_kw_cm2 == pytest.approx(20.0 * leaky.threshold_factor)
    assert not leaky.cw_possible
    lossless = cqdlaser.lasing(cqdlaser.load_device(SI, [*base, "laser.loss_budget_per_cm=1e6"]))
    assert lossless.cw_possible
    assert leaky.cw_margin == pytest.approx(
        lossless.cw_margin * lossless.threshold_factor / leaky.threshold_factor, rel=1e-9
    )


def test_modes_lists_guided_and_leaky_modes_exactly() -> None:
    """`modes` on the paper laser: guided, the FEM twin within 1e-5 of the exact root; on Si
    under 100 nm MgF2: every mode leaky with its exact loss, no FEM fields."""
    paper = cqdlaser.modes(cqdlaser.load_device(PAPER))
    assert {m.kind for m in paper.modes} == {"guided"}
    for m in paper.modes:
        assert m.fem_n_eff == pytest.approx(m.n_eff, abs=1e-5) and m.n_eff_imag == 0.0
        assert sum(m.confinement.values()) == pytest.approx(1.0, abs=1e-9)
    leaky = cqdlaser.modes(cqdlaser.load_device(SI, THIN_MGF2))
    te0 = leaky.select("TE", 0)
    assert te0.kind == "leaky" and te0.loss_per_cm > 1000.0 and te0.group_index is None
    assert te0.loss_per_cm == pytest.approx(
        2 * (2 * math.pi / 643e-9) * te0.n_eff_imag / 100, rel=1e-12
    )
    assert te0.confinement["substrate"] == 0.0


def test_bands_on_a_leaky_stack_stops_with_one_line() -> None:
    with pytest.raises(ValueError, match=r"TE0 mode leaks into the substrate .* 1\d{3}/cm"):
        cqdlaser.bands(cqdlaser.load_device(SI, THIN_MGF2))
    with pytest.raises(ValueError, match="no TE mode"):
        cqdlaser.bands(cqdlaser.load_device(SI, ["cladding=false"]))
