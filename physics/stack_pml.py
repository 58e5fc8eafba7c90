r"""An independent check of :mod:`physics.multilayer`: the modes of a planar stack by 1D finite
elements with perfectly matched layers (complex coordinate stretching), numpy/scipy only.

The semi-infinite substrate and cover are cut at ``substrate_depth`` below and ``cover_height``
above the layers and continued by a PML of thickness ``pml_thickness`` each, ended by
:math:`u = 0`. In the PML :math:`z \to \tilde z` with :math:`d\tilde z/dz = s(z) = 1 +
i\sigma_{max} (\zeta/L)^2`, :math:`\zeta` the depth into it: an outgoing wave (time
:math:`e^{-i\omega t}`) decays there, so a leaky mode's growing tail is absorbed instead of
reflected. Weak forms (:mod:`physics.modes`, stretched), eigenvalue :math:`N^2`:

- TE: :math:`\int (\varepsilon_\parallel u v s - k_0^{-2} u' v'/s)\,dz = N^2 \int u v s\,dz`;
- TM: :math:`\int (u v s - k_0^{-2} u' v'/(\varepsilon_\parallel s))\,dz = N^2 \int u v s/
  \varepsilon_\perp\,dz`,

complex symmetric, quadratic Lagrange elements of size at most ``h`` (nodes on every interface),
3-point Gauss quadrature, solved by ARPACK shift-and-invert about ``n_guess**2``; of the
eigenpairs nearest the shift, the mode is the one whose field lies most in the core layer. Its
errors:
:math:`O(h^4)` in :math:`N^2`, and the PML's reflection, small when
:math:`\sigma_{max} L k_z \gg 1`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, eigs, splu

from cqdlaser.physics.multilayer import Stack


def pml_stack_index(
    stack: Stack,
    polarisation: str,
    n_guess: complex,
    *,
    h: float = 4e-9,
    substrate_depth: float = 1e-6,
    cover_height: float = 1e-6,
    pml_thickness: float = 1e-6,
    sigma_max: float = 4.0,
    n_candidates: int = 6,
) -> complex:
    """The complex effective index N nearest ``n_guess`` of a stack truncated by PMLs.

    Args:
        stack: The stack.
        polarisation: ``"TE"`` or ``"TM"``.
        n_guess: The shift of the eigensolver (an estimate of N).
        h: Largest element size (m).
        substrate_depth: Substrate kept below the layers before its PML (m).
        cover_height: Cover kept above the layers before its PML (m).
        pml_thickness: Thickness of each PML (m).
        sigma_max: Largest Im(s) in the PMLs.
        n_candidates: Eigenpairs computed about the shift; the one whose field lies most in the
            core (the layer of largest Re eps_par; not a radiation, cladding or PML mode) is
            returned.
    """
    te = polarisation == "TE"
    k0 = stack.k0
    top = float(np.sum(stack.thicknesses))
    lo, hi = -substrate_depth, top + cover_height
    inner = [0.0, *np.cumsum(stack.thicknesses)]
    edges = [lo - pml_thickness, lo, *inner, hi, hi + pml_thickness]
    pairs = stack.permittivity_pairs()
    pairs = np.concatenate([pairs[:1], pairs, pairs[-1:]])
    x = np.concatenate(
        [
            np.linspace(a, b, max(2, math.ceil((b - a) / h)) + 1)[:-1]
            for a, b in itertools.pairwise(edges)
        ]
        + [[edges[-1]]]
    )
    region = np.searchsorted(np.array(edges[1:-1]), 0.5 * (x[:-1] + x[1:]), side="right")
    n_el = len(x) - 1
    q, wq = np.polynomial.legendre.leggauss(3)
    q = 0.5 * (q + 1.0)
    wq = 0.5 * wq
    phi = np.stack([(1 - q) * (1 - 2 * q), 4 * q * (1 - q), q * (2 * q - 1)])
    dphi = np.stack([4 * q - 3, 4 - 8 * q, 4 * q - 1])
    a_blocks, b_blocks = [], []
    for e in range(n_el):
        length = x[e + 1] - x[e]
        zq = x[e] + q * length
        depth = np.maximum(lo - zq, 0.0) + np.maximum(zq - hi, 0.0)
        s = 1.0 + 1j * sigma_max * (depth / pml_thickness) ** 2
        par, perp = pairs[region[e]]
        c1, c2, c3 = (par, 1.0 / k0**2, 1.0) if te else (1.0, 1.0 / (k0**2 * par), 1.0 / perp)
        mass = (phi * (wq * s * length)) @ phi.T
        stiff = (dphi * (wq / s / length)) @ dphi.T
        a_blocks.append(c1 * mass - c2 * stiff)
        b_blocks.append(c3 * mass)
    dofs = np.array([[2 * e, 2 * e + 1, 2 * e + 2] for e in range(n_el)])
    rows = np.repeat(dofs, 3, axis=1).ravel()
    cols = np.tile(dofs, (1, 3)).ravel()
    n = 2 * n_el + 1
    keep = np.arange(1, n - 1)
    a = sp.csc_matrix((np.ravel(a_blocks), (rows, cols)), shape=(n, n))[keep][:, keep]
    b = sp.csc_matrix((np.ravel(b_blocks), (rows, cols)), shape=(n, n))[keep][:, keep]
    shift = complex(n_guess) ** 2
    lu = splu((a - shift * b).tocsc())
    op = LinearOperator(a.shape, matvec=lambda v: lu.solve(b @ v), dtype=complex)
    mu, vectors = eigs(op, k=n_candidates, which="LM")
    values = shift + 1.0 / mu
    z = np.empty(n)
    z[0::2], z[1::2] = x, 0.5 * (x[:-1] + x[1:])
    z = z[keep]
    core = int(np.argmax(stack.permittivity_pairs()[1:-1, 0].real))
    inside = (z >= inner[core]) & (z <= inner[core + 1])
    power = np.abs(vectors) ** 2
    share = power[inside].sum(axis=0) / power.sum(axis=0)
    n_eff = complex(np.sqrt(values[int(np.argmax(share))]))
    return n_eff if n_eff.real > 0 else -n_eff
