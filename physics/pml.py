r"""Perfectly matched layers (PMLs) and complex eigenproblems in the real-scalar PETSc.

**The layers.** The open optical meshes (``build_cross_section(..., pml=True)``, the quarter
cell) continue the substrate below ``z_levels["pml_bottom"]`` and the cover above
``z_levels["pml_top"]`` by ``mesh.pml_thickness_um``; there the vertical coordinate is
stretched, :math:`z \to \tilde z` with

.. math:: \frac{d\tilde z}{dz} = s(z) = 1 + i\sigma(z), \qquad
          \sigma = \sigma_\mathrm{max}\,(d/L)^2,

:math:`d` the depth into the layer, :math:`L` its thickness, :math:`\sigma_\mathrm{max}` =
``mesh.pml_strength``. With time :math:`e^{-i\omega t}` an outgoing wave :math:`e^{ik_z z}` decays
there as :math:`e^{-k_z\int\sigma\,dz}`, by :math:`e^{-k_z\sigma_\mathrm{max}L/3}` at the
truncation (where the field is zero), so a radiating mode's outgoing tail is absorbed instead of
reflected and the mode's frequency becomes complex: :math:`\mathrm{Im}\,\omega < 0`, its quality
factor :math:`Q = \mathrm{Re}\,\omega / (2|\mathrm{Im}\,\omega|)`. The profile starts with zero
value and slope, so the layer need not start on an element face. In Maxwell's equations a
stretch of z alone is the uniaxial medium :math:`\varepsilon\Lambda`, :math:`\mu_0\Lambda`,
:math:`\Lambda = \mathrm{diag}(s, s, 1/s)` (:func:`pml_tensors`); in the 2D scalar problems
:math:`\partial_z \to s^{-1}\partial_z` and :math:`dz \to s\,dz`.

**The eigenproblem.** The discretised problem :math:`A x = \lambda B x` is complex symmetric.
The project's PETSc has real scalars, so it is solved in its real-equivalent form

.. math:: \begin{pmatrix} A_r & -A_i \\ A_i & A_r \end{pmatrix} w
          = \lambda \begin{pmatrix} B_r & -B_i \\ B_i & B_r \end{pmatrix} w,

twice the size, whose spectrum is that of the complex pencil together with its complex
conjugate (the real form of a complex matrix is similar to :math:`\mathrm{diag}(A, \bar A)`): an
eigenvector :math:`x` of :math:`\lambda` appears as :math:`w = (x, -ix)`, one of
:math:`\bar\lambda` as :math:`(\bar x, i\bar x)`. :func:`solve_complex_pencil` folds each pair onto
the physical eigenvalue (:math:`\mathrm{Im}\,\lambda \le 0`), recovers :math:`x = w_1 + i w_2`
(for :math:`\bar\lambda`: :math:`\overline{w_1 - i w_2}`) and keeps one mode per pair. A real
eigenvalue (a bound mode) is double in the real form and is kept once. The alternative, the
complex-scalar PETSc of ``dolfinx-solver-complex``, needs its own environment; the real form
costs about twice the factorisation (docs/physics.md, "Open boundaries").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from petsc4py import PETSc

import numpy as np

import ufl
from dolfinx import fem

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._slepc import solve_eigenproblem

FOLD_RTOL = 1e-7
"""Eigenvalues of the real form whose folded values (:math:`\\mathrm{Im} \\le 0`) differ by less
than this, relatively, are one mode of the complex pencil."""


@dataclass(frozen=True)
class PML:
    """The two PMLs of an open optical mesh.

    Attributes:
        z_bottom: The lower PML is z < z_bottom (m).
        z_top: The upper PML is z > z_top (m).
        thickness: L, each layer's thickness (m).
        strength: sigma_max, Im(s) at the truncation.
    """

    z_bottom: float
    z_top: float
    thickness: float
    strength: float

    @classmethod
    def of(cls, device: Device, mesh_data: MeshData) -> PML:
        """The PMLs of an open mesh of ``device`` (one with ``pml_bottom``/``pml_top`` levels).

        Raises:
            ValueError: The mesh has no PML levels (a closed mesh).
        """
        levels = mesh_data.z_levels
        if "pml_bottom" not in levels or "pml_top" not in levels:
            raise ValueError(
                f"the {mesh_data.kind} mesh has no perfectly matched layers (build it open: "
                "cross-section with pml=True, or the quarter-cell)"
            )
        return cls(
            levels["pml_bottom"],
            levels["pml_top"],
            device.mesh.pml_thickness_um * 1e-6,
            device.mesh.pml_strength,
        )

    def depth(self, z: Any) -> Any:
        """UFL: the depth into either PML (0 outside them)."""
        return ufl.max_value(self.z_bottom - z, 0.0) + ufl.max_value(z - self.z_top, 0.0)

    def sigma(self, z: Any) -> Any:
        """UFL: Im(s) at height z."""
        return self.strength * (self.depth(z) / self.thickness) ** 2

    def inside(self, z: Any) -> Any:
        """UFL: 1 inside either PML, 0 outside."""
        return ufl.conditional(ufl.Or(ufl.lt(z, self.z_bottom), ufl.gt(z, self.z_top)), 1.0, 0.0)


def stretch_parts(sigma: Any) -> dict[str, Any]:
    """Real and imaginary parts of s = 1 + i sigma and 1/s = (1 - i sigma)/(1 + sigma^2), as UFL
    expressions: keys ``s_re``, ``s_im``, ``inv_re``, ``inv_im``."""
    d = 1.0 + sigma**2
    return {"s_re": 1.0, "s_im": sigma, "inv_re": 1.0 / d, "inv_im": -sigma / d}


def pml_tensors(sigma: Any) -> dict[str, Any]:
    r"""Real and imaginary parts of :math:`\Lambda = \mathrm{diag}(s, s, 1/s)` and
    :math:`\Lambda^{-1} = \mathrm{diag}(1/s, 1/s, s)` (a stretch of z), as UFL 3x3 matrices: keys
    ``lam_re``, ``lam_im``, ``inv_re``, ``inv_im``."""
    p = stretch_parts(sigma)

    def diag(a: Any, b: Any) -> Any:
        return ufl.as_matrix([[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, b]])

    return {
        "lam_re": diag(p["s_re"], p["inv_re"]),
        "lam_im": diag(p["s_im"], p["inv_im"]),
        "inv_re": diag(p["inv_re"], p["s_re"]),
        "inv_im": diag(p["inv_im"], p["s_im"]),
    }


@dataclass
class ComplexPair:
    """One eigenpair of a complex pencil: ``value`` (Im <= 0) and the eigenvector's real and
    imaginary parts (PETSc vectors laid out like the pencil's rows; the caller destroys them)."""

    value: complex
    re: PETSc.Vec
    im: PETSc.Vec


def real_form(re: PETSc.Mat, im: PETSc.Mat) -> tuple[PETSc.Mat, tuple[PETSc.IS, PETSc.IS]]:
    """The real form [[re, -im], [im, re]] of a complex matrix, as one AIJ matrix, and the index
    sets of its two block rows (the real and imaginary parts of a vector)."""
    minus = im.copy()
    minus.scale(-1.0)
    nest = PETSc.Mat().createNest([[re, minus], [im, re]], comm=re.getComm())
    rows, _ = nest.getNestISs()
    blocks = (rows[0].duplicate(), rows[1].duplicate())  # the nest's own die with it
    out = nest.convert("aij", PETSc.Mat())
    nest.destroy()
    minus.destroy()
    return out, blocks


def solve_complex_pencil(
    a: tuple[PETSc.Mat, PETSc.Mat],
    b: tuple[PETSc.Mat, PETSc.Mat],
    *,
    prefix: str,
    target: float,
    nev: int,
    options: Mapping[str, Any],
) -> tuple[list[ComplexPair], dict[str, Any]]:
    """The eigenpairs of the complex pencil (A_r + i A_i) x = lambda (B_r + i B_i) x nearest a
    real ``target``, by its real form (module docstring), sorted by distance to the target.

    Args:
        a: (A_r, A_i).
        b: (B_r, B_i).
        prefix: PETSc options prefix of the SLEPc solver.
        target: Shift (real).
        nev: Number of eigenpairs of the complex pencil wanted (the real form is asked for
            twice as many).
        options: SLEPc/PETSc options (non-Hermitian problem).

    Returns:
        The pairs and the solve statistics (``iterations``, ``converged``, ``options``,
        ``size``: the real form's size).

    Raises:
        SolverError: SLEPc failed or an eigenpair failed its residual check on the real form.
    """
    big_a, (top, bottom) = real_form(*a)
    big_b, b_blocks = real_form(*b)
    for index_set in b_blocks:
        index_set.destroy()
    try:
        solver, run = solve_eigenproblem(
            big_a,
            big_b,
            prefix=prefix,
            target=target,
            nev=2 * nev,
            options=dict(options),
            hermitian=False,
        )
        try:
            pairs = _physical_pairs(solver, big_a, top, bottom)
            stats = {
                "iterations": solver.getIterationNumber(),
                "converged": solver.getConverged(),
                "options": run,
                "size": big_a.getSize()[0],
            }
        finally:
            solver.destroy()
    finally:
        for obj in (big_a, big_b, top, bottom):
            obj.destroy()
    pairs.sort(key=lambda p: abs(p.value - target))
    return pairs, stats


def _physical_pairs(
    solver: Any, big_a: PETSc.Mat, top: PETSc.IS, bottom: PETSc.IS
) -> list[ComplexPair]:
    """Fold the real form's eigenpairs onto the complex pencil's (module docstring)."""
    vr, vi = big_a.createVecs()
    found: list[tuple[complex, float, PETSc.Vec, PETSc.Vec]] = []
    try:
        for i in range(solver.getConverged()):
            value = complex(solver.getEigenpair(i, vr, vi))
            parts = [v.getSubVector(s) for v in (vr, vi) for s in (top, bottom)]
            r1, r2, i1, i2 = parts
            xr, xi = r1.duplicate(), r1.duplicate()
            if value.imag <= 0.0:
                xr.waxpy(-1.0, i2, r1)  # Re(w1 + i w2) = r1 - i2
                xi.waxpy(1.0, r2, i1)  # Im(w1 + i w2) = i1 + r2
            else:
                xr.waxpy(1.0, i2, r1)  # conj(w1 - i w2): r1 + i2
                xi.waxpy(-1.0, i1, r2)  # and -(i1 - r2)
                value = value.conjugate()
            for v, s, p in zip((vr, vr, vi, vi), (top, bottom, top, bottom), parts, strict=True):
                v.restoreSubVector(s, p)
            weight = xr.norm() ** 2 + xi.norm() ** 2
            found.append((value, weight, xr, xi))
    finally:
        vr.destroy()
        vi.destroy()
    return _fold(found)


def _fold(found: list[tuple[complex, float, PETSc.Vec, PETSc.Vec]]) -> list[ComplexPair]:
    """One pair per cluster of equal folded eigenvalues: the member whose recovered vector is
    largest (the others are its conjugate partner or a rotation of a real double eigenvalue)."""
    order = sorted(range(len(found)), key=lambda k: -found[k][1])
    kept: list[ComplexPair] = []
    for k in order:
        value, weight, xr, xi = found[k]
        duplicate = any(abs(value - p.value) <= FOLD_RTOL * max(abs(value), 1e-300) for p in kept)
        if duplicate or weight <= 0.0:
            xr.destroy()
            xi.destroy()
            continue
        kept.append(ComplexPair(value, xr, xi))
    return kept


def quality_factor(value: complex) -> float:
    """Q = Re(omega) / (2 |Im(omega)|) of an eigenvalue lambda = k0^2 (omega = c k0); inf for a
    real one."""
    k0 = np.sqrt(complex(value))
    if k0.real < 0.0:
        k0 = -k0
    return float(k0.real / (2.0 * abs(k0.imag))) if k0.imag != 0.0 else float("inf")


def load_vector(f: fem.Function, vec: PETSc.Vec) -> None:
    """Copy a PETSc vector laid out like ``f``'s owned dofs into ``f`` and update its ghosts."""
    n = f.function_space.dofmap.index_map.size_local * f.function_space.dofmap.index_map_bs
    f.x.array[:n] = vec.getArray(readonly=True)
    f.x.scatter_forward()


def normalise_phase(re: fem.Function, im: fem.Function) -> None:
    """Rotate the complex field's phase so that its largest dof is real and positive, and scale
    it to 1 there (a global phase and scale are free)."""
    n = re.function_space.dofmap.index_map.size_local
    z = re.x.array[:n] + 1j * im.x.array[:n]
    i = int(np.argmax(np.abs(z))) if n else -1
    local = (abs(z[i]), z[i]) if n else (-1.0, 1.0 + 0j)
    peak = max(re.function_space.mesh.comm.allgather(local), key=lambda p: p[0])[1]
    full = (re.x.array + 1j * im.x.array) / peak
    re.x.array[:] = full.real
    im.x.array[:] = full.imag
