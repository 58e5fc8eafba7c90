"""The laser under its pump: how long it lases (from the transient film temperature), its thermal
resistance (from the steady state), and whether and between which pumps it can lase CW."""

from __future__ import annotations

import math
import time
from typing import Any

from mpi4py import MPI

from cqdlaser.geometry.device import Device
from cqdlaser.physics.heat import HeatHistory, HeatProblem
from cqdlaser.physics.laser import (
    KW_CM2,
    CWResult,
    ThresholdModel,
    cw_exponential,
    cw_window,
    lasing_duration,
    lasing_heat_scale,
    steady_temperature_lasing,
    thermal_resistance,
)
from cqdlaser.physics.source import heat_fraction_origin
from cqdlaser.studies.thermal import heat_materials, heat_mesh
from cqdlaser.studies.threshold import device_threshold, lasing_mode_record


def run_lasing(device: Device, comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Lasing duration, thermal resistance and the CW window of a device.

    The transient runs over the pulse (``pump.pulse_ns``; ``heat.end_time_us`` for a CW pump). The
    thermal resistance R is the steady film-maximum rise per unit pump intensity. With constant
    conductivities the device is linear and the CW window is the closed form of
    :func:`physics.laser.cw_exponential` (exponential threshold) or :func:`cw_window` on
    T_ss(P) = T_sink + R P; with ``heat.nonlinear`` it is :func:`cw_window` on steady k(T) solves.
    With ``laser.slope_efficiency`` > 0 the heat follows the lasing state (light that leaves as
    laser emission is not heat): in the transient the source is rescaled after every step from the
    film's maximum temperature, and the steady states are self-consistent
    (:func:`physics.laser.steady_temperature_lasing`).

    The threshold is the ``[laser]`` reference's scaled by the device's lasing mode (gain
    confinement and modal loss) in the model of ``[laser] optics``
    (:func:`studies.threshold.device_threshold`: the stack's fundamental mode, or the full-vector
    band edge of least threshold gain); a device without such a mode does not lase (its heat is
    still computed).
    """
    t0 = time.perf_counter()
    model, optics = device_threshold(device, comm)
    materials = heat_materials(device, comm)
    sink = device.heat.sink_temperature_k
    pulse = device.pump.pulse
    with HeatProblem.from_device(device, heat_mesh(device, comm), materials) as problem:
        history, duration = _transient(device, problem, model)
        problem.steady()
        rise = problem.film_max_temperature() - sink
        resistance = thermal_resistance(rise, device.pump.intensity)  # at this pump
        nonlinear = device.heat.nonlinear and any(
            m.conductivity_exponent != 0.0 for m in materials.values()
        )
        if math.isfinite(model.threshold):
            cw, method = _cw(device, problem, model, resistance, nonlinear)
        else:
            cw, method = CWResult(False, None, math.nan, 0.0), "no lasing mode"
    pump_range = None if cw.pump_range is None else [v / KW_CM2 for v in cw.pump_range]
    return {
        "lasing_duration_s": duration,
        "pulse_s": pulse,
        "pump_intensity_kw_cm2": device.pump.intensity_kw_cm2,
        "threshold_at_sink_kw_cm2": float(model(sink)) / KW_CM2,
        "reference_threshold_kw_cm2": device.laser.threshold_kw_cm2,
        "threshold_factor": optics.factor,
        "lasing_mode": lasing_mode_record(optics),
        "film_max_temperature_at_end_k": float(history.film_max_temperature[-1]),
        "thermal_resistance_k_cm2_per_kw": resistance * KW_CM2,
        "steady_film_max_temperature_k": sink + rise,
        "cw_possible": cw.possible,
        "cw_pump_range_kw_cm2": pump_range,
        "cw_criterion": None if math.isnan(cw.criterion) else cw.criterion,
        "cw_margin": cw.margin,
        "cw_method": method,
        "threshold_model": model.model,
        "slope_efficiency": device.laser.slope_efficiency,
        "heat_fraction": problem.source.heat_fraction,
        "heat_fraction_origin": heat_fraction_origin(device),
        "wall_time_s": time.perf_counter() - t0,
        "times_s": history.times,
        "film_max_temperature_k": history.film_max_temperature,
    }


def _transient(
    device: Device, problem: HeatProblem, model: ThresholdModel
) -> tuple[HeatHistory, float | None]:
    """The transient over the pulse (``heat.end_time_us`` for a CW pump) and the lasing duration.

    With ``laser.slope_efficiency`` > 0 the source is rescaled after every step from the film's
    maximum temperature (light that leaves as laser emission is not heat).
    """
    intensity = device.pump.intensity
    end = device.pump.pulse if device.pump.pulse is not None else device.heat.end_time
    slope = device.laser.slope_efficiency
    heat_fraction = problem.source.heat_fraction

    def follow_lasing(p: HeatProblem) -> None:
        threshold = float(model(p.film_max_temperature()))
        p.source_scale = lasing_heat_scale(intensity, threshold, heat_fraction, slope)

    history = problem.run(end, callback=follow_lasing if slope > 0.0 else None)
    problem.source_scale = 1.0
    duration = lasing_duration(
        history.times, history.film_max_temperature, intensity, model, pulse=end
    )
    return history, duration


def _cw(
    device: Device,
    problem: HeatProblem,
    model: ThresholdModel,
    resistance: float,
    nonlinear: bool,
) -> tuple[CWResult, str]:
    """The CW window and how it was found: the closed form for a linear device with the
    exponential threshold, else :func:`cw_window` on the steady temperature T_ss(P) (linear,
    k(T) solves, and/or self-consistent with the laser emission)."""
    sink = device.heat.sink_temperature_k
    slope = device.laser.slope_efficiency
    pump_max = 100.0 * model.threshold
    if not (nonlinear or slope > 0.0):
        if model.model == "exponential":
            return cw_exponential(resistance, model, sink), "closed form (Lambert W)"
        window = cw_window(lambda p: sink + resistance * p, model, pump_max=pump_max)
        return window, "numerical (linear device)"
    intensity = device.pump.intensity
    heat_fraction = problem.source.heat_fraction

    def heated(p: float, scale: float) -> float:
        if not nonlinear:
            return sink + resistance * p * scale
        problem.steady(factor=scale * p / intensity)
        return problem.film_max_temperature()

    def steady_temperature(p: float) -> float:
        return steady_temperature_lasing(
            p, lambda scale: heated(p, scale), model, heat_fraction, slope
        )

    reasons = [
        w for w, on in (("steady k(T) solves", nonlinear), ("laser emission", slope > 0)) if on
    ]
    window = cw_window(steady_temperature, model, pump_max=pump_max, samples=60)
    return window, f"numerical ({', '.join(reasons)})"
