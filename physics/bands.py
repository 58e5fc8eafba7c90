r"""DFB band edges at the Gamma point of the square lattice, on the periodic cross-section (2D)
and unit cell (3D).

At the Gamma point (Bloch phase 1 across the period :math:`\Lambda`) the guided waves
:math:`e^{\pm i G x}` (and :math:`e^{\pm i G y}` in 3D), :math:`G = 2\pi/\Lambda`, are folded
onto each other by the grating (second-order DFB): the band edges sit near
:math:`\lambda = n_\mathrm{eff} \Lambda` (:func:`bragg_guess`), and the grating splits them.

Equations, with :math:`k_0 = 2\pi/\lambda` the eigenvalue's square root and :math:`\varepsilon` the
real part of the relative permittivity of each region:

- TE (2D cross-section, :math:`u = E_y`, the field along the grooves' invariant direction):
  :math:`-\nabla\cdot\nabla u = k_0^2 \varepsilon u`, weak form
  :math:`\int \nabla u\cdot\nabla v = k_0^2 \int \varepsilon u v`.
- TM (2D only, :math:`u = H_y`): :math:`-\nabla\cdot(\varepsilon^{-1}\nabla u) = k_0^2 u`, weak form
  :math:`\int \varepsilon^{-1}\nabla u\cdot\nabla v = k_0^2 \int u v`.
- 3D unit cell: the scalar TE equation above. This is an approximation (the scalar Helmholtz
  equation of one field component, dropping the :math:`\nabla(\nabla\cdot E)` coupling at the
  index steps); it keeps the lattice symmetry and the folding of the four waves exactly but not the
  vector polarisation of the modes.

**Closed meshes** (the 3D cell, and the cross-section built without PMLs). The field vanishes on
the truncation (``top``, ``bottom``, far above and below the guiding layers) and is periodic
across ``periodic_*`` faces (:mod:`physics.periodic`, ``P^T A P``). The truncation also turns the
vertical radiation continuum into a discrete set of "box" modes; those are told apart by their
share of :math:`|u|^2` in the outer half of the padding (``radiation_fraction``), which is
exponentially small for guided band edges and about that half's share of the volume for box
modes. Band edges that do not couple to vertical waves (2D: odd in x; 3D scalar: B and E) are
bound states and independent of the truncation. Radiating band edges (2D: even; 3D scalar: A) are
resonances of the open structure; in the closed box they hybridise with nearby box modes, so their
wavelength depends on ``mesh.optical_padding_um`` (by a few nm for the paper device), not only on
the mesh: read them as indicative.

**Open cross-section** (``build_cross_section(..., pml=True)``: ``z_levels`` has ``pml_bottom``
and ``pml_top``). Below ``pml_bottom`` and above ``pml_top`` the vertical coordinate is stretched
by :math:`s(z) = 1 + i\sigma(z)` (:mod:`physics.pml`; x is not), :math:`\partial_z \to
s^{-1}\partial_z`, :math:`dz \to s\,dz`, so the outgoing waves of a radiating band edge are
absorbed instead of reflected. The weak forms become

- TE: :math:`\int (s\,u_x v_x + s^{-1} u_z v_z) = k_0^2 \int \varepsilon\,s\,u v`,
- TM: :math:`\int \varepsilon^{-1}(s\,u_x v_x + s^{-1} u_z v_z) = k_0^2 \int s\,u v`,

(in 3D every in-plane derivative takes :math:`s`), a complex-symmetric pencil
:math:`(A_r + iA_i)x = k_0^2 (B_r + iB_i) x`. Its four real parts are assembled from the real
and imaginary parts of :math:`s` and :math:`1/s` (:func:`physics.pml.stretch_parts`), each
reduced by the periodic constraint, and solved in the pencil's real form
(:func:`physics.pml.solve_complex_pencil`); the field is zero at the PMLs' far ends. Each band
edge then has a complex :math:`k_0` with :math:`\mathrm{Im}\,k_0 \le 0` (time
:math:`e^{-i\omega t}`): its wavelength is :math:`2\pi/\mathrm{Re}\,k_0` and its radiation
quality factor :math:`Q = \mathrm{Re}\,\omega/(2|\mathrm{Im}\,\omega|)`. The odd edges stay bound
(symmetry-protected, :math:`Q = \infty` up to the discretisation) while only the zeroth
diffraction order is open (:math:`n_\mathrm{sub}, n_\mathrm{cover} < \lambda/\Lambda`); the even
ones radiate normally to the surface. Both are resonances of the open structure, independent of
the padding and the PMLs to the discretisation's accuracy: no caveat applies. Modes of the PMLs
and of the discretised continuum are dropped by the same ``radiation_fraction`` test, the outer
region now being the outer half of the padding and the PMLs.

The generalised eigenproblem :math:`A x = k_0^2 B x` is solved by SLEPc (Krylov-Schur,
shift-and-invert about :math:`(2\pi/\lambda_\mathrm{guess})^2`, MUMPS), options prefix ``bands_``.

Confinement of a region. Closed meshes: :math:`\int_r |\mathbf E|^2 / \int |\mathbf E|^2`, for TE
and the 3D scalar field :math:`|u|^2`, for TM :math:`|\nabla H_y|^2/\varepsilon^2` (the electric
field, as in :mod:`physics.modes`). Open meshes: the first-order gain factor
:math:`\Gamma_r = \mathrm{Re}\int_r w / \int w`, unconjugated and through the PMLs, TE
:math:`w = \varepsilon s u^2`, TM :math:`w = (s u_x^2 + u_z^2/s)/\varepsilon`: a relative change
:math:`\delta\varepsilon_r/\varepsilon_r` of region r moves the eigenvalue by
:math:`-\Gamma_r\,\delta\varepsilon_r/\varepsilon_r` to first order, so it is the factor that
multiplies a material gain in the mode's growth rate. For a bound edge (real field) it is the
electric-energy share; for a radiating one it does not depend on the padding, as the energy share
would (it counts the outgoing wave there: paper device, scale 1, the even TE edge, Q 78, has a film
energy share of 0.411, 0.357 and 0.310 with 2, 3 and 4 um of padding, and a gain factor of 0.590
for all three). The factors sum to 1.

Open meshes also give the quality factor from the radiated power, ``q_flux`` :math:`= \omega
W/P` per period and unit length along y. With :math:`(a, b) = (1, \varepsilon)` (TE) or
:math:`(\varepsilon^{-1}, 1)` (TM) the time-averaged stored energy is :math:`W = \tfrac{c_W}{4}
\int (b|u|^2 + a|\nabla u|^2/k_0^2)` (:math:`c_W = \varepsilon_0` for TE, :math:`\mu_0` for TM),
integrated up to the middle of the flux slabs, and the radiated power, the Poynting flux
:math:`\tfrac12\mathrm{Re}(\mathbf E\times\bar{\mathbf H})_z` out through the top and the bottom,
:math:`P = \tfrac{c_W}{2 k_0^2}\,\omega \int a\,\mathrm{Im}(\bar u\,\partial_z u)\,dx`, averaged
over the outer half of the padding above and below; so

.. math:: Q_\mathrm{flux} = k_0^2 \frac{\int (b|u|^2 + a|\nabla u|^2/k_0^2)}
   {2 \int a\,\mathrm{Im}(\bar u\,\partial_z u)\,dx},

which equals the eigenvalue's Q for a well-resolved mode (energy balance :math:`dW/dt = -P`): a
check of the PMLs and the mesh.

Timers (``dolfinx.common.Timer``, per rank; read them with ``dolfinx.common.timing(name)``):
:data:`BANDS_TIMER` (all of :func:`band_edges`), within it :data:`BANDS_ASSEMBLE_TIMER` (the
space, the periodic constraint and the reduced operators) and :data:`BANDS_SOLVE_TIMER` (the
eigensolve), and :data:`BRAGG_TIMER` (:func:`bragg_guess`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petsc4py import PETSc
from slepc4py import SLEPc

import numpy as np

import dolfinx
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import assemble_matrix

from cqdlaser.geometry.device import Device, MeshResolution
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import global_sum, normalise_peak, region_function
from cqdlaser.physics._slepc import solve_eigenproblem, with_direct_solver
from cqdlaser.physics.modes import Permittivity, stack_modes
from cqdlaser.physics.periodic import PeriodicSpace, periodic_space_from_mesh
from cqdlaser.physics.permittivity import region_permittivity
from cqdlaser.physics.pml import (
    PML,
    ComplexPair,
    normalise_phase,
    quality_factor,
    solve_complex_pencil,
    stretch_parts,
)

OPTIONS_PREFIX = "bands_"

BANDS_TIMER = "cqdlaser: band edges"
"""Timer of :func:`band_edges`, from the set-up to the band edges returned."""
BANDS_ASSEMBLE_TIMER = "cqdlaser: band edges, operators"
"""Timer of the function space, the periodic constraint and the reduced operators of
:func:`band_edges`."""
BANDS_SOLVE_TIMER = "cqdlaser: band edges, eigensolve"
"""Timer of the SLEPc eigensolve of :func:`band_edges`."""
BRAGG_TIMER = "cqdlaser: Bragg estimate"
"""Timer of :func:`bragg_guess` (its stack solves)."""

DEFAULT_BANDS_EPS_OPTIONS: dict[str, Any] = {
    "eps_type": "krylovschur",
    "eps_tol": 1e-10,
    "eps_max_it": 500,
    "st_type": "sinvert",
    "st_ksp_type": "preonly",
    "st_pc_type": "lu",
}
"""SLEPc options of the band-edge eigensolver (prefix ``bands_``). ``eps_target`` ((2 pi /
wavelength_guess)^2) and ``eps_nev`` (2 n_bands + 4, to leave room for box modes) are set per
solve unless given."""

POLARISATIONS = ("TE", "TM")

CLOSED_RADIATION_SHARE = 0.5
"""Default ``max_radiation_share`` of a closed mesh: a box mode spreads over the padding, a guided
band edge's |u|^2 there is exponentially small."""
OPEN_RADIATION_SHARE = 1.0
"""Default ``max_radiation_share`` of an open mesh. A PML or continuum mode carries nearly all of
its |u|^2 in the outer region (0.94 to 0.98 for the paper device, whose outer region is 55 % of
the mesh); a radiating band edge's outgoing wave puts a share there that grows as 1/Q (0.26 at
Q = 78, the paper device's even TE edge), so the bound sits between, keeping edges down to
Q of about 25."""

DEFAULT_PML_STRENGTH: float = next(
    f.default for f in dataclasses.fields(MeshResolution) if f.name == "pml_strength"
)
"""sigma_max of the PMLs of an open mesh when :func:`band_edges` is given none (the default of
``mesh.pml_strength``)."""


@dataclass(frozen=True)
class BandEdge:
    """A band-edge mode at the Gamma point.

    Attributes:
        wavelength: Vacuum wavelength 2 pi / Re(k0) (m).
        k0: Real part of the vacuum wavenumber (1/m); on an open mesh Im(k0) = -k0 / (2
            ``q_factor``).
        polarisation: ``"TE"`` (2D: E_y; 3D: the scalar field) or ``"TM"`` (2D: H_y).
        confinement: Region -> fraction of |E|^2 in it (closed mesh), or its first-order gain
            factor (open mesh: the factor on a region's material gain in the mode's growth
            rate, see the module docstring); sums to 1.
        radiation_fraction: Fraction of |u|^2 in the outer half of the padding above and below
            (and, open, in the PMLs).
        degeneracy: Number of band edges (this one included) within ``degeneracy_rtol`` of its
            wavelength, among those returned.
        symmetry: 2D: ``"even"`` or ``"odd"`` in x about the pillar centre (odd: dark at the Gamma
            point while only the zeroth diffraction order is open); 3D: ``"A"`` (cos Gx + cos Gy),
            ``"B"`` (cos Gx - cos Gy), ``"E"`` (sin Gx, sin Gy) by the dominant first harmonics;
            ``"?"`` when no first harmonic is present.
        harmonics: Weights (summing to 1) of the first in-plane harmonics ``cos_x``, ``sin_x``
            (and ``cos_y``, ``sin_y``) in the overlaps of u with them (open: their |.|^2).
        field: The mode (``E_y``, ``H_y`` or ``u``), scaled to max |u| = 1, positive there; on an
            open mesh its real part, the phase chosen so that u is real and 1 at its largest dof.
        q_factor: Radiation quality factor Re(omega) / (2 |Im(omega)|) of the eigenvalue (open
            mesh; inf for a real eigenvalue, nan on a closed mesh).
        q_flux: The same from the radiated power, omega W / P (open mesh; nan on a closed mesh).
        field_imag: Imaginary part of the mode (open mesh; None on a closed one).
        pml: The PMLs of the open problem (None on a closed mesh).
    """

    wavelength: float
    k0: float
    polarisation: str
    confinement: dict[str, float]
    radiation_fraction: float
    degeneracy: int
    symmetry: str
    harmonics: dict[str, float]
    field: fem.Function = field(repr=False)
    q_factor: float = math.nan
    q_flux: float = math.nan
    field_imag: fem.Function | None = dataclasses.field(default=None, repr=False)
    pml: PML | None = dataclasses.field(default=None, repr=False)

    @property
    def is_open(self) -> bool:
        """Whether it was solved with PMLs (complex k0)."""
        return self.field_imag is not None


def solver_options(petsc_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULT_BANDS_EPS_OPTIONS` with a direct solver and the user's overrides."""
    return with_direct_solver(DEFAULT_BANDS_EPS_OPTIONS, petsc_options)


def _region_values(
    mesh_data: MeshData, permittivity: Mapping[str, Permittivity]
) -> dict[str, float]:
    missing = sorted(set(mesh_data.regions) - set(permittivity))
    if missing:
        raise KeyError(
            f"permittivity must name every region of the mesh {sorted(mesh_data.regions)}: "
            f"missing {missing}"
        )
    out = {}
    for name in mesh_data.regions:
        value = permittivity[name]
        if isinstance(value, tuple):
            raise ValueError(
                f"permittivity[{name!r}] = {value}: the resolved meshes take isotropic regions"
            )
        eps = complex(value).real
        if eps <= 0.0:
            raise ValueError(f"permittivity[{name!r}] = {value}: Re(eps) must be positive")
        out[name] = eps
    return out


def _symmetry(overlaps: Mapping[str, complex], harmonics: Mapping[str, float]) -> str:
    """Symmetry label from the overlaps of u with the first harmonics (see :class:`BandEdge`)."""
    if not all(math.isfinite(w) for w in harmonics.values()):
        return "?"
    cos = harmonics["cos_x"] + harmonics.get("cos_y", 0.0)
    if "cos_y" not in overlaps:
        return "even" if cos > 0.5 else "odd"
    if cos <= 0.5:
        return "E"
    return "A" if (overlaps["cos_x"] * overlaps["cos_y"]).real > 0.0 else "B"


def band_edges(
    mesh_data: MeshData,
    permittivity: Mapping[str, Permittivity],
    *,
    period: float,
    wavelength_guess: float,
    polarisation: str = "TE",
    degree: int = 2,
    n_bands: int = 4,
    max_radiation_share: float | None = None,
    degeneracy_rtol: float = 1e-5,
    pml: PML | None = None,
    petsc_options: Mapping[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> list[BandEdge]:
    """Band-edge modes at the Gamma point nearest a guessed wavelength, sorted by wavelength.

    On a mesh with PML levels (``z_levels`` ``pml_bottom`` and ``pml_top``) the open problem is
    solved (module docstring): complex k0, ``q_factor``, ``q_flux`` and ``field_imag``.

    Args:
        mesh_data: A ``cross-section`` (2D) or ``cell`` (3D) mesh, periodic, with boundaries
            ``top`` and ``bottom`` (where the field is zero) and the ``z_levels`` of its layers;
            open when it has PML levels.
        permittivity: Relative permittivity of every region (its real part is used).
        period: Lattice period Lambda (m), for the first harmonics G = 2 pi / Lambda.
        wavelength_guess: Vacuum wavelength (m) the shift-and-invert targets, e.g.
            :func:`bragg_guess`.
        polarisation: ``"TE"``, or ``"TM"`` on the 2D cross-section (see the module docstring).
        degree: Lagrange degree (eigenvalue errors fall as h^(2 degree)).
        n_bands: Number of guided band edges to return (fewer if fewer are found).
        max_radiation_share: Modes whose ``radiation_fraction`` exceeds this share of the outer
            region's volume fraction (what a field spread evenly would have there) are box modes
            of the truncation (closed) or PML and continuum modes (open) and are dropped; default
            :data:`CLOSED_RADIATION_SHARE` or :data:`OPEN_RADIATION_SHARE`.
        degeneracy_rtol: Relative wavelength difference under which band edges count as
            degenerate.
        pml: The PMLs of an open mesh (:meth:`physics.pml.PML.of`); default: those its
            ``z_levels`` place, of the default ``mesh.pml_strength``
            (:data:`DEFAULT_PML_STRENGTH`). Ignored on a closed mesh.
        petsc_options: SLEPc/PETSc options (prefix ``bands_``) over
            :data:`DEFAULT_BANDS_EPS_OPTIONS`.
        info: A dict filled with solve statistics: ``dofs`` (global, before the constraint),
            ``reduced_dofs``, ``iterations``, ``converged``, ``options`` (open: also
            ``real_form_size``, the size of the pencil's real form). Times are in the
            timers :data:`BANDS_TIMER`, :data:`BANDS_ASSEMBLE_TIMER`, :data:`BANDS_SOLVE_TIMER`.

    Returns:
        The band edges.

    Raises:
        ValueError: Wrong polarisation, mesh kind or permittivity.
        KeyError: ``permittivity`` lacks a region of the mesh.
        SolverError: SLEPc did not converge or an eigenpair failed its residual check
            (:func:`~physics._slepc.check_eigenpairs`), with the reason and the options in effect.
    """
    _check_problem(mesh_data, polarisation, degree, n_bands, period, wavelength_guess)
    te = polarisation == "TE"
    eps_values = _region_values(mesh_data, permittivity)
    stretch = open_mesh_pml(mesh_data, pml)
    with dolfinx.common.Timer(BANDS_TIMER):
        with dolfinx.common.Timer(BANDS_ASSEMBLE_TIMER):
            V = fem.functionspace(mesh_data.mesh, ("Lagrange", degree))
            eps = region_function(mesh_data, eps_values)
            space = periodic_space_from_mesh(V, mesh_data, dirichlet=("top", "bottom"))
        name = ("E_y" if te else "H_y") if mesh_data.mesh.geometry.dim == 2 else "u"
        setup = _Setup(mesh_data, V, eps, te, space, period, name)
        options = solver_options(petsc_options)
        nev = int(options.pop("eps_nev", 2 * n_bands + 4))
        target = (2.0 * math.pi / wavelength_guess) ** 2
        if stretch is None:
            share = CLOSED_RADIATION_SHARE if max_radiation_share is None else max_radiation_share
            found = _closed_modes(setup, target, nev, options, share, info)
        else:
            share = OPEN_RADIATION_SHARE if max_radiation_share is None else max_radiation_share
            found = _open_modes(setup, stretch, target, nev, options, share, info)
        return _nearest_band_edges(found, wavelength_guess, n_bands, polarisation, degeneracy_rtol)


@dataclass(frozen=True)
class _Setup:
    """What the closed and the open solves share: the space, the permittivity, the constraint."""

    mesh_data: MeshData
    V: fem.FunctionSpace
    eps: fem.Function
    te: bool
    space: PeriodicSpace
    period: float
    name: str


def open_mesh_pml(mesh_data: MeshData, pml: PML | None = None) -> PML | None:
    """The PMLs of a mesh: None for a closed one (no ``pml_bottom``/``pml_top`` levels), else
    ``pml`` or, without it, the layers its ``z_levels`` place (each as thick as the stretch of
    substrate below ``pml_bottom``) with :data:`DEFAULT_PML_STRENGTH`."""
    levels = mesh_data.z_levels
    if "pml_bottom" not in levels or "pml_top" not in levels:
        return None
    if pml is not None:
        return pml
    thickness = levels["pml_bottom"] - levels["substrate_bottom"]
    return PML(levels["pml_bottom"], levels["pml_top"], thickness, DEFAULT_PML_STRENGTH)


def _closed_modes(
    setup: _Setup,
    target: float,
    nev: int,
    options: dict[str, Any],
    max_radiation_share: float,
    info: dict[str, Any] | None,
) -> list[_Found]:
    """The guided modes of the closed (Dirichlet-truncated) Gamma-point problem."""
    with dolfinx.common.Timer(BANDS_ASSEMBLE_TIMER):
        A, B = _reduced_operators(setup.V, setup.eps, setup.te, setup.space)
    with dolfinx.common.Timer(BANDS_SOLVE_TIMER):
        solver, run = solve_eigenproblem(
            A, B, prefix=OPTIONS_PREFIX, target=target, nev=nev, options=options
        )
    if info is not None:
        info.update(_statistics(setup.V, setup.space, solver, run))
    observables = _Observables.build(setup.mesh_data, setup.V, setup.eps, setup.te, setup.period)
    radiation_limit = max_radiation_share * _outer_padding_share(setup.mesh_data)
    try:
        return _guided_modes(solver, A, setup.space, observables, radiation_limit, setup.name)
    finally:
        solver.destroy()
        A.destroy()
        B.destroy()


def _statistics(
    V: fem.FunctionSpace, space: PeriodicSpace, solver: SLEPc.EPS, options: dict[str, Any]
) -> dict[str, Any]:
    """The solve statistics of :func:`band_edges` (its ``info``)."""
    return {
        "dofs": V.dofmap.index_map.size_global,
        "reduced_dofs": space.size_global,
        "iterations": solver.getIterationNumber(),
        "converged": solver.getConverged(),
        "options": options,
    }


def _check_problem(
    mesh_data: MeshData,
    polarisation: str,
    degree: int,
    n_bands: int,
    period: float,
    wavelength_guess: float,
) -> None:
    """Raise ValueError for a wrong polarisation, mesh kind or size."""
    if polarisation not in POLARISATIONS:
        raise ValueError(f"polarisation = {polarisation!r} must be one of {POLARISATIONS}")
    if mesh_data.kind not in ("cross-section", "cell"):
        raise ValueError(f"band_edges needs a cross-section or cell mesh, got {mesh_data.kind!r}")
    if polarisation == "TM" and mesh_data.mesh.geometry.dim != 2:
        raise ValueError("TM (u = H_y) is defined on the 2D cross-section only")
    if degree < 1 or n_bands < 1:
        raise ValueError(f"degree = {degree} and n_bands = {n_bands} must be at least 1")
    if not (period > 0.0 and wavelength_guess > 0.0):
        raise ValueError(f"period = {period} m and wavelength_guess = {wavelength_guess} m > 0")


def _reduced_operators(
    V: fem.FunctionSpace, eps: fem.Function, te: bool, space: PeriodicSpace
) -> tuple[PETSc.Mat, PETSc.Mat]:
    """``P^T A P`` and ``P^T B P`` of the Gamma-point problem ``A x = k0^2 B x``: TE
    ``(grad u, grad v) = k0^2 (eps u, v)``, TM ``(grad u / eps, grad v) = k0^2 (u, v)``."""
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    if te:
        a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
        b = eps * u * v * ufl.dx
    else:
        a = ufl.inner(ufl.grad(u), ufl.grad(v)) / eps * ufl.dx
        b = u * v * ufl.dx
    reduced = []
    for form in (a, b):
        full = assemble_matrix(fem.form(form))
        full.assemble()
        reduced.append(space.reduce_matrix(full))
        full.destroy()
    return reduced[0], reduced[1]


def _outer_padding_share(mesh_data: MeshData) -> float:
    """Volume fraction of the outer half of the padding above and below (see
    :class:`_Observables`): the radiation fraction of a field spread evenly."""
    msh = mesh_data.mesh
    far = _outer_padding(mesh_data)
    one = fem.Constant(msh, PETSc.ScalarType(1.0))
    return global_sum(fem.form(far * ufl.dx)) / global_sum(fem.form(one * ufl.dx))


def _outer_padding(mesh_data: MeshData) -> Any:
    """1 in the outer half of the padding below the substrate top and above the cover bottom."""
    z = ufl.SpatialCoordinate(mesh_data.mesh)[mesh_data.mesh.geometry.dim - 1]
    levels = mesh_data.z_levels
    z_low = 0.5 * (levels["substrate_bottom"] + levels["substrate_top"])
    z_high = 0.5 * (levels["cover_bottom"] + levels["cover_top"])
    return ufl.conditional(ufl.Or(ufl.lt(z, z_low), ufl.gt(z, z_high)), 1.0, 0.0)


@dataclass(frozen=True)
class _Observables:
    """Compiled integrals of a mode ``uh``: |E|^2 per region, |u|^2 in the outer half of the
    padding and in total, and the overlaps of u with the first in-plane harmonics."""

    uh: fem.Function
    regions: dict[str, fem.Form]
    far: fem.Form
    total: fem.Form
    waves: dict[str, fem.Form]

    @classmethod
    def build(
        cls,
        mesh_data: MeshData,
        V: fem.FunctionSpace,
        eps: fem.Function,
        te: bool,
        period: float,
    ) -> _Observables:
        msh = mesh_data.mesh
        x = ufl.SpatialCoordinate(msh)
        uh = fem.Function(V)
        e2 = uh * uh if te else ufl.inner(ufl.grad(uh), ufl.grad(uh)) / eps**2
        dx = ufl.Measure("dx", domain=msh, subdomain_data=mesh_data.cell_tags)
        g = 2.0 * math.pi / period
        waves = {"cos_x": ufl.cos(g * x[0]), "sin_x": ufl.sin(g * x[0])}
        if msh.geometry.dim == 3:
            waves |= {"cos_y": ufl.cos(g * x[1]), "sin_y": ufl.sin(g * x[1])}
        return cls(
            uh=uh,
            regions={name: fem.form(e2 * dx(tag)) for name, tag in mesh_data.regions.items()},
            far=fem.form(_outer_padding(mesh_data) * uh * uh * ufl.dx),
            total=fem.form(uh * uh * ufl.dx),
            waves={key: fem.form(w * uh * ufl.dx) for key, w in waves.items()},
        )

    def radiation(self) -> float:
        """Fraction of |u|^2 in the outer half of the padding."""
        return global_sum(self.far) / global_sum(self.total)

    def confinement(self) -> dict[str, float]:
        """Region -> fraction of |E|^2 in it."""
        per_region = {name: global_sum(L) for name, L in self.regions.items()}
        norm = sum(per_region.values())
        return {name: s / norm for name, s in per_region.items()}

    def overlaps(self) -> dict[str, float]:
        """Harmonic -> integral of u times it."""
        return {key: global_sum(L) for key, L in self.waves.items()}


@dataclass(frozen=True)
class _Found:
    """A kept mode before the selection: overlaps real (closed) or complex (open)."""

    wavelength: float
    radiation: float
    confinement: dict[str, float]
    overlaps: dict[str, complex]
    field: fem.Function
    q_factor: float = math.nan
    q_flux: float = math.nan
    field_imag: fem.Function | None = None
    pml: PML | None = None


def _guided_modes(
    solver: SLEPc.EPS,
    A: PETSc.Mat,
    space: PeriodicSpace,
    observables: _Observables,
    radiation_limit: float,
    name: str,
) -> list[_Found]:
    """The converged eigenpairs with k0^2 > 0 whose radiation fraction is at most
    ``radiation_limit`` (the others are box modes of the truncation), with their confinement
    and harmonics; each field (named ``name``) normalised to a peak of 1."""
    uh = observables.uh
    V = uh.function_space
    found: list[_Found] = []
    vr, vi = A.createVecs()
    try:
        for i in range(solver.getConverged()):
            value = solver.getEigenpair(i, vr, vi).real
            if value <= 0.0:
                continue
            space.expand(vr, uh)
            normalise_peak(uh)
            radiation = observables.radiation()
            if radiation > radiation_limit:
                continue
            mode = fem.Function(V, name=name)
            mode.x.array[:] = uh.x.array
            found.append(
                _Found(
                    2.0 * math.pi / math.sqrt(value),
                    radiation,
                    observables.confinement(),
                    observables.overlaps(),
                    mode,
                )
            )
    finally:
        vr.destroy()
        vi.destroy()
    return found


# --- the open problem (PMLs) -------------------------------------------------------------------


def _open_modes(
    setup: _Setup,
    pml: PML,
    target: float,
    nev: int,
    options: dict[str, Any],
    max_radiation_share: float,
    info: dict[str, Any] | None,
) -> list[_Found]:
    """The band edges of the stretched (open) Gamma-point pencil that are neither PML nor
    continuum modes, with their quality factors."""
    with dolfinx.common.Timer(BANDS_ASSEMBLE_TIMER):
        matrices = _stretched_operators(setup, pml)
    try:
        with dolfinx.common.Timer(BANDS_SOLVE_TIMER):
            pairs, run = solve_complex_pencil(
                (matrices[0], matrices[1]),
                (matrices[2], matrices[3]),
                prefix=OPTIONS_PREFIX,
                target=target,
                nev=nev,
                options=options,
            )
    finally:
        for matrix in matrices:
            matrix.destroy()
    if info is not None:
        info.update(
            {
                "dofs": setup.V.dofmap.index_map.size_global,
                "reduced_dofs": setup.space.size_global,
                "real_form_size": run["size"],
                "iterations": run["iterations"],
                "converged": run["converged"],
                "options": run["options"],
            }
        )
    observables = _OpenObservables.build(setup, pml)
    try:
        modes = [_open_mode(pair, setup, observables, max_radiation_share) for pair in pairs]
    finally:
        for pair in pairs:
            pair.re.destroy()
            pair.im.destroy()
    return [mode for mode in modes if mode is not None]


def _stretched_operators(setup: _Setup, pml: PML) -> list[PETSc.Mat]:
    """``P^T M P`` for M = A_r, A_i, B_r, B_i of the stretched pencil: TE
    ``(s u_x, v_x) + (u_z / s, v_z) = k0^2 (eps s u, v)``, TM the same with 1/eps on the left and
    none on the right (in 3D every in-plane derivative takes s)."""
    V = setup.V
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dim = V.mesh.geometry.dim
    p = stretch_parts(pml.sigma(ufl.SpatialCoordinate(V.mesh)[dim - 1]))
    gu, gv = ufl.grad(u), ufl.grad(v)
    lateral = sum(gu[i] * gv[i] for i in range(dim - 1))
    vertical = gu[dim - 1] * gv[dim - 1]
    a, b = (1.0, setup.eps) if setup.te else (1.0 / setup.eps, 1.0)
    forms = (
        a * (p["s_re"] * lateral + p["inv_re"] * vertical) * ufl.dx,
        a * (p["s_im"] * lateral + p["inv_im"] * vertical) * ufl.dx,
        b * p["s_re"] * u * v * ufl.dx,
        b * p["s_im"] * u * v * ufl.dx,
    )
    reduced = []
    for form in forms:
        full = assemble_matrix(fem.form(form))
        full.assemble()
        reduced.append(setup.space.reduce_matrix(full))
        full.destroy()
    return reduced


@dataclass(frozen=True)
class _OpenObservables:
    """Compiled integrals of a complex mode ``re + i im`` on an open mesh (module docstring):
    the gain-factor integrand per region (real and imaginary parts), |u|^2 in the outer region
    (the outer half of the padding and the PMLs) and in total, the overlaps with the first
    harmonics, the stored energy and the radiated flux (with ``k0`` set to Re k0 before
    assembling them)."""

    re: fem.Function
    im: fem.Function
    k0: fem.Constant
    regions: dict[str, tuple[fem.Form, fem.Form]]
    far: fem.Form
    total: fem.Form
    far_share: float
    waves: dict[str, tuple[fem.Form, fem.Form]]
    energy: fem.Form
    flux: fem.Form
    pml: PML

    @classmethod
    def build(cls, setup: _Setup, pml: PML) -> _OpenObservables:
        mesh_data, V, eps = setup.mesh_data, setup.V, setup.eps
        msh = mesh_data.mesh
        dim = msh.geometry.dim
        x = ufl.SpatialCoordinate(msh)
        z = x[dim - 1]
        re, im = fem.Function(V), fem.Function(V)
        k0 = fem.Constant(msh, PETSc.ScalarType(1.0))
        a, b = (1.0, eps) if setup.te else (1.0 / eps, 1.0)
        u2 = re * re + im * im
        g2 = ufl.inner(ufl.grad(re), ufl.grad(re)) + ufl.inner(ufl.grad(im), ufl.grad(im))
        inner = 1.0 - pml.inside(z)
        weight = _gain_weight(re, im, eps, setup.te, stretch_parts(pml.sigma(z)), dim)
        levels = mesh_data.z_levels
        z_low = 0.5 * (pml.z_bottom + levels["substrate_top"])
        z_high = 0.5 * (levels["cover_bottom"] + pml.z_top)
        far = ufl.conditional(ufl.Or(ufl.lt(z, z_low), ufl.gt(z, z_high)), 1.0, 0.0)
        one = fem.Constant(msh, PETSc.ScalarType(1.0))
        far_share = global_sum(fem.form(far * ufl.dx(domain=msh))) / global_sum(
            fem.form(one * ufl.dx(domain=msh))
        )
        # Im(conj(u) du/dz) averaged over the slabs, outward: up above, down below
        slab_low = ufl.conditional(ufl.And(ufl.gt(z, pml.z_bottom), ufl.lt(z, z_low)), 1.0, 0.0)
        slab_high = ufl.conditional(ufl.And(ufl.gt(z, z_high), ufl.lt(z, pml.z_top)), 1.0, 0.0)
        current = a * (re * ufl.grad(im)[dim - 1] - im * ufl.grad(re)[dim - 1])
        outward = slab_high / (pml.z_top - z_high) - slab_low / (z_low - pml.z_bottom)
        middle = ufl.And(
            ufl.gt(z, 0.5 * (pml.z_bottom + z_low)), ufl.lt(z, 0.5 * (z_high + pml.z_top))
        )
        between = ufl.conditional(middle, 1.0, 0.0)
        dx = ufl.Measure("dx", domain=msh, subdomain_data=mesh_data.cell_tags)
        g = 2.0 * math.pi / setup.period
        waves = {"cos_x": ufl.cos(g * x[0]), "sin_x": ufl.sin(g * x[0])}
        if dim == 3:
            waves |= {"cos_y": ufl.cos(g * x[1]), "sin_y": ufl.sin(g * x[1])}
        return cls(
            re=re,
            im=im,
            k0=k0,
            regions={
                name: (fem.form(weight[0] * dx(tag)), fem.form(weight[1] * dx(tag)))
                for name, tag in mesh_data.regions.items()
            },
            far=fem.form(far * u2 * ufl.dx),
            total=fem.form(u2 * ufl.dx),
            far_share=far_share,
            waves={
                key: (fem.form(w * inner * re * ufl.dx), fem.form(w * inner * im * ufl.dx))
                for key, w in waves.items()
            },
            energy=fem.form((b * u2 + a * g2 / k0**2) * between * ufl.dx),
            flux=fem.form(current * outward * ufl.dx),
            pml=pml,
        )


def _gain_weight(
    re: Any, im: Any, eps: Any, te: bool, p: dict[str, Any], dim: int
) -> tuple[Any, Any]:
    """Real and imaginary parts of the unconjugated integrand whose share over a region is its
    first-order gain factor (module docstring): TE ``eps s u^2``, TM
    ``(s u_x^2 + u_z^2 / s) / eps`` (u = re + i im, the PMLs' stretch ``p``)."""

    def square(a: Any, b: Any) -> tuple[Any, Any]:
        return a * a - b * b, 2.0 * a * b

    def times(x: tuple[Any, Any], y: tuple[Any, Any]) -> tuple[Any, Any]:
        return x[0] * y[0] - x[1] * y[1], x[0] * y[1] + x[1] * y[0]

    s, inv = (p["s_re"], p["s_im"]), (p["inv_re"], p["inv_im"])
    if te:
        u2 = square(re, im)
        w = times(s, u2)
        return eps * w[0], eps * w[1]
    gr, gi = ufl.grad(re), ufl.grad(im)
    lateral = [square(gr[i], gi[i]) for i in range(dim - 1)]
    lat = (sum(t[0] for t in lateral), sum(t[1] for t in lateral))
    w1 = times(s, lat)
    w2 = times(inv, square(gr[dim - 1], gi[dim - 1]))
    return (w1[0] + w2[0]) / eps, (w1[1] + w2[1]) / eps


def _open_mode(
    pair: ComplexPair, setup: _Setup, obs: _OpenObservables, max_radiation_share: float
) -> _Found | None:
    """The mode of one eigenpair, or None when it is a PML or continuum mode (its share of |u|^2
    in the outer region exceeds ``max_radiation_share`` times that region's volume share)."""
    k0 = complex(np.sqrt(pair.value))
    if k0.real < 0.0:
        k0 = -k0
    if not k0.real > 0.0:
        return None
    setup.space.expand(pair.re, obs.re)
    setup.space.expand(pair.im, obs.im)
    normalise_phase(obs.re, obs.im)
    radiation = global_sum(obs.far) / global_sum(obs.total)
    if radiation > max_radiation_share * obs.far_share:
        return None
    per_region = {
        name: complex(global_sum(f[0]), global_sum(f[1])) for name, f in obs.regions.items()
    }
    stored = sum(per_region.values())
    overlaps = {k: complex(global_sum(fr), global_sum(fi)) for k, (fr, fi) in obs.waves.items()}
    obs.k0.value = k0.real
    power = global_sum(obs.flux)
    energy = global_sum(obs.energy)
    return _Found(
        wavelength=2.0 * math.pi / k0.real,
        radiation=radiation,
        confinement={name: (w / stored).real for name, w in per_region.items()},
        overlaps=overlaps,
        field=_copy(obs.re, setup.name),
        q_factor=quality_factor(pair.value),
        q_flux=k0.real**2 * energy / (2.0 * power) if power > 0.0 else math.inf,
        field_imag=_copy(obs.im, f"{setup.name}_imag"),
        pml=obs.pml,
    )


def _copy(f: fem.Function, name: str) -> fem.Function:
    """A named copy of ``f``."""
    out = fem.Function(f.function_space, name=name)
    out.x.array[:] = f.x.array
    return out


def _nearest_band_edges(
    found: list[_Found],
    wavelength_guess: float,
    n_bands: int,
    polarisation: str,
    degeneracy_rtol: float,
) -> list[BandEdge]:
    """The ``n_bands`` modes nearest the guess, sorted by wavelength, with their degeneracy
    and symmetry."""
    found = sorted(found, key=lambda item: abs(item.wavelength - wavelength_guess))
    chosen = sorted(found[:n_bands], key=lambda item: item.wavelength)
    wavelengths = np.array([item.wavelength for item in chosen])
    out = []
    for item in chosen:
        near = np.abs(wavelengths - item.wavelength) <= degeneracy_rtol * item.wavelength
        power = {k: (c * c.conjugate()).real for k, c in item.overlaps.items()}
        weight = sum(power.values())
        harmonics = {k: (p / weight if weight > 0.0 else math.nan) for k, p in power.items()}
        out.append(
            BandEdge(
                wavelength=item.wavelength,
                k0=2.0 * math.pi / item.wavelength,
                polarisation=polarisation,
                confinement=item.confinement,
                radiation_fraction=item.radiation,
                degeneracy=int(np.count_nonzero(near)),
                symmetry=_symmetry(item.overlaps, harmonics),
                harmonics=harmonics,
                field=item.field,
                q_factor=item.q_factor,
                q_flux=item.q_flux,
                field_imag=item.field_imag,
                pml=item.pml,
            )
        )
    return out


def bragg_guess(
    device: Device,
    stack: MeshData,
    *,
    polarisation: str | None = None,
    rtol: float = 1e-8,
    max_iterations: int = 50,
) -> float:
    """The second-order Bragg estimate lambda = n_eff(lambda) Lambda of the device (m).

    n_eff is the fundamental guided mode's of the 1D optical stack with the homogenised grating
    layer (:func:`physics.modes.stack_modes`), solved self-consistently by the fixed point
    lambda_{i+1} = n_eff(lambda_i) Lambda from lambda_0 = ``optics.wavelength``. The materials are
    non-dispersive, so only the waveguide dispersion enters; the map contracts by about
    (n_g - n_eff) / n_eff per step.

    Args:
        device: The device; it must have a [grating].
        stack: The device's optical stack mesh (``build_stack(device, comm, optical=True)``).
        polarisation: ``"TE"`` or ``"TM"``; default ``optics.polarisation``.
        rtol: Relative change of lambda at which the iteration stops.
        max_iterations: Iterations before giving up.

    Returns:
        The wavelength (m).

    Raises:
        ValueError: No grating, not the optical stack, or no guided mode.
        RuntimeError: The iteration did not converge.
    """
    if device.grating is None:
        raise ValueError("bragg_guess needs a device with a [grating]")
    if stack.kind != "stack" or "cover" not in stack.regions:
        raise ValueError(
            f"bragg_guess needs the optical stack mesh (kind 'stack' with a 'cover'), got kind "
            f"{stack.kind!r} with regions {sorted(stack.regions)}"
        )
    pol = polarisation or device.optics.polarisation
    eps = region_permittivity(device, list(stack.regions))
    wavelength = device.optics.wavelength
    with dolfinx.common.Timer(BRAGG_TIMER):
        for _ in range(max_iterations):
            modes = stack_modes(stack, eps, wavelength, pol, n_modes=2)
            if not modes:
                raise ValueError(
                    f"the stack guides no {pol} mode at {wavelength * 1e9:.1f} nm: no Bragg "
                    "estimate"
                )
            previous, wavelength = wavelength, modes[0].n_eff * device.grating.period
            if abs(wavelength - previous) <= rtol * wavelength:
                return wavelength
    raise RuntimeError(
        f"bragg_guess: lambda = n_eff(lambda) Lambda did not converge in {max_iterations} "
        f"iterations (last {wavelength * 1e9:.4f} nm, previous {previous * 1e9:.4f} nm)"
    )


def write_band_edges(path: str | Path, edges: Sequence[BandEdge]) -> Path:
    """Write the band-edge fields for ParaView (one VTX ``.bp`` folder, one field per edge).

    Args:
        path: The ``.bp`` folder to write.
        edges: Band edges of one :func:`band_edges` call (they share a function space).

    Returns:
        The path written.
    """
    path = Path(path)
    if not edges:
        raise ValueError("no band edges to write")
    fields = []
    for i, edge in enumerate(edges):
        f = edge.field.copy()
        f.name = f"{edge.field.name}_{i}_{edge.wavelength * 1e9:.2f}nm".replace(".", "p")
        fields.append(f)
    with dolfinx.io.VTXWriter(edges[0].field.function_space.mesh.comm, path, fields) as writer:
        writer.write(0.0)
    return path


def band_edge_thermal_shift(
    edge: BandEdge,
    mesh_data: MeshData,
    permittivity: Mapping[str, Permittivity],
    dn_dt: Mapping[str, float],
) -> float:
    """d(lambda)/dT of a band edge (m/K) from the regions' thermo-optic coefficients.

    First-order perturbation of the eigenproblem with d(eps)/dT = 2 n dn/dT per region (thermal
    expansion left out): TE and the 3D scalar field, A u = k0^2 B(eps) u, give
    d(lambda)/lambda = int d(eps) u^2 / (2 int eps u^2); TM (2D, u = H_y), A(1/eps) u = k0^2 B u,
    gives d(lambda)/lambda = int d(eps) |grad u|^2 / eps^2 / (2 k0^2 int u^2).

    On an open mesh the pencil is complex symmetric, so the same formulas hold for the complex
    k0 with the unconjugated products of the complex mode and the stretch (TE:
    d(k0^2) = -k0^2 int d(eps) s u^2 / int eps s u^2; TM: d(k0^2) = -int d(eps)/eps^2 (s u_x^2
    + u_z^2/s) / int s u^2, integrals that converge through the PMLs), and the wavelength
    2 pi / Re(k0) moves by d(lambda)/lambda = -Re(d k0) / Re(k0), d k0 = d(k0^2) / (2 k0).

    Args:
        edge: A band edge from :func:`band_edges` on ``mesh_data``.
        mesh_data: The mesh it was computed on.
        permittivity: The permittivities it was computed with.
        dn_dt: Region -> dn/dT (1/K); missing regions: 0.
    """
    eps_values = _region_values(mesh_data, permittivity)
    deps = {name: 2.0 * math.sqrt(eps_values[name]) * dn_dt.get(name, 0.0) for name in eps_values}
    eps = region_function(mesh_data, eps_values)
    d_eps = region_function(mesh_data, deps)
    if edge.field_imag is not None and edge.pml is not None:
        return _open_thermal_shift(edge, eps, d_eps)
    u = edge.field
    if edge.polarisation == "TM":
        grad2 = ufl.inner(ufl.grad(u), ufl.grad(u))
        num = global_sum(fem.form(d_eps * grad2 / eps**2 * ufl.dx))
        den = 2.0 * edge.k0**2 * global_sum(fem.form(u * u * ufl.dx))
    else:
        num = global_sum(fem.form(d_eps * u * u * ufl.dx))
        den = 2.0 * global_sum(fem.form(eps * u * u * ufl.dx))
    return edge.wavelength * num / den


type _Complex = tuple[Any, Any]
"""A complex UFL expression as its (real, imaginary) parts."""


def _mul(a: _Complex, b: _Complex) -> _Complex:
    return (a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0])


def _integral(value: _Complex) -> complex:
    """The integral over the mesh of a complex UFL expression."""
    return complex(global_sum(fem.form(value[0] * ufl.dx)), global_sum(fem.form(value[1] * ufl.dx)))


def _open_thermal_shift(edge: BandEdge, eps: fem.Function, d_eps: fem.Function) -> float:
    """d(lambda)/dT of an open-mesh band edge (see :func:`band_edge_thermal_shift`)."""
    assert edge.field_imag is not None and edge.pml is not None
    u: _Complex = (edge.field, edge.field_imag)
    msh = edge.field.function_space.mesh
    dim = msh.geometry.dim
    p = stretch_parts(edge.pml.sigma(ufl.SpatialCoordinate(msh)[dim - 1]))
    s: _Complex = (p["s_re"], p["s_im"])
    k0 = complex(edge.k0, -edge.k0 / (2.0 * edge.q_factor))
    if edge.polarisation == "TM":
        grad = [(ufl.grad(u[0])[i], ufl.grad(u[1])[i]) for i in range(dim)]
        lateral = [_mul(s, _mul(g, g)) for g in grad[:-1]]
        vertical = _mul((p["inv_re"], p["inv_im"]), _mul(grad[-1], grad[-1]))
        terms = [*lateral, vertical]
        weight = d_eps / eps**2
        num = _integral((weight * sum(t[0] for t in terms), weight * sum(t[1] for t in terms)))
        d_k2 = -num / _integral(_mul(s, _mul(u, u)))
    else:
        su2 = _mul(s, _mul(u, u))
        num = _integral((d_eps * su2[0], d_eps * su2[1]))
        d_k2 = -(k0**2) * num / _integral((eps * su2[0], eps * su2[1]))
    d_k0 = d_k2 / (2.0 * k0)
    return -edge.wavelength * d_k0.real / k0.real
