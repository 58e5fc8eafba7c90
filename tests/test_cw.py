"""A `[pump]` without `pulse_ns` is CW (the contract): its waveform, transient and steady state.

The CW transient must equal a square pulse longer than the run (the source is the same step in
time), and on the 1D stack it must approach the steady state the steady solver gives once the
substrate's diffusion time (d^2/alpha = 38 ms for 500 um of MgF2) has passed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cqdlaser
from cqdlaser.physics.source import Waveform

PAPER = Path(__file__).parent.parent / "studies" / "configs" / "paper_inorganic_mgf2.toml"
STACK = ["heat.mesh=stack", "pump.heat_fraction=0.1"]


def _cw(overrides: list[str]) -> cqdlaser.Device:
    data = cqdlaser.load_device(PAPER, overrides)
    mapping = {k: v for k, v in _tables(data).items()}
    mapping["pump"] = {k: v for k, v in mapping["pump"].items() if k != "pulse_ns"}
    return cqdlaser.load_device(mapping)


def _tables(device: cqdlaser.Device) -> dict:
    from cqdlaser.geometry.config import device_to_dict

    return device_to_dict(device)


def test_a_pump_without_pulse_is_cw() -> None:
    device = _cw(STACK)
    assert device.pump.pulse_ns is None and device.pump.pulse is None
    assert Waveform.from_pump(device.pump).kind == "cw"
    assert cqdlaser.load_device(_tables(device)).pump.pulse_ns is None  # round trip


def test_cw_transient_is_a_pulse_longer_than_the_run() -> None:
    cw = cqdlaser.heat(_cw([*STACK, "heat.end_time_us=3"]))
    long = cqdlaser.heat(
        cqdlaser.load_device(PAPER, [*STACK, "heat.end_time_us=3", "pump.pulse_ns=1e7"])
    )
    np.testing.assert_array_equal(cw.times_s, long.times_s)
    np.testing.assert_allclose(cw.film_max_temperature_k, long.film_max_temperature_k, rtol=1e-12)
    assert np.all(np.diff(cw.film_max_temperature_k) >= 0)


def test_cw_transient_reaches_the_steady_state() -> None:
    device = _cw([*STACK, "heat.end_time_us=400000", "heat.max_step_us=20000"])
    transient = cqdlaser.heat(device)
    steady = cqdlaser.heat(device, steady=True)
    rise_end = transient.film_max_temperature_k[-1] - transient.sink_temperature_k
    rise_steady = steady.steady_film_max_temperature_k - steady.sink_temperature_k
    # 0.4 s is ten substrate diffusion times: the transient has converged to the steady state.
    assert rise_end == pytest.approx(rise_steady, rel=1e-6)
