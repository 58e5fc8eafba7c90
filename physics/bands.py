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

The field vanishes on the truncation (``top``, ``bottom``, far above and below the guiding layers)
and is periodic across ``periodic_*`` faces (:mod:`physics.periodic`, ``P^T A P``). The truncation
also turns the vertical radiation continuum into a discrete set of "box" modes; those are told
apart by their share of :math:`|u|^2` in the outer half of the padding (``radiation_fraction``),
which is exponentially small for guided band edges and about that half's share of the volume for
box modes. Band edges that do not couple to vertical waves (2D: odd in x; 3D scalar: B and E) are
bound states and independent of the truncation. Radiating band edges (2D: even; 3D scalar: A) are
resonances of the open structure; in the closed box they hybridise with nearby box modes, so their
wavelength depends on ``mesh.optical_padding_um`` (by a few nm for the paper device), not only on
the mesh: read them as indicative.

The generalised eigenproblem :math:`A x = k_0^2 B x` is solved by SLEPc (Krylov-Schur,
shift-and-invert about :math:`(2\pi/\lambda_\mathrm{guess})^2`, MUMPS), options prefix ``bands_``.

Confinement of a region: :math:`\int_r |\mathbf E|^2 / \int |\mathbf E|^2`, for TE and the 3D
scalar field :math:`|u|^2`, for TM :math:`|\nabla H_y|^2/\varepsilon^2` (the electric field,
as in :mod:`physics.modes`).

Timers (``dolfinx.common.Timer``, per rank; read them with ``dolfinx.common.timing(name)``):
:data:`BANDS_TIMER` (all of :func:`band_edges`), within it :data:`BANDS_ASSEMBLE_TIMER` (the
space, the periodic constraint and the reduced operators) and :data:`BANDS_SOLVE_TIMER` (the
eigensolve), and :data:`BRAGG_TIMER` (:func:`bragg_guess`).
"""

from __future__ import annotations

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

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import global_sum, normalise_peak, region_function
from cqdlaser.physics._slepc import solve_eigenproblem, with_direct_solver
from cqdlaser.physics.modes import Permittivity, stack_modes
from cqdlaser.physics.periodic import PeriodicSpace, periodic_space_from_mesh
from cqdlaser.physics.permittivity import region_permittivity

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


@dataclass(frozen=True)
class BandEdge:
    """A band-edge mode at the Gamma point.

    Attributes:
        wavelength: Vacuum wavelength 2 pi / k0 (m).
        k0: Vacuum wavenumber (1/m).
        polarisation: ``"TE"`` (2D: E_y; 3D: the scalar field) or ``"TM"`` (2D: H_y).
        confinement: Region -> fraction of |E|^2 in it (sums to 1).
        radiation_fraction: Fraction of |u|^2 in the outer half of the padding above and below.
        degeneracy: Number of band edges (this one included) within ``degeneracy_rtol`` of its
            wavelength, among those returned.
        symmetry: 2D: ``"even"`` or ``"odd"`` in x about the pillar centre; 3D: ``"A"`` (cos Gx
            + cos Gy), ``"B"`` (cos Gx - cos Gy), ``"E"`` (sin Gx, sin Gy) by the dominant
            first harmonics; ``"?"`` when no first harmonic is present.
        harmonics: Weights (summing to 1) of the first in-plane harmonics ``cos_x``, ``sin_x``
            (and ``cos_y``, ``sin_y``) in the overlaps of u with them.
        field: The mode (``E_y``, ``H_y`` or ``u``), scaled to max |u| = 1, positive there.
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


def _symmetry(overlaps: Mapping[str, float], harmonics: Mapping[str, float]) -> str:
    """Symmetry label from the overlaps of u with the first harmonics (see :class:`BandEdge`)."""
    if not all(math.isfinite(w) for w in harmonics.values()):
        return "?"
    cos = harmonics["cos_x"] + harmonics.get("cos_y", 0.0)
    if "cos_y" not in overlaps:
        return "even" if cos > 0.5 else "odd"
    if cos <= 0.5:
        return "E"
    return "A" if overlaps["cos_x"] * overlaps["cos_y"] > 0.0 else "B"


def band_edges(
    mesh_data: MeshData,
    permittivity: Mapping[str, Permittivity],
    *,
    period: float,
    wavelength_guess: float,
    polarisation: str = "TE",
    degree: int = 2,
    n_bands: int = 4,
    max_radiation_share: float = 0.5,
    degeneracy_rtol: float = 1e-5,
    petsc_options: Mapping[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> list[BandEdge]:
    """Band-edge modes at the Gamma point nearest a guessed wavelength, sorted by wavelength.

    Args:
        mesh_data: A ``cross-section`` (2D) or ``cell`` (3D) mesh, periodic, with boundaries
            ``top`` and ``bottom`` (where the field is zero) and the ``z_levels`` of its layers.
        permittivity: Relative permittivity of every region (its real part is used).
        period: Lattice period Lambda (m), for the first harmonics G = 2 pi / Lambda.
        wavelength_guess: Vacuum wavelength (m) the shift-and-invert targets, e.g.
            :func:`bragg_guess`.
        polarisation: ``"TE"``, or ``"TM"`` on the 2D cross-section (see the module docstring).
        degree: Lagrange degree (eigenvalue errors fall as h^(2 degree)).
        n_bands: Number of guided band edges to return (fewer if fewer are found).
        max_radiation_share: Modes whose ``radiation_fraction`` exceeds this share of the outer
            padding's volume fraction (what a field spread evenly would have there) are box modes
            of the truncation and are dropped.
        degeneracy_rtol: Relative wavelength difference under which band edges count as
            degenerate.
        petsc_options: SLEPc/PETSc options (prefix ``bands_``) over
            :data:`DEFAULT_BANDS_EPS_OPTIONS`.
        info: A dict filled with solve statistics: ``dofs`` (global, before the constraint),
            ``reduced_dofs``, ``iterations``, ``converged``, ``options``. Times are in the
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
    with dolfinx.common.Timer(BANDS_TIMER):
        with dolfinx.common.Timer(BANDS_ASSEMBLE_TIMER):
            V = fem.functionspace(mesh_data.mesh, ("Lagrange", degree))
            eps = region_function(mesh_data, eps_values)
            space = periodic_space_from_mesh(V, mesh_data, dirichlet=("top", "bottom"))
            A, B = _reduced_operators(V, eps, te, space)
        options = solver_options(petsc_options)
        nev = int(options.pop("eps_nev", 2 * n_bands + 4))
        target = (2.0 * math.pi / wavelength_guess) ** 2
        with dolfinx.common.Timer(BANDS_SOLVE_TIMER):
            solver, run = solve_eigenproblem(
                A, B, prefix=OPTIONS_PREFIX, target=target, nev=nev, options=options
            )
        if info is not None:
            info.update(_statistics(V, space, solver, run))
        observables = _Observables.build(mesh_data, V, eps, te, period)
        radiation_limit = max_radiation_share * _outer_padding_share(mesh_data)
        name = ("E_y" if te else "H_y") if mesh_data.mesh.geometry.dim == 2 else "u"
        try:
            found = _guided_modes(solver, A, space, observables, radiation_limit, name)
        finally:
            solver.destroy()
            A.destroy()
            B.destroy()
        return _nearest_band_edges(found, wavelength_guess, n_bands, polarisation, degeneracy_rtol)


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
    wavelength: float
    radiation: float
    confinement: dict[str, float]
    overlaps: dict[str, float]
    field: fem.Function


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
        weight = sum(c * c for c in item.overlaps.values())
        harmonics = {
            k: (c * c / weight if weight > 0.0 else math.nan) for k, c in item.overlaps.items()
        }
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
    u = edge.field
    if edge.polarisation == "TM":
        grad2 = ufl.inner(ufl.grad(u), ufl.grad(u))
        num = global_sum(fem.form(d_eps * grad2 / eps**2 * ufl.dx))
        den = 2.0 * edge.k0**2 * global_sum(fem.form(u * u * ufl.dx))
    else:
        num = global_sum(fem.form(d_eps * u * u * ufl.dx))
        den = 2.0 * global_sum(fem.form(eps * u * u * ufl.dx))
    return edge.wavelength * num / den
