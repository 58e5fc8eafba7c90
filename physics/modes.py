r"""Guided TE and TM modes of the 1D layer stack, and first-order perturbations of them.

The stack (``geometry.stack.build_stack(..., optical=True)``) is an interval along :math:`z`
(``x[0]``, m) with one region per layer, truncated at ``bottom`` and ``top`` where the field is set
to zero (guided fields have decayed there). A mode propagates along :math:`x` as
:math:`e^{i\beta x}`; :math:`k_0 = 2\pi/\lambda` and :math:`N = n_\mathrm{eff} = \beta/k_0`.
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

Both are generalised eigenproblems :math:`A x = N^2 B x`, solved by SLEPc with shift-and-invert
about a target just above the largest :math:`\mathrm{Re}\,\varepsilon` (MUMPS factorisation),
options prefix ``modes_stack_``. Only guided modes are returned: those whose field decays in both
outermost regions, :math:`N^2 > \mathrm{Re}\,\varepsilon` there (:math:`\varepsilon_\parallel` for
TE, :math:`\varepsilon_\perp` for TM), i.e. :math:`n_\mathrm{eff}` above the indices of the
substrate and the cover. They are sorted by decreasing :math:`n_\mathrm{eff}` (order 0, 1, ...).

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

import dolfinx
import ufl
from dolfinx import fem, la
from dolfinx.fem.petsc import assemble_matrix

from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import boundary_dofs, normalise_peak, region_function
from cqdlaser.physics._petsc import SolverError, options_in_effect
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
        field: E_y (TE) or H_y (TM), scaled to a maximum of |field| = 1, positive there.
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
        mesh_data: A ``stack`` mesh with boundaries ``bottom`` and ``top`` (where the field is 0).
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
        from above the largest permittivity down to the cutoff of the outer regions).

    Raises:
        KeyError: when ``permittivity`` does not name exactly the mesh's regions.
        SolverError: when SLEPc does not converge, an eigenpair fails its residual check
            (:func:`~physics._slepc.check_eigenpairs`), or no mode was found and the eigenvalues
            miss the guided range (with the reason and the options in effect).
    """
    _check_arguments(polarisation, degree, n_modes, wavelength)
    eps_r = _resolve_permittivity(mesh_data, permittivity)
    te = polarisation == "TE"
    k0 = 2.0 * math.pi / wavelength
    with dolfinx.common.Timer(STACK_MODES_TIMER):
        V = fem.functionspace(mesh_data.mesh, ("Lagrange", degree))
        eps_par = region_function(mesh_data, {n: e[0].real for n, e in eps_r.items()})
        eps_perp = region_function(mesh_data, {n: e[1].real for n, e in eps_r.items()})
        inv_k02 = fem.Constant(mesh_data.mesh, dolfinx.default_scalar_type(1.0 / k0**2))
        A, B = _stack_operators(mesh_data, V, eps_par, eps_perp, inv_k02, te)
        try:
            found = _guided_eigenvectors(
                A, B, mesh_data, eps_r, te, n_modes, _solver_options(petsc_options)
            )
        finally:
            A.destroy()
            B.destroy()
        integrals = _ModeIntegrals.build(mesh_data, V, eps_par, eps_perp, inv_k02, te)
        modes = [
            integrals.mode(value, vector, eps_r, polarisation, order, wavelength)
            for order, (value, vector) in enumerate(found[:n_modes])
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


def _stack_operators(
    mesh_data: MeshData,
    V: fem.FunctionSpace,
    eps_par: fem.Function,
    eps_perp: fem.Function,
    inv_k02: fem.Constant,
    te: bool,
) -> tuple[PETSc.Mat, PETSc.Mat]:
    """``A`` and ``B`` of ``A x = N^2 B x`` (weak forms in the module docstring), zero on
    ``bottom`` and ``top``: the constrained dofs become decoupled eigenvalues -1, far below every
    guided N^2 > 0."""
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    if te:
        a = (eps_par * u * v - inv_k02 * ufl.inner(ufl.grad(u), ufl.grad(v))) * ufl.dx
        b = u * v * ufl.dx
    else:
        a = (u * v - inv_k02 / eps_par * ufl.inner(ufl.grad(u), ufl.grad(v))) * ufl.dx
        b = u / eps_perp * v * ufl.dx
    dofs = boundary_dofs(V, mesh_data, ("bottom", "top"))
    bc = fem.dirichletbc(dolfinx.default_scalar_type(0.0), dofs, V)
    A = assemble_matrix(fem.form(a), bcs=[bc], diag=-1.0)
    A.assemble()
    B = assemble_matrix(fem.form(b), bcs=[bc], diag=1.0)
    B.assemble()
    return A, B


def _guided_eigenvectors(
    A: PETSc.Mat,
    B: PETSc.Mat,
    mesh_data: MeshData,
    eps_r: Mapping[str, tuple[complex, complex]],
    te: bool,
    n_modes: int,
    options: dict[str, Any],
) -> list[tuple[float, PETSc.Vec]]:
    """Solve ``A x = N^2 B x`` about a target just above the largest permittivity and keep the
    real eigenpairs above the cutoff of the outer regions, by decreasing N^2."""
    component = 0 if te else 1
    cutoff = max(eps_r[name][component].real for name in _outer_regions(mesh_data))
    eps_max = max(max(e[0].real, e[1].real) for e in eps_r.values())
    target = eps_max * (1.0 + 1e-3) + 1e-3
    hermitian = te or all(e[1].real > 0.0 for e in eps_r.values())
    solver, run = solve_eigenproblem(
        A,
        B,
        prefix=OPTIONS_PREFIX,
        target=target,
        nev=n_modes,
        options=options,
        hermitian=hermitian,
    )
    found: list[tuple[float, PETSc.Vec]] = []
    try:
        _check_guided_range(solver, cutoff, eps_max, run)
        for i in range(solver.getConverged()):
            vr, vi = A.createVecs()
            value = solver.getEigenpair(i, vr, vi)
            vi.destroy()
            real = abs(value.imag) <= 1e-8 * max(1.0, abs(value.real))
            if real and value.real > cutoff:
                found.append((value.real, vr))
            else:
                vr.destroy()
    finally:
        solver.destroy()
    found.sort(key=lambda pair: -pair[0])
    return found


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
    TM the in-plane and normal parts of ``|E|^2``, ``|H|^2`` and the norm ``|H|^2/eps_perp``."""

    uh: fem.Function
    n2: fem.Constant
    cells: _Cells
    forms: dict[str, fem.Form]
    te: bool

    @classmethod
    def build(
        cls,
        mesh_data: MeshData,
        V: fem.FunctionSpace,
        eps_par: fem.Function,
        eps_perp: fem.Function,
        inv_k02: fem.Constant,
        te: bool,
    ) -> _ModeIntegrals:
        Q = fem.functionspace(mesh_data.mesh, ("DG", 0))
        uh = fem.Function(V)
        w = ufl.TestFunction(Q)
        n2 = fem.Constant(mesh_data.mesh, dolfinx.default_scalar_type(1.0))
        if te:
            forms = {"e2": fem.form(uh * uh * w * ufl.dx)}
        else:
            dh = uh.dx(0)
            forms = {
                "par": fem.form(inv_k02 * dh * dh / eps_par**2 * w * ufl.dx),
                "perp": fem.form(n2 * uh * uh / eps_perp**2 * w * ufl.dx),
                "h2": fem.form(uh * uh * w * ufl.dx),
                "norm": fem.form(uh * uh / eps_perp * w * ufl.dx),
            }
        return cls(uh, n2, _Cells(mesh_data, Q), forms, te)

    def mode(
        self,
        value: float,
        vector: PETSc.Vec,
        eps_r: Mapping[str, tuple[complex, complex]],
        polarisation: str,
        order: int,
        wavelength: float,
    ) -> Mode:
        """The :class:`Mode` of the eigenpair ``(N^2, vector)``: its field normalised to a peak
        of 1, confinement, perturbation weights, group index and first-order loss."""
        uh = self.uh
        n_eff = math.sqrt(value)
        uh.x.petsc_vec.array[:] = vector.array
        uh.x.scatter_forward()
        normalise_peak(uh)
        self.n2.value = value
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
            polarisation, order, n_eff, wavelength, confinement, loss / 100.0, group, weights, field
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
