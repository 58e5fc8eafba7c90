r"""Guided TE and TM modes of the 1D layer stack, and first-order perturbations of them.

The stack (``geometry.stack.build_stack(..., optical=True)``) is an interval along :math:`z`
(``x[0]``, m) with one region per layer; its outermost regions (substrate below ``bottom``, cover
above ``top``) continue as homogeneous half-spaces beyond the mesh, whose ends are exact
transparent conditions (below), so that no answer depends on where the mesh stops. A mode
propagates along :math:`x` as :math:`e^{i\beta x}`; :math:`k_0 = 2\pi/\lambda` and
:math:`N = n_\mathrm{eff} = \beta/k_0`.
A region's relative permittivity is a number, or a pair :math:`(\varepsilon_\parallel,
\varepsilon_\perp)` for a uniaxial layer with its axis along :math:`z`:
:math:`\varepsilon_\parallel` for fields in the plane of the layer (:math:`x, y`),
:math:`\varepsilon_\perp` for the field normal to it (:math:`z`).

Equations (real operators, :math:`\varepsilon \to \mathrm{Re}\,\varepsilon`):

- TE, :math:`E_y(z)`: :math:`E'' + k_0^2\varepsilon_\parallel E = \beta^2 E`. Weak form, eigenvalue
  :math:`N^2`: :math:`\int (\varepsilon_\parallel E v - k_0^{-2} E' v') = N^2 \int E v`.
- TM, :math:`H_y(z)`: from Maxwell's equations with :math:`E_x = H'/(i\omega\varepsilon_0
  \varepsilon_\parallel)` and :math:`E_z = -\beta H/(\omega\varepsilon_0\varepsilon_\perp)`,
  :math:`(H'/\varepsilon_\parallel)' + k_0^2 H = \beta^2 H/\varepsilon_\perp`. Weak form:
  :math:`\int (H v - k_0^{-2} H' v'/\varepsilon_\parallel) = N^2 \int H v/\varepsilon_\perp`.
  (Inside a uniaxial layer :math:`H'' = \varepsilon_\parallel(\beta^2/\varepsilon_\perp - k_0^2) H`,
  with :math:`H` and :math:`H'/\varepsilon_\parallel` continuous across interfaces.)

Transparent ends (the exact Dirichlet-to-Neumann map of a guided field): beyond an end
:math:`z_e` the field is exactly :math:`u(z_e)\,e^{-\gamma|z - z_e|}` with TE
:math:`\gamma = k_0\sqrt{N^2 - \varepsilon_\parallel}`, TM :math:`\gamma =
k_0\sqrt{\varepsilon_\parallel(N^2/\varepsilon_\perp - 1)}` (the end region's :math:`\mathrm{Re}
\,\varepsilon`; :math:`k_0\sqrt{N^2 - \varepsilon}` when isotropic), so :math:`u' = \mp\gamma u`
there and integration by parts adds :math:`-k_0^{-2}\gamma\,E v` (TE) or
:math:`-k_0^{-2}\gamma\,H v/\varepsilon_\parallel` (TM) at each end to the left-hand sides above.
With :math:`\gamma` depending on :math:`N^2` the problem is nonlinear: :math:`A(N^2) u = N^2 B u`.

Solution. :math:`\lambda_k(x)`, the :math:`k`-th largest eigenvalue of the linear pencil :math:`A(x)
u = \lambda B u` with the ends' terms of :math:`N^2 = x`, falls as :math:`x` grows (the terms lower
every Rayleigh quotient when :math:`B` is definite, i.e. for TE and for TM without negative
:math:`\varepsilon_\perp`), so the :math:`k`-th mode is the one root of :math:`\lambda_k(x) = x`
above the cut-off, and exists if and only if :math:`\lambda_k(\mathrm{cutoff}) > \mathrm{cutoff}`.
One SLEPc eigensolve at the cut-off (shift-and-invert about a target just above the largest
:math:`\mathrm{Re}\,\varepsilon`, MUMPS factorisation, options prefix ``modes_stack_``) gives the
candidates and these upper bounds (Neumann ends, :math:`\gamma = 0`, give higher ones still); a
nonlinear Rayleigh quotient iteration from each finds its root, which an eigensolve at the root must
confirm (:math:`\lambda_k(x) = x`), else Brent's method on :math:`\lambda_k(x) - x` brackets it.
Only guided modes are returned: those whose field decays in both outermost regions, :math:`N^2 >
\mathrm{Re}\,\varepsilon` there (:math:`\varepsilon_\parallel` for TE, :math:`\varepsilon_\perp` for
TM), i.e. :math:`n_\mathrm{eff}` above the indices of the substrate and the cover, however close to
cut-off (from :data:`CUTOFF_MARGIN` above it). They are sorted by decreasing :math:`n_\mathrm{eff}`
(order 0, 1, ...).

Every integral below runs over the whole line: the tails add, to the end's region, the exact
:math:`\int_0^\infty q(u e^{-\gamma s}, \gamma u e^{-\gamma s})\,ds = q(u, \gamma u)/(2\gamma)` of
each density :math:`q(u, u')` quadratic in the field and its derivative (e.g.
:math:`E(z_e)^2/(2\gamma)` to :math:`\int|E|^2`; for TM the tails of :math:`|E_x|^2 + |E_z|^2`
from those of :math:`H'` and :math:`H`).

First-order perturbation: a change :math:`\delta\varepsilon` per region shifts

- TE: :math:`\delta(N^2) = \int \delta\varepsilon_\parallel |E|^2 / \int |E|^2`;
- TM: :math:`\delta(N^2) = [\int \delta\varepsilon_\parallel |H'|^2/(k_0^2\varepsilon_\parallel^2)
  + N^2 \int \delta\varepsilon_\perp |H|^2/\varepsilon_\perp^2] / \int |H|^2/\varepsilon_\perp`,

that is :math:`\delta(N^2) = \sum_r \delta\varepsilon_{\parallel,r} w_{\parallel,r} +
\delta\varepsilon_{\perp,r} w_{\perp,r}` with per-region weights stored in :class:`Mode`.
With :math:`\delta\varepsilon = i\,\mathrm{Im}\,\varepsilon` this gives the modal *power* loss
:math:`\alpha = 2\,\mathrm{Im}\,\beta = k_0\,\mathrm{Im}\,\delta(N^2)/N`, i.e. for TE
:math:`\alpha = (k_0^2/\beta)\int \mathrm{Im}\,\varepsilon |E|^2/\int|E|^2`, and for TM
:math:`\alpha = (k_0^2/\beta)\int \mathrm{Im}\,\varepsilon\,(|E_x|^2+|E_z|^2)\,(\omega
\varepsilon_0)^2/(k_0^2 \int|H|^2/\varepsilon_\perp)`. With :math:`\delta\varepsilon =
2 n\,(dn/dT)` it gives the thermo-optic shift. The expansion is in :math:`\mathrm{Im}\,\varepsilon`:
for a metal (Al at 643 nm: :math:`\varepsilon \approx -56 + 23i`) the neglected second-order term
is a fixed fraction of the loss (about 8 % for Al under a low-index cladding), however thin the
field's tail in the metal; for weak absorbers it is :math:`O(\kappa^2)`.

Confinement factor of a region: TE, the paper's :math:`\Gamma = \int_r |E_y|^2 / \int |E_y|^2`;
TM, the same fraction of :math:`|\mathbf E|^2 = |E_x|^2 + |E_z|^2` with :math:`\mathbf E` from
:math:`H_y` (above), so that TE and TM factors both measure the electric field intensity.

The group index (non-dispersive materials), by the Hellmann-Feynman theorem in :math:`k_0^2`:
TE :math:`n_g = \int\varepsilon_\parallel|E|^2/(N\int|E|^2)`; TM :math:`n_g = \int|H|^2/(N\int
|H|^2/\varepsilon_\perp)`.

Timer (``dolfinx.common.Timer``, per rank; read it with ``dolfinx.common.timing(name)``):
:data:`STACK_MODES_TIMER`, every :func:`stack_modes` call (assembly, eigensolve, mode integrals).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc
from slepc4py import SLEPc

import numpy as np
from scipy.optimize import brentq

import dolfinx
import ufl
from dolfinx import fem, la
from dolfinx.fem.petsc import assemble_matrix

from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import normalise_peak, region_function
from cqdlaser.physics._petsc import PETSC_FAILURES, SolverError, configure, options_in_effect
from cqdlaser.physics._slepc import solve_eigenproblem, with_direct_solver
from cqdlaser.physics.source import CQD_FRACTIONS, cqd_fraction

logger = logging.getLogger(__name__)

OPTIONS_PREFIX = "modes_stack_"

STACK_MODES_TIMER = "cqdlaser: stack modes"
"""Timer of :func:`stack_modes`: operators, eigensolve and the mode integrals."""

DEFAULT_STACK_EPS_OPTIONS: dict[str, Any] = {
    "eps_type": "krylovschur",
    "eps_tol": 1e-12,
    "eps_max_it": 500,
    "st_type": "sinvert",
    "st_ksp_type": "preonly",
    "st_pc_type": "lu",
}
"""SLEPc options of the stack eigensolver (prefix ``modes_stack_``). ``eps_nev`` (``n_modes``) and
``eps_target`` (just above the largest permittivity) are set per solve unless given."""

CUTOFF_MARGIN = 1e-10
"""A mode counts as guided when ``N^2`` exceeds the cut-off by more than this (relative): closer,
its decay length (over 6 mm at 643 nm) is beyond the eigensolver's resolution of ``N^2``."""

RAYLEIGH_RTOL = 1e-13
"""The nonlinear Rayleigh quotient iteration stops when ``N^2`` changes by less than this
(relative)."""

RAYLEIGH_MAX_IT = 12
"""Iterations of the Rayleigh quotient iteration before the root solve takes over."""

VERIFY_RTOL = 1e-10
"""A mode's ``N^2`` is accepted when the eigensolve with its ends' terms returns it as the mode's
eigenvalue to this (relative): ``|lambda_k(N^2) - N^2|`` bounds the error in ``N^2``, as
``lambda_k`` falls with ``N^2``."""

ROOT_XTOL = 1e-13
"""Absolute tolerance on ``t = sqrt(N^2 - cutoff)`` of the root solve (about 1e-13 in ``N^2``)."""


POLARISATIONS = ("TE", "TM")

Permittivity = complex | float | tuple[complex | float, complex | float]


@dataclass(frozen=True)
class Mode:
    """A guided mode of the layer stack.

    Attributes:
        polarisation: ``"TE"`` (field ``E_y``) or ``"TM"`` (field ``H_y``).
        order: 0 for the highest effective index, then 1, 2, ...
        n_eff: Effective index beta / k0 (from Re(eps)).
        wavelength: Vacuum wavelength (m).
        confinement: Region -> fraction of |E|^2 in it (sums to 1; see the module docstring).
        loss_per_cm: Modal power attenuation 2 Im(beta) from Im(eps), first order (1/cm).
        group_index: Waveguide group index d(beta)/d(k0), materials taken as non-dispersive.
        weights: Region -> (w_parallel, w_perp): delta(n_eff^2) = sum of w . delta(eps).
        field: E_y (TE) or H_y (TM) on the mesh, scaled to a maximum of |field| = 1, positive
            there.
        decay: (gamma below ``bottom``, gamma above ``top``) (1/m): beyond the mesh the field is
            its end value times exp(-gamma |z - z_end|), exactly.
    """

    polarisation: str
    order: int
    n_eff: float
    wavelength: float
    confinement: dict[str, float]
    loss_per_cm: float
    group_index: float
    weights: dict[str, tuple[float, float]]
    field: fem.Function
    decay: tuple[float, float] = (0.0, 0.0)

    @property
    def k0(self) -> float:
        """Vacuum wavenumber (1/m)."""
        return 2.0 * math.pi / self.wavelength

    @property
    def beta(self) -> float:
        """Propagation constant (1/m)."""
        return self.n_eff * self.k0


def gain_confinement(confinement: Mapping[str, float], fill_fraction: float) -> float:
    """Confinement factor in the gain (CQD) material: ``sum_r Gamma_r phi_r``.

    ``phi_r`` is the region's CQD volume fraction (:data:`physics.source.CQD_FRACTIONS`): the
    film and the fill around resolved pillars count whole, a homogenised grating layer by its
    CQD fraction ``1 - f``; other regions not at all. Holds for the stack modes and the band
    edges alike.

    Args:
        confinement: Region -> confinement factor (:attr:`Mode.confinement`,
            ``BandEdge.confinement``).
        fill_fraction: The pillars' area fraction ``f`` in the grating layer (0 without one).
    """
    return sum(
        confinement[region] * cqd_fraction(region, fill_fraction)
        for region in CQD_FRACTIONS
        if region in confinement
    )


def wiener_bounds(fill_fraction: float, eps_a: complex, eps_b: complex) -> tuple[complex, complex]:
    """Wiener bounds of a two-phase mixture: (harmonic mean, arithmetic mean).

    Args:
        fill_fraction: Volume fraction of phase ``a``.
        eps_a: Permittivity of phase ``a``.
        eps_b: Permittivity of phase ``b``.

    Returns:
        The field-across-laminate (lower, for real positive eps) and field-along-laminate (upper)
        effective permittivities.
    """
    f = fill_fraction
    return 1.0 / (f / eps_a + (1.0 - f) / eps_b), f * eps_a + (1.0 - f) * eps_b


def grating_permittivity(
    fill_fraction: float,
    eps_pillar: complex,
    eps_fill: complex,
    *,
    in_plane: str = "maxwell-garnett",
) -> tuple[complex, complex]:
    """The homogenised grating layer (vertical pillars in a fill) as a uniaxial permittivity.

    The field along the pillar axes (z, normal to the layer) is tangential to every pillar wall, so
    it sees the volume average exactly (quasi-static limit): that is ``eps_perp``. The in-plane
    field crosses the walls: its permittivity lies between the Wiener bounds; by default it is the
    2D Maxwell-Garnett value for parallel cylinders in the fill (the Hashin-Shtrikman bound taken
    from the fill's side), ``eps_f [(1+f) eps_p + (1-f) eps_f] / [(1-f) eps_p + (1+f) eps_f]``.

    Args:
        fill_fraction: Area fraction of the pillars in the lattice cell.
        eps_pillar: Pillar permittivity.
        eps_fill: Permittivity of the material around the pillars (the film).
        in_plane: ``"maxwell-garnett"``, or one of the Wiener bounds: ``"average"`` (the volume
            average, as if the field ran along the walls) or ``"harmonic"`` (as if across them).

    Returns:
        (eps_parallel, eps_perp): in-plane and normal-to-the-layer permittivities.
    """
    f = fill_fraction
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"fill_fraction = {f} must be in [0, 1]")
    harmonic, average = wiener_bounds(f, eps_pillar, eps_fill)
    if in_plane == "maxwell-garnett":
        ep, ef = eps_pillar, eps_fill
        parallel = ef * ((1 + f) * ep + (1 - f) * ef) / ((1 - f) * ep + (1 + f) * ef)
    elif in_plane == "average":
        parallel = average
    elif in_plane == "harmonic":
        parallel = harmonic
    else:
        raise ValueError(
            f"in_plane = {in_plane!r} must be 'maxwell-garnett', 'average' or 'harmonic'"
        )
    return complex(parallel), complex(average)


def _resolve_permittivity(
    mesh_data: MeshData, permittivity: Mapping[str, Permittivity]
) -> dict[str, tuple[complex, complex]]:
    missing = sorted(set(mesh_data.regions) - set(permittivity))
    unknown = sorted(set(permittivity) - set(mesh_data.regions))
    if missing or unknown:
        raise KeyError(
            f"permittivity must name exactly the regions {sorted(mesh_data.regions)}: "
            f"missing {missing}, unknown {unknown}"
        )
    out = {}
    for name, value in permittivity.items():
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(
                    f"permittivity[{name!r}] = {value}: a number or (eps_par, eps_perp)"
                )
            out[name] = (complex(value[0]), complex(value[1]))
        else:
            out[name] = (complex(value), complex(value))
        if out[name][0].real == 0.0 or out[name][1].real == 0.0:
            raise ValueError(f"permittivity[{name!r}] = {value}: Re(eps) must not be zero")
    return out


class _Cells:
    """Owned cells of a mesh with their region tags, and the DG0 dofs that sit on them."""

    def __init__(self, mesh_data: MeshData, Q: fem.FunctionSpace) -> None:
        msh = mesh_data.mesh
        tdim = msh.topology.dim
        n_local = msh.topology.index_map(tdim).size_local
        ct = mesh_data.cell_tags
        tags = np.full(n_local, -1, dtype=np.int32)
        keep = ct.indices < n_local
        tags[ct.indices[keep]] = ct.values[keep]
        self.comm = msh.comm
        self.tags = tags
        self.dofs = Q.dofmap.list[:n_local, 0]
        self.regions = mesh_data.regions

    def sums(self, L: fem.Form) -> dict[str, float]:
        """Integrals of a DG0 linear form's integrand over every region (global)."""
        vec = fem.assemble_vector(L)
        vec.scatter_reverse(la.InsertMode.add)
        local = np.array(
            [vec.array[self.dofs[self.tags == tag]].sum() for tag in self.regions.values()]
        )
        total = np.empty_like(local)
        self.comm.Allreduce(local, total, op=MPI.SUM)
        return dict(zip(self.regions, (float(x) for x in total), strict=True))


def _outer_regions(mesh_data: MeshData) -> tuple[str, str]:
    """The regions next to the ``bottom`` and ``top`` boundaries."""
    msh = mesh_data.mesh
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    ct = mesh_data.cell_tags
    names = {tag: name for name, tag in mesh_data.regions.items()}
    out = []
    for side in ("bottom", "top"):
        facets = mesh_data.facet_tags.find(mesh_data.boundary(side))
        tag = -1
        for facet in facets:
            cell = f2c.links(facet)[0]
            hit = ct.values[ct.indices == cell]
            if hit.size:
                tag = int(hit[0])
        tag = msh.comm.allreduce(tag, op=MPI.MAX)
        if tag < 0:
            raise ValueError(f"no region touches the boundary {side!r}")
        out.append(names[tag])
    return out[0], out[1]


def _solver_options(petsc_options: Mapping[str, Any] | None) -> dict[str, Any]:
    return with_direct_solver(DEFAULT_STACK_EPS_OPTIONS, petsc_options)


def stack_modes(
    mesh_data: MeshData,
    permittivity: Mapping[str, Permittivity],
    wavelength: float,
    polarisation: str = "TE",
    *,
    degree: int = 2,
    n_modes: int = 4,
    petsc_options: Mapping[str, Any] | None = None,
) -> list[Mode]:
    """Guided modes of a layer stack, sorted by decreasing effective index.

    Args:
        mesh_data: A ``stack`` mesh with boundaries ``bottom`` and ``top`` (transparent: the
            regions they bound continue beyond them, so the mesh may stop anywhere in those).
        permittivity: Relative permittivity of every region, ``(n + i kappa)^2``, or a pair
            ``(eps_parallel, eps_perp)`` for a uniaxial layer (see :func:`grating_permittivity`).
        wavelength: Vacuum wavelength (m).
        polarisation: ``"TE"`` or ``"TM"``.
        degree: Lagrange degree (2 or more recommended: eigenvalue errors fall as h^(2 degree)).
        n_modes: Number of eigenpairs nearest the target to compute; the guided ones among them
            are returned (at most ``n_modes``).
        petsc_options: SLEPc/PETSc options (prefix ``modes_stack_``) over
            :data:`DEFAULT_STACK_EPS_OPTIONS`.

    Returns:
        The guided modes; none only when the stack guides none (the eigenvalues found reach
        from above the largest permittivity down to the cutoff of the outer regions, or the
        first candidate's ``lambda_0(cutoff)`` is not above the cut-off).

    Raises:
        KeyError: when ``permittivity`` does not name exactly the mesh's regions.
        SolverError: when SLEPc does not converge, an eigenpair fails its residual check
            (:func:`~physics._slepc.check_eigenpairs`), no mode was found and the eigenvalues
            miss the guided range, or the root of a mode's ``lambda_k(x) = x`` cannot be
            bracketed or found (with the reason and the options in effect).
    """
    _check_arguments(polarisation, degree, n_modes, wavelength)
    eps_r = _resolve_permittivity(mesh_data, permittivity)
    te = polarisation == "TE"
    k0 = 2.0 * math.pi / wavelength
    ends = _Ends.of(mesh_data, eps_r, te, k0)
    with dolfinx.common.Timer(STACK_MODES_TIMER):
        coefficients = _Coefficients.of(mesh_data, eps_r, k0, degree)
        pencil = _Pencil.build(coefficients, ends, eps_r, _solver_options(petsc_options))
        try:
            found = _guided_eigenvectors(pencil, n_modes)
        finally:
            pencil.destroy()
        integrals = _ModeIntegrals.build(coefficients, te)
        modes = [
            integrals.mode(n2, vector, ends.decay(n2), eps_r, polarisation, order, wavelength)
            for order, (n2, vector) in enumerate(found)
        ]
        for _, vector in found:
            vector.destroy()
    return modes


def _check_arguments(polarisation: str, degree: int, n_modes: int, wavelength: float) -> None:
    """Raise ValueError for a wrong polarisation, degree, number of modes or wavelength."""
    if polarisation not in POLARISATIONS:
        raise ValueError(f"polarisation = {polarisation!r} must be one of {POLARISATIONS}")
    if degree < 1 or n_modes < 1:
        raise ValueError(f"degree = {degree} and n_modes = {n_modes} must be at least 1")
    if not wavelength > 0.0:
        raise ValueError(f"wavelength = {wavelength} m must be positive")


@dataclass(frozen=True)
class _Coefficients:
    """The field's space (Lagrange, of the given degree) and the weak forms' coefficients:
    ``Re eps_par`` and ``Re eps_perp`` per region (DG0) and ``1/k0^2``."""

    mesh_data: MeshData
    V: fem.FunctionSpace
    eps_par: fem.Function
    eps_perp: fem.Function
    inv_k02: fem.Constant

    @classmethod
    def of(
        cls,
        mesh_data: MeshData,
        eps_r: Mapping[str, tuple[complex, complex]],
        k0: float,
        degree: int,
    ) -> _Coefficients:
        return cls(
            mesh_data,
            fem.functionspace(mesh_data.mesh, ("Lagrange", degree)),
            region_function(mesh_data, {n: e[0].real for n, e in eps_r.items()}),
            region_function(mesh_data, {n: e[1].real for n, e in eps_r.items()}),
            fem.Constant(mesh_data.mesh, dolfinx.default_scalar_type(1.0 / k0**2)),
        )

    def unpack(
        self,
    ) -> tuple[MeshData, fem.FunctionSpace, fem.Function, fem.Function, fem.Constant]:
        return self.mesh_data, self.V, self.eps_par, self.eps_perp, self.inv_k02


@dataclass(frozen=True)
class _Ends:
    """The outermost regions, below ``bottom`` and above ``top``: homogeneous half-spaces in which
    a guided field continues as ``exp(-gamma |z - z_end|)``.

    Attributes:
        te: TE (field ``E_y``) or TM (``H_y``).
        k0: Vacuum wavenumber (1/m).
        eps: ``Re (eps_par, eps_perp)`` of the region below ``bottom`` and of the one above ``top``.
    """

    te: bool
    k0: float
    eps: tuple[tuple[float, float], tuple[float, float]]

    @classmethod
    def of(
        cls,
        mesh_data: MeshData,
        eps_r: Mapping[str, tuple[complex, complex]],
        te: bool,
        k0: float,
    ) -> _Ends:
        below, above = (eps_r[name] for name in _outer_regions(mesh_data))
        return cls(te, k0, ((below[0].real, below[1].real), (above[0].real, above[1].real)))

    @property
    def cutoff(self) -> float:
        """The ``N^2`` under which the field no longer decays at both ends: the larger end
        ``eps_par`` (TE) or ``eps_perp`` (TM)."""
        return max(eps[0 if self.te else 1] for eps in self.eps)

    def decay(self, n2: float) -> tuple[float, float]:
        """``gamma`` (1/m) below and above at ``N^2 = n2``: TE ``k0 sqrt(N^2 - eps_par)``, TM
        ``k0 sqrt(eps_par (N^2/eps_perp - 1))`` (0 at and under the end's cut-off)."""

        def one(par: float, perp: float) -> float:
            q = n2 - par if self.te else par * (n2 / perp - 1.0)
            return self.k0 * math.sqrt(max(q, 0.0))

        return one(*self.eps[0]), one(*self.eps[1])

    def robin(self, n2: float) -> tuple[float, float]:
        """Coefficients of the ends' terms in the weak form at ``N^2 = n2``: ``gamma / k0^2``
        (TE), ``gamma / (k0^2 eps_par)`` (TM)."""
        below, above = self.decay(n2)
        if self.te:
            return below / self.k0**2, above / self.k0**2
        return below / (self.k0**2 * self.eps[0][0]), above / (self.k0**2 * self.eps[1][0])


@dataclass(frozen=True)
class _Pencil:
    """``A(x) u = lambda B u``, ``A(x) = A_0 - r_b(x) M_b - r_t(x) M_t``: the weak form of the
    module docstring with Neumann ends (``A_0``) and the ends' terms of a mode with ``N^2 = x``
    (``M_b``, ``M_t``: ``u v`` at ``bottom`` and ``top``; ``r``: :meth:`_Ends.robin`).

    Attributes:
        A0: ``A`` with Neumann ends.
        B: The right-hand side's matrix.
        M: ``M_b`` and ``M_t``.
        ends: The outermost regions.
        eps_max: The largest ``Re eps`` (either component): with positive permittivities no
            guided ``N^2`` lies above it.
        options: SLEPc options (prefix ``modes_stack_``).
        hermitian: Whether ``B`` is definite (no negative ``eps_perp``, for TM).
    """

    A0: PETSc.Mat
    B: PETSc.Mat
    M: tuple[PETSc.Mat, PETSc.Mat]
    ends: _Ends
    eps_max: float
    options: dict[str, Any]
    hermitian: bool

    @classmethod
    def build(
        cls,
        coefficients: _Coefficients,
        ends: _Ends,
        eps_r: Mapping[str, tuple[complex, complex]],
        options: dict[str, Any],
    ) -> _Pencil:
        mesh_data, V, eps_par, eps_perp, inv_k02 = coefficients.unpack()
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        if ends.te:
            a = (eps_par * u * v - inv_k02 * ufl.inner(ufl.grad(u), ufl.grad(v))) * ufl.dx
            b = u * v * ufl.dx
        else:
            a = (u * v - inv_k02 / eps_par * ufl.inner(ufl.grad(u), ufl.grad(v))) * ufl.dx
            b = u / eps_perp * v * ufl.dx
        forms = (a, b, u * v * mesh_data.ds("bottom"), u * v * mesh_data.ds("top"))
        A0, B, Mb, Mt = (assemble_matrix(fem.form(form)) for form in forms)
        for matrix in (A0, B, Mb, Mt):
            matrix.assemble()
        eps_max = max(max(e[0].real, e[1].real) for e in eps_r.values())
        hermitian = ends.te or all(e[1].real > 0.0 for e in eps_r.values())
        return cls(A0, B, (Mb, Mt), ends, eps_max, options, hermitian)

    @property
    def target(self) -> float:
        """Shift of the spectral transform, just above :attr:`eps_max`."""
        return self.eps_max * (1.0 + 1e-3) + 1e-3

    def matrix(self, x: float | None) -> PETSc.Mat:
        """A new ``A(x)`` (``None``: Neumann ends, ``A_0``); the caller destroys it."""
        A = self.A0.copy()
        if x is not None:
            for M, r in zip(self.M, self.ends.robin(x), strict=True):
                A.axpy(-r, M, PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        return A

    def solve(self, x: float | None, nev: int) -> tuple[SLEPc.EPS, dict[str, Any], list[int]]:
        """Solve ``A(x) u = lambda B u`` for the ``nev`` eigenpairs nearest :attr:`target`.
        Returns the solver (the caller destroys it), the options it ran with, and the indices of
        its real eigenvalues by decreasing value."""
        A = self.matrix(x)
        try:
            solver, run = solve_eigenproblem(
                A,
                self.B,
                prefix=OPTIONS_PREFIX,
                target=self.target,
                nev=nev,
                options=self.options,
                hermitian=self.hermitian,
            )
        finally:
            A.destroy()
        values = [complex(solver.getEigenvalue(i)) for i in range(solver.getConverged())]
        real = [i for i, v in enumerate(values) if abs(v.imag) <= 1e-8 * max(1.0, abs(v.real))]
        return solver, run, sorted(real, key=lambda i: -values[i].real)

    def eigenvalue(self, x: float | None, k: int) -> float | None:
        """The ``k``-th largest real eigenvalue of ``A(x)`` (None if fewer converged)."""
        solver, _, order = self.solve(x, k + 1)
        try:
            return solver.getEigenvalue(order[k]).real if len(order) > k else None
        finally:
            solver.destroy()

    def eigenpair(self, x: float, k: int) -> tuple[float, PETSc.Vec]:
        """The ``k``-th largest real eigenpair of ``A(x)``.

        Raises:
            SolverError: Fewer than ``k + 1`` real eigenvalues converged.
        """
        solver, run, order = self.solve(x, k + 1)
        try:
            if len(order) <= k:
                raise self.failure(solver, run, "MISSING_EIGENVALUE", f", no eigenvalue {k}")
            return self.pair(solver, order[k])
        finally:
            solver.destroy()

    def pair(self, solver: SLEPc.EPS, i: int) -> tuple[float, PETSc.Vec]:
        """The eigenpair ``i`` of a solve of this pencil (a real one); the caller destroys the
        vector."""
        vr, vi = self.B.createVecs()
        value = solver.getEigenpair(i, vr, vi).real
        vi.destroy()
        return value, vr

    def rayleigh_root(self, u: PETSc.Vec) -> float | None:
        """The root ``x > cutoff`` of the Rayleigh functional ``u^T (A(x) - x B) u`` (explicit
        in ``x``), or None without one."""
        work = u.duplicate()
        quadratic = []
        for matrix in (self.A0, self.B, *self.M):
            matrix.mult(u, work)
            quadratic.append(work.dot(u))
        work.destroy()
        a0, b, mb, mt = quadratic
        cutoff = self.ends.cutoff

        def rho(t: float) -> float:
            x = cutoff + t * t
            rb, rt = self.ends.robin(x)
            return a0 - rb * mb - rt * mt - x * b

        if not rho(0.0) > 0.0:
            return None
        highs = [math.sqrt(self.target - cutoff)]
        if b > 0.0 and a0 / b > cutoff:
            highs.insert(0, math.sqrt(a0 / b - cutoff))
        hi = next((t for t in highs if rho(t) <= 0.0), None)
        if hi is None:
            return None
        t = brentq(rho, 0.0, hi, xtol=1e-16)
        return cutoff + t * t

    def inverse_step(self, x: float, u: PETSc.Vec) -> PETSc.Vec | None:
        """``(A(x) - x B)^-1 B u``, normalised, by the spectral transform's linear solver
        (options ``st_ksp_*``, ``st_pc_*``); None when that fails."""
        T = self.matrix(x)
        T.axpy(-x, self.B, PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        ksp = PETSc.KSP().create(T.getComm())
        rhs, w = T.createVecs()
        try:
            ksp.setOperators(T)
            st = {k[3:]: v for k, v in self.options.items() if k.startswith(("st_ksp_", "st_pc_"))}
            configure(ksp, f"{OPTIONS_PREFIX}st_", st, "stack modes inverse iteration")
            self.B.mult(u, rhs)
            ksp.solve(rhs, w)
            norm = w.norm() if ksp.getConvergedReason() > 0 else math.nan
        except (*PETSC_FAILURES, SolverError):
            w.destroy()
            return None
        finally:
            ksp.destroy()
            T.destroy()
            rhs.destroy()
        if not (math.isfinite(norm) and norm > 0.0):
            w.destroy()
            return None
        w.scale(1.0 / norm)
        return w

    def destroy(self) -> None:
        for matrix in (self.A0, self.B, *self.M):
            matrix.destroy()

    def failure(
        self, solver: SLEPc.EPS | None, run: dict[str, Any], check: str, detail: str
    ) -> SolverError:
        return SolverError.failed_check(
            "SLEPc EPS",
            OPTIONS_PREFIX,
            check,
            options_in_effect(OPTIONS_PREFIX, run, solver),
            detail,
        )


def _guided_eigenvectors(pencil: _Pencil, n_modes: int) -> list[tuple[float, PETSc.Vec]]:
    """The guided modes among the ``n_modes`` of largest ``N^2``, by decreasing ``N^2``: each
    ``(N^2, eigenvector)``.

    ``lambda_k(x)``, the ``k``-th largest eigenvalue of ``A(x)``, falls as ``x`` grows (the ends'
    terms, ``-r u^2`` with ``r`` growing with ``x``, lower every Rayleigh quotient when ``B`` is
    definite; so Neumann ends, ``r = 0``, give upper bounds): ``g_k(x) = lambda_k(x) - x`` falls
    strictly, and the ``k``-th mode exists if and only if ``g_k(cutoff) > 0`` (else its candidate
    is a mode of the truncated box), with its ``N^2`` the one root of ``g_k`` in
    ``(cutoff, lambda_k(cutoff)]``. One eigensolve at ``x = cutoff`` gives every candidate; the
    first without a mode ends the list (``lambda_k`` falls with ``k``).
    """
    cutoff = pencil.ends.cutoff
    solver, run, order = pencil.solve(cutoff, n_modes)
    try:
        _check_guided_range(solver, cutoff, pencil.eps_max, run)
        candidates = [pencil.pair(solver, i) for i in order[:n_modes]]
    finally:
        solver.destroy()
    found = []
    try:
        for k, (upper, start) in enumerate(candidates):
            if not upper - cutoff > CUTOFF_MARGIN * max(1.0, abs(cutoff)):
                break
            found.append(_transparent_mode(pencil, k, upper, start))
    finally:
        for _, start in candidates:
            start.destroy()
    return found


def _transparent_mode(
    pencil: _Pencil, k: int, upper: float, start: PETSc.Vec
) -> tuple[float, PETSc.Vec]:
    """The ``k``-th guided mode ``(N^2, eigenvector)``: the root ``x`` of ``lambda_k(x) = x``
    and the eigenvector of ``A(x)``, from the eigenpair ``(upper, start)`` at the cut-off.

    The nonlinear Rayleigh quotient iteration (root of the Rayleigh functional, then one inverse
    iteration with ``A(x) - x B``; cubic convergence, one factorisation a step) gives ``x``; the
    eigensolve at ``x`` must return ``lambda_k(x) = x`` (:data:`VERIFY_RTOL`), else, should the
    iteration have broken down or reached another mode, :func:`_transparent_root` brackets it.
    ``N^2`` is the root of the Rayleigh functional of the eigenvector: exact to the square of its
    error, where the eigenvalue holds only the eigensolver's tolerance (so that ``n_eff`` varies
    smoothly with the wavelength, as a fixed point in it needs).
    """
    x = _rayleigh_iteration(pencil, upper, start)
    if x is not None:
        value, vector = pencil.eigenpair(x, k)
        if abs(value - x) <= VERIFY_RTOL * max(1.0, abs(x)):
            return _refined(pencil, value, vector), vector
        vector.destroy()
    x = _transparent_root(pencil, k, upper)
    value, vector = pencil.eigenpair(x, k)
    return _refined(pencil, value, vector), vector


def _refined(pencil: _Pencil, value: float, vector: PETSc.Vec) -> float:
    """The root of the Rayleigh functional of an eigenvector of ``A(x)``, ``x`` a mode's root
    (``value``, the eigenvalue, should it have none)."""
    n2 = pencil.rayleigh_root(vector)
    return value if n2 is None else n2


def _rayleigh_iteration(pencil: _Pencil, x: float, start: PETSc.Vec) -> float | None:
    """``N^2`` by the nonlinear Rayleigh quotient iteration from ``(x, start)``, or None when it
    breaks down or does not settle within :data:`RAYLEIGH_MAX_IT` steps."""
    u = start.copy()
    try:
        for _ in range(RAYLEIGH_MAX_IT):
            x_new = pencil.rayleigh_root(u)
            if x_new is None:
                return None
            settled = abs(x_new - x) <= RAYLEIGH_RTOL * abs(x_new)
            x = x_new
            if settled:
                return x
            step = pencil.inverse_step(x, u)
            if step is None:
                return None
            u.destroy()
            u = step
        return None
    finally:
        u.destroy()


def _transparent_root(pencil: _Pencil, k: int, upper: float) -> float:
    """The root of ``g(x) = lambda_k(x) - x`` in ``(cutoff, upper]`` (``upper = lambda_k(cutoff)``,
    so ``g(cutoff) > 0``; ``g(upper) <= 0``) by Brent's method in ``t = sqrt(x - cutoff)``, in
    which ``g`` is smooth (``gamma`` is proportional to ``t`` at the end that sets the cut-off).

    Raises:
        SolverError: No sign change up to the target (an indefinite ``B``), a missing
            eigenvalue, or Brent's method did not converge.
    """
    cutoff = pencil.ends.cutoff
    values = {0.0: upper - cutoff}

    def g(t: float) -> float:
        if t not in values:
            x = cutoff + t * t
            value = pencil.eigenvalue(x, k)
            if value is None:
                raise pencil.failure(
                    None, pencil.options, "MISSING_EIGENVALUE", f", no eigenvalue {k} at {x:.12g}"
                )
            values[t] = value - x
        return values[t]

    highs = (math.sqrt(upper - cutoff), math.sqrt(pencil.target - cutoff))
    hi = next((t for t in highs if g(t) <= 0.0), None)
    if hi is None:
        raise pencil.failure(
            None,
            pencil.options,
            "TRANSPARENT_ROOT",
            f", mode {k}: lambda(N^2) > N^2 from the cut-off {cutoff:.12g} to the target",
        )
    t, result = brentq(g, 0.0, hi, xtol=ROOT_XTOL, full_output=True, disp=False)
    if not result.converged:
        raise pencil.failure(
            None,
            pencil.options,
            "TRANSPARENT_ROOT",
            f", mode {k}: Brent's method: {result.flag} after {result.iterations} iterations",
        )
    return cutoff + t * t


def _check_guided_range(
    solver: SLEPc.EPS, cutoff: float, eps_max: float, options: dict[str, Any]
) -> None:
    """Make sure that no guided mode was missed: the converged eigenvalues, the nearest to the
    target, reach from above the largest permittivity (no guided ``N^2`` lies higher with
    positive permittivities) down to the cutoff, or include a guided one.

    With none guided and the range covered, the stack guides nothing: a physical answer (the
    largest permittivity is not above the outer regions', or the film is below cutoff).

    Raises:
        SolverError: No guided eigenvalue was found and the range was not covered (a target
            moved away, too few eigenpairs), with the options in effect.
    """
    values = [complex(solver.getEigenvalue(i)) for i in range(solver.getConverged())]
    if any(v.real > cutoff and abs(v.imag) <= 1e-8 * max(1.0, abs(v.real)) for v in values):
        return
    target = solver.getTarget()
    reach = max(abs(v - target) for v in values)
    if target - reach <= cutoff and target + reach >= eps_max:
        why = (
            "no permittivity above the outer regions'"
            if eps_max <= cutoff
            else "the guiding layers are below cutoff"
        )
        logger.info("stack modes: no guided mode (%s)", why)
        return
    raise SolverError.failed_check(
        "SLEPc EPS",
        OPTIONS_PREFIX,
        "MISSED_GUIDED_RANGE",
        options_in_effect(OPTIONS_PREFIX, options, solver),
        f", no guided mode among the {len(values)} eigenvalues within {reach:.4g} of the target "
        f"{target:.6g}, which miss the guided range ({cutoff:.6g}, {eps_max:.6g}]",
    )


@dataclass(frozen=True)
class _ModeIntegrals:
    """Per-region integrals of a mode ``uh`` (DG0 linear forms summed by region): TE ``|E|^2``;
    TM the in-plane and normal parts of ``|E|^2``, ``|H|^2`` and the norm ``|H|^2/eps_perp``.

    Each holds the exact tail beyond the mesh's ends: there ``u = u_end exp(-gamma s)``, so a
    density quadratic in ``(u, u')`` integrates to ``q(u_end, gamma u_end) / (2 gamma)`` over the
    outer region, a term on the end's facet that the DG0 form assigns to the region it bounds.
    """

    uh: fem.Function
    n2: fem.Constant
    decay: tuple[fem.Constant, fem.Constant]
    cells: _Cells
    forms: dict[str, fem.Form]
    te: bool

    @classmethod
    def build(cls, coefficients: _Coefficients, te: bool) -> _ModeIntegrals:
        mesh_data, V, eps_par, eps_perp, inv_k02 = coefficients.unpack()
        Q = fem.functionspace(mesh_data.mesh, ("DG", 0))
        uh = fem.Function(V)
        w = ufl.TestFunction(Q)
        n2, below, above = (
            fem.Constant(mesh_data.mesh, dolfinx.default_scalar_type(1.0)) for _ in range(3)
        )
        if te:
            densities = {"e2": lambda u, du: u * u}
        else:
            densities = {
                "par": lambda u, du: inv_k02 * du * du / eps_par**2,
                "perp": lambda u, du: n2 * u * u / eps_perp**2,
                "h2": lambda u, du: u * u,
                "norm": lambda u, du: u * u / eps_perp,
            }
        ds_below, ds_above = mesh_data.ds("bottom"), mesh_data.ds("top")
        forms = {
            key: fem.form(
                q(uh, uh.dx(0)) * w * ufl.dx
                + q(uh, below * uh) / (2.0 * below) * w * ds_below
                + q(uh, above * uh) / (2.0 * above) * w * ds_above
            )
            for key, q in densities.items()
        }
        return cls(uh, n2, (below, above), _Cells(mesh_data, Q), forms, te)

    def mode(
        self,
        value: float,
        vector: PETSc.Vec,
        decay: tuple[float, float],
        eps_r: Mapping[str, tuple[complex, complex]],
        polarisation: str,
        order: int,
        wavelength: float,
    ) -> Mode:
        """The :class:`Mode` of the eigenpair ``(N^2, vector)`` whose field decays as
        ``exp(-gamma |z - z_end|)`` beyond the ends (``decay``: gamma below and above, 1/m): its
        field normalised to a peak of 1, confinement, perturbation weights, group index and
        first-order loss."""
        uh = self.uh
        n_eff = math.sqrt(value)
        uh.x.petsc_vec.array[:] = vector.array
        uh.x.scatter_forward()
        normalise_peak(uh)
        self.n2.value = value
        for constant, gamma in zip(self.decay, decay, strict=True):
            constant.value = gamma
        s = {key: self.cells.sums(L) for key, L in self.forms.items()}
        if self.te:
            total = sum(s["e2"].values())
            weights = {r: (s["e2"][r] / total, 0.0) for r in eps_r}
            confinement = {r: s["e2"][r] / total for r in eps_r}
            group = sum(eps_r[r][0].real * weights[r][0] for r in eps_r) / n_eff
        else:
            norm = sum(s["norm"].values())
            weights = {r: (s["par"][r] / norm, s["perp"][r] / norm) for r in eps_r}
            e2 = {r: s["par"][r] + s["perp"][r] for r in eps_r}
            total = sum(e2.values())
            confinement = {r: e2[r] / total for r in eps_r}
            group = sum(s["h2"].values()) / norm / n_eff
        shift = _shift(weights, {r: (1j * e[0].imag, 1j * e[1].imag) for r, e in eps_r.items()})
        k0 = 2.0 * math.pi / wavelength
        loss = k0 * shift.imag / n_eff
        field = fem.Function(uh.function_space, name="E_y" if self.te else "H_y")
        field.x.array[:] = uh.x.array
        return Mode(
            polarisation,
            order,
            n_eff,
            wavelength,
            confinement,
            loss / 100.0,
            group,
            weights,
            field,
            decay,
        )


def _shift(
    weights: Mapping[str, tuple[float, float]], delta: Mapping[str, tuple[complex, complex]]
) -> complex:
    return complex(sum(w[0] * delta[r][0] + w[1] * delta[r][1] for r, w in weights.items()))


def perturbation_shift(mode: Mode, delta_permittivity: Mapping[str, Permittivity]) -> complex:
    """First-order change of n_eff^2 for a change of permittivity per region.

    Args:
        mode: A mode from :func:`stack_modes`.
        delta_permittivity: Region -> change of eps (a number, or ``(d_eps_par, d_eps_perp)``);
            regions left out do not change.

    Returns:
        delta(n_eff^2) (complex: an imaginary part is a gain or a loss).
    """
    unknown = sorted(set(delta_permittivity) - set(mode.weights))
    if unknown:
        raise KeyError(f"unknown regions {unknown}; the mode has {sorted(mode.weights)}")
    delta: dict[str, tuple[complex, complex]] = {}
    for r in mode.weights:
        d = delta_permittivity.get(r, 0.0)
        delta[r] = (complex(d[0]), complex(d[1])) if isinstance(d, tuple) else (d, d)
    return _shift(mode.weights, delta)


def thermo_optic_shift(
    mode: Mode,
    permittivity: Mapping[str, Permittivity],
    dn_dt: Mapping[str, float | tuple[float, float]],
) -> float:
    """d(n_eff)/dT of a mode from the thermo-optic coefficients of its regions (1/K).

    ``d(eps)/dT = 2 Re(n) dn/dT`` per region (and per component of a uniaxial layer), then
    :func:`perturbation_shift`: ``d n_eff/dT = delta(n_eff^2) / (2 n_eff)``. Thermal expansion is
    left out.

    Args:
        mode: A mode from :func:`stack_modes`.
        permittivity: The permittivities the mode was computed with.
        dn_dt: Region -> dn/dT (1/K), or a pair for a uniaxial layer; missing regions: 0.
    """
    delta: dict[str, Permittivity] = {}
    for region, coefficient in dn_dt.items():
        eps = permittivity[region]
        eps_pair = eps if isinstance(eps, tuple) else (eps, eps)
        c_pair = coefficient if isinstance(coefficient, tuple) else (coefficient, coefficient)
        delta[region] = tuple(  # type: ignore[assignment]
            2.0 * (complex(e) ** 0.5).real * c for e, c in zip(eps_pair, c_pair, strict=True)
        )
    return perturbation_shift(mode, delta).real / (2.0 * mode.n_eff)


def bragg_wavelength_shift(
    mode: Mode, dn_eff_dt: float, period: float, *, order: int = 2, dispersive: bool = True
) -> float:
    """d(lambda)/dT of the DFB Bragg line ``lambda = 2 n_eff Lambda / m`` (m/K).

    At fixed wavelength ``d lambda/dT = (2 Lambda / m) d n_eff/dT`` (``Lambda dn_eff/dT`` for the
    second order); with ``dispersive`` the waveguide dispersion of n_eff along the line is included,
    which multiplies this by ``n_eff / n_g`` (the materials' own dispersion is not).

    Args:
        mode: The mode (for n_eff and its group index).
        dn_eff_dt: d n_eff/dT (1/K), e.g. from :func:`thermo_optic_shift`.
        period: Grating period Lambda (m).
        order: Bragg order m.
        dispersive: Include the waveguide dispersion of n_eff.
    """
    shift = 2.0 * period / order * dn_eff_dt
    return shift * mode.n_eff / mode.group_index if dispersive else shift
