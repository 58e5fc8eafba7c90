"""Exact modes of a planar multilayer by the transfer matrix: complex roots of the TE dispersion
relation, including modes that leak into a substrate of higher index than the mode's.

The FEM stack solver (:mod:`physics.modes`) truncates the domain and returns only guided modes; a
mode above a high-index substrate (Si, diamond, SiC under a low-index cladding) radiates into it and
has a complex effective index. Here the substrate and the cover are semi-infinite: (E, E') is
carried up from the substrate through the layers and must decay into the cover; in a substrate of
higher index than the mode the field is the outgoing (downward) wave. 2 k0 Im(N) is the modal power
loss. Verified against the FEM stack solver where both apply (tests/test_laser_studies.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.layers import layer_stack
from cqdlaser.physics.permittivity import region_permittivity


def te_dispersion(
    n2: complex,
    k0: float,
    layers: Sequence[tuple[complex, float]],
    eps_sub: complex,
    eps_cover: complex,
) -> complex:
    """Zero at a TE mode of effective permittivity n2 = N^2: (E, E') carried from the substrate
    through ``layers`` ((eps, thickness) upwards) must decay into the cover. In a substrate of
    higher index than N the field is the outgoing (downward radiating) wave: a leaky mode."""
    if eps_sub.real > n2.real:
        g = -1j * k0 * np.sqrt(complex(eps_sub - n2))
    else:
        g = k0 * np.sqrt(complex(n2 - eps_sub))
    state = np.array([1.0, g], dtype=complex)
    for eps, t in layers:
        g = k0 * np.sqrt(complex(n2 - eps))
        c, s = np.cosh(g * t), np.sinh(g * t)
        state = np.array([[c, s / g], [g * s, c]]) @ state
    return complex(state[1] + k0 * np.sqrt(complex(n2 - eps_cover)) * state[0])


def leaky_te_index(device: Device, n_eff_seed: float, *, tol: float = 1e-13) -> complex:
    """Complex effective index N of the TE mode of a device's planar stack near ``n_eff_seed``.

    The substrate and the cover (air) are semi-infinite; the grating layer enters with its
    in-plane permittivity. Secant iterations on N^2.

    Args:
        device: The device (its layer stack at ``optics.wavelength_nm``).
        n_eff_seed: Starting effective index (a nearby guided mode's).
        tol: Relative tolerance on N^2.

    Returns:
        N, with 2 k0 Im(N) the modal power loss (1/m).

    Raises:
        RuntimeError: when the secant iteration does not converge.
    """
    eps = region_permittivity(device)
    eps["cover"] = 1.0 + 0j
    k0 = 2.0 * math.pi / device.optics.wavelength
    layers = []
    for layer in layer_stack(device)[1:]:
        e = eps[layer.name]
        layers.append((complex(e[0] if isinstance(e, tuple) else e), layer.thickness))
    eps_sub = complex(eps["substrate"])  # type: ignore[arg-type]

    def f(n2: complex) -> complex:
        return te_dispersion(n2, k0, layers, eps_sub, eps["cover"])

    x0 = complex(n_eff_seed**2)
    x1 = x0 * (1.0 + 1e-6) + 1e-7j
    f0, f1 = f(x0), f(x1)
    for _ in range(200):
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0)
        if abs(x2 - x1) < tol * abs(x2):
            return complex(np.sqrt(x2))
        x0, f0, x1, f1 = x1, f1, x2, f(x2)
    raise RuntimeError(f"leaky_te_index: no convergence from n_eff = {n_eff_seed}")
