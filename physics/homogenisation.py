"""Homogenisation of the grating layer from the periodic cell problem.

The grating layer (pillars of conductivity ``K_p`` in a fill of ``K_f``, square lattice, height
``H``) is replaced by one anisotropic material. On the thermal unit cell ``Y`` (the ``cell`` mesh
with ``optical=False``: only the grating layer), with ``K(x)`` piecewise constant and diagonal:

- in the plane (i = x, y): find ``chi_i``, periodic in x and y, with zero flux through the top
  and bottom faces (the layer between its neighbours, through which the in-plane flux does not
  leave), such that

  .. math::

      \\int_Y K (\\nabla \\chi_i + e_i) \\cdot \\nabla v \\, dx = 0 \\quad \\forall v,

  ``chi_i`` being determined up to a constant (fixed by pinning the periodic class of one dof);
- through the layer: ``T = z / H + w`` with ``w`` periodic and zero on top and bottom (a unit
  temperature difference across the layer), the same equation with ``e_z / H`` as the load.

Then ``k_eff,ij = <(K (e_j + grad chi_j))_i>_Y``, the volume average of the flux. For columns that
span the layer with vertical walls, ``w = 0`` and ``k_zz = f k_p + (1 - f) k_f`` (the parallel
average, ``f`` the pillar volume fraction) exactly, also discretely. In the plane the conforming
Galerkin solution minimises the cell energy, so the computed ``k_xx`` approaches the exact value
from above, at order ``2 p`` in the mesh size for degree ``p`` (interfaces are meshed).

The layer in its stack. The cell problem's faces are isothermal; in the device they are not: the
pillar period (430 nm) is larger than the film (120 nm) and the layer (130 nm), so there is no
scale separation through the stack, and the heat converging from the film into the pillars (and
spreading from them into the substrate) meets a constriction resistance ``R_c`` at the layer's
faces, in boundary layers of depth ~ period / 2 pi. Isothermal faces are perfectly conducting
sheets, which can only lower the stack's thermal compliance (Rayleigh's monotonicity), so the
homogenised stack runs cold: ``R_c > 0`` (measured, for the paper stack, ~8 % of the film's mean
rise per unit flux). :func:`constriction_correction` measures it on a
periodic stack cell (``build_cell(device, optical=True)``: substrate padding, cladding, grating,
film, cap; the air ``cover`` is left out, so the top is adiabatic as on the device), heated as the
device is (uniform ``Q`` in the CQD, ``T = 0`` at the bottom): once with the pillars resolved,
once with the layer homogenised (the cell problem's tensor, the CQD spread over the layer). The
film's mean temperature per unit flux differs by ``R_c``; it is folded into the layer's
through-plane conductivity,

.. math::

    H / k_{zz}^{stack} = H / k_{zz} + R_c,

found by secant iterations so that the homogenised stack cell's film mean equals the resolved
one to solver precision. Folding it into k_zz rather than into a boundary resistance at the
``interface`` keeps the correction a property of the layer's material (any mesh kind, no
dependence on the depth of the cells that carry a resistance, and ``[heat]
boundary_resistance_m2k_w`` stays free for a physical interface resistance); the layer stores
little heat in its boundary layers, so the transient is unaffected once the layer's flux is set
(a few film crossing times). The corrected k_zz belongs to this stack (film, layer, substrate):
the pure cell-problem tensor stays available. What no homogenised layer carries is the ripple of
the film temperature at the pillar period, whose maximum lies over the fill
(``ConstrictionCorrection.ripple``).

Heat capacity is the volume average ``<rho c_p>_Y``. The volume fraction is taken from the mesh
(the pillar's polygon), so that conductivity and capacity describe the same geometry.

Solver: prefix ``homog_``, MUMPS LU where PETSc has it (else CG + GAMG), options in
:data:`DEFAULT_HOMOG_OPTIONS` / :data:`DEFAULT_HOMOG_ITERATIVE_OPTIONS`, overridable; the
converged reason and the true residual of every solve are checked
(:func:`~physics._petsc.check_linear_solve`).

Timers (``dolfinx.common.Timer``, per rank; read them with ``dolfinx.common.timing(name)``):
:data:`HOMOGENISATION_CELL_TIMER` (the cell problem of :func:`effective_conductivity`: assembly
and its three solves) and :data:`HOMOGENISATION_STACK_TIMER` (each stack-cell solve of
:func:`stack_response`, two or more per :func:`constriction_correction`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np

import dolfinx
import ufl
from dolfinx import fem, la
from dolfinx.fem import petsc as fem_petsc

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import boundary_dofs, global_max, global_sum
from cqdlaser.physics._petsc import PETSC_FAILURES, SolverError, check_linear_solve, configure
from cqdlaser.physics.materials import Material, homogenised_grating, region_materials
from cqdlaser.physics.periodic import (
    PeriodicSpace,
    periodic_pairs,
    periodic_space,
    periodic_space_from_mesh,
)

DEFAULT_HOMOG_OPTIONS: dict[str, Any] = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
    "ksp_rtol": 1e-12,
    "ksp_error_if_not_converged": True,
}
"""Cell-problem solver options (prefix ``homog_``) where MUMPS is available (``ksp_rtol`` holds
if a Krylov method replaces ``preonly``)."""

DEFAULT_HOMOG_ITERATIVE_OPTIONS: dict[str, Any] = {
    "ksp_type": "cg",
    "pc_type": "gamg",
    "ksp_rtol": 1e-12,
    "ksp_max_it": 2000,
    "ksp_error_if_not_converged": True,
}
"""Cell-problem solver options (prefix ``homog_``) without MUMPS."""

PREFIX = "homog_"
SOLVER = "homogenisation cell solver"
CELL_REGIONS = ("pillars", "grating_fill")

HOMOGENISATION_CELL_TIMER = "cqdlaser: homogenisation cell problem"
"""Timer of the cell problem of :func:`effective_conductivity` (assembly and three solves)."""
HOMOGENISATION_STACK_TIMER = "cqdlaser: homogenisation stack cell"
"""Timer of a stack-cell solve, :func:`stack_response` (assembly and solve)."""


def _solve_reduced(
    space: PeriodicSpace, A: PETSc.Mat, b: PETSc.Vec, options: Mapping[str, Any]
) -> fem.Function:
    """Solve ``(P^T A P) x_r = P^T b``; return ``u = P x_r`` as a function on ``space.V``."""
    A_r = space.reduce_matrix(A)
    b_r = space.reduce_vector(b)
    x_r = space.create_vector()
    ksp = PETSc.KSP().create(A.getComm())
    try:
        ksp.setOperators(A_r)
        configure(ksp, PREFIX, options, SOLVER)
        try:
            ksp.solve(b_r, x_r)
        except PETSC_FAILURES as error:
            raise _unconverged(ksp, options) from error
        if ksp.getConvergedReason() <= 0:
            raise _unconverged(ksp, options)
        check_linear_solve(ksp, b_r, x_r, solver=SOLVER, prefix=PREFIX, options=options)
    finally:
        ksp.destroy()
        A_r.destroy()
        b_r.destroy()
    u = fem.Function(space.V)
    space.expand(x_r, u)
    x_r.destroy()
    return u


def _options(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The solver options: MUMPS LU where PETSc has it, else CG + GAMG, then ``overrides``."""
    direct = PETSc.Sys().hasExternalPackage("mumps")
    base = DEFAULT_HOMOG_OPTIONS if direct else DEFAULT_HOMOG_ITERATIVE_OPTIONS
    return {**base, **dict(overrides or {})}


def _tensor(material: Any, scalar: type) -> Any:
    """``diag(k_xx, k_yy, k_zz)`` of a material as a UFL tensor (W/m/K)."""
    return ufl.diag(ufl.as_vector([scalar(k) for k in material.thermal_conductivity]))


def _unconverged(ksp: PETSc.KSP, options: Mapping[str, Any]) -> SolverError:
    return SolverError.of(SOLVER, ksp, PETSc.KSP.ConvergedReason, PREFIX, options)


def _pinned_space(V: fem.FunctionSpace, mesh_data: MeshData) -> PeriodicSpace:
    """Periodic in x and y, no Dirichlet face, the periodic class of one dof fixed at zero (this
    removes the constants, the null space of the in-plane cell problem)."""
    comm = V.mesh.comm
    pin = np.array([0], dtype=np.int32)
    owner = comm.allreduce(comm.rank if V.dofmap.index_map.size_local > 0 else comm.size, MPI.MIN)
    dofs = pin if comm.rank == owner else np.empty(0, dtype=np.int32)
    return periodic_space(V, mesh_data.facet_tags, periodic_pairs(mesh_data), dirichlet_dofs=dofs)


def effective_conductivity(
    mesh_data: MeshData,
    materials: Mapping[str, Any],
    *,
    element_degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
) -> tuple[float, float, float]:
    """The grating layer's effective conductivity from the periodic cell problem.

    Collective on the mesh's communicator.

    Args:
        mesh_data: The thermal unit cell (``build_cell(device, comm, optical=False)``): regions
            ``pillars`` and ``grating_fill``, boundaries ``top``, ``bottom`` and the periodic
            pairs.
        materials: Region name -> material with ``thermal_conductivity`` (k_xx, k_yy, k_zz)
            (W/m/K) for ``pillars`` and ``grating_fill``.
        element_degree: Lagrange degree of the cell solutions.
        petsc_options: Overrides of the solver options (prefix ``homog_``).

    Returns:
        (k_xx, k_yy, k_zz) of the homogenised layer (W/m/K).

    Raises:
        KeyError: A cell region without a material.
        SolverError: A cell solve did not converge.
    """
    missing = [name for name in mesh_data.regions if name not in materials]
    if missing:
        raise KeyError(f"no material for cell regions {missing} (given: {sorted(materials)})")
    scalar = dolfinx.default_scalar_type
    with dolfinx.common.Timer(HOMOGENISATION_CELL_TIMER):
        V = fem.functionspace(mesh_data.mesh, ("Lagrange", element_degree))
        conductivity = {
            tag: _tensor(materials[name], scalar) for name, tag in mesh_data.regions.items()
        }
        cell = _CellProblem.build(V, mesh_data, conductivity, _options(petsc_options))
        height = _grating_height(mesh_data)
        in_plane = _pinned_space(V, mesh_data)
        through = periodic_space_from_mesh(V, mesh_data, dirichlet=("top", "bottom"))
        try:
            k_xx = cell.flux_average(0, (1.0, 0.0, 0.0), in_plane)
            k_yy = cell.flux_average(1, (0.0, 1.0, 0.0), in_plane)
            # Unit temperature difference across the layer: grad(z/H) = e_z/H, flux times H.
            k_zz = height * cell.flux_average(2, (0.0, 0.0, 1.0 / height), through)
        finally:
            cell.A.destroy()
            in_plane.P.destroy()
            through.P.destroy()
    return (k_xx, k_yy, k_zz)


@dataclass(frozen=True)
class _CellProblem:
    """The cell problem ``int_Y K (grad chi + e) . grad v dx = 0``: its matrix and forms.

    Attributes:
        V: The Lagrange space of ``chi``.
        dx: The cell measure by region tag.
        conductivity: Region tag -> conductivity tensor (UFL).
        A: The assembled matrix of ``int K grad u . grad v`` (no constraint).
        volume: Volume of the cell (m^3).
        options: Solver options (prefix ``homog_``).
    """

    V: fem.FunctionSpace
    dx: ufl.Measure
    conductivity: dict[int, Any]
    A: PETSc.Mat
    volume: float
    options: dict[str, Any]

    @classmethod
    def build(
        cls,
        V: fem.FunctionSpace,
        mesh_data: MeshData,
        conductivity: dict[int, Any],
        options: dict[str, Any],
    ) -> _CellProblem:
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        dx = mesh_data.dx()
        a = fem.form(
            sum(
                ufl.inner(K * ufl.grad(u), ufl.grad(v)) * dx(tag) for tag, K in conductivity.items()
            )
        )
        A = fem_petsc.assemble_matrix(a)
        A.assemble()
        one = fem.Constant(mesh_data.mesh, dolfinx.default_scalar_type(1.0))
        return cls(V, dx, conductivity, A, global_sum(fem.form(one * dx)), options)

    def flux_average(self, i: int, load: tuple[float, float, float], space: PeriodicSpace) -> float:
        """``<(K (e + grad chi))_i>_Y`` for the load ``e`` (1/m), ``chi`` in ``space``."""
        dx, v = self.dx, ufl.TestFunction(self.V)
        e = ufl.as_vector([dolfinx.default_scalar_type(c) for c in load])
        L = fem.form(
            sum(-ufl.inner(K * e, ufl.grad(v)) * dx(tag) for tag, K in self.conductivity.items())
        )
        b = fem_petsc.assemble_vector(L)
        b.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        chi = _solve_reduced(space, self.A, b, self.options)
        b.destroy()
        flux = sum((K * (e + ufl.grad(chi)))[i] * dx(tag) for tag, K in self.conductivity.items())
        return global_sum(fem.form(flux)) / self.volume


def _grating_height(mesh_data: MeshData) -> float:
    """Height of the grating layer (m), from the mesh's ``grating_*`` z levels."""
    levels = [z for name, z in mesh_data.z_levels.items() if name.startswith("grating")]
    return max(levels) - min(levels)


def homogenised_material(
    device: Device,
    mesh_data: MeshData,
    *,
    materials: Mapping[str, Material] | None = None,
    element_degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
) -> Material:
    """The ``grating`` region's material with the cell problem's conductivity tensor.

    Args:
        device: The device (it must have a [grating]).
        mesh_data: The device's thermal cell, ``build_cell(device, comm, optical=False)``.
        materials: Region materials; default ``region_materials(device)``.
        element_degree: Lagrange degree of the cell solutions.
        petsc_options: Overrides of the solver options (prefix ``homog_``).

    Returns:
        A :class:`~physics.materials.Material`: conductivity (k_xx, k_yy, k_zz) from the cell
        problem, density and rho c_p the volume averages over the cell, optical properties as in
        :func:`~physics.materials.homogenised_grating` (volume fraction of the mesh).

    Raises:
        ValueError: ``mesh_data`` is not a thermal cell.
    """
    if mesh_data.kind != "cell" or set(mesh_data.regions) != set(CELL_REGIONS):
        raise ValueError(
            f"homogenised_material needs the thermal cell (regions {CELL_REGIONS}), got kind "
            f"{mesh_data.kind!r} with regions {sorted(mesh_data.regions)}"
        )
    if materials is None:
        materials = region_materials(device)
    k = effective_conductivity(
        mesh_data, materials, element_degree=element_degree, petsc_options=petsc_options
    )
    f = pillar_fraction(mesh_data)
    pillar, fill = materials["pillars"], materials["grating_fill"]
    mixed = homogenised_grating(pillar, fill, f)
    return dataclasses.replace(
        mixed,
        thermal_conductivity=k,
        sources={
            "thermal_conductivity_w_mk": (
                f"periodic cell problem (physics.homogenisation), P{element_degree}, "
                f"pillar volume fraction {f:.6f}"
            ),
            "density_kg_m3": "volume average over the cell",
            "specific_heat_j_kgk": "volume average of rho c_p over the cell, divided by rho",
            "refractive_index": "volume average of the permittivity",
        },
    )


def pillar_fraction(mesh_data: MeshData) -> float:
    """Volume fraction of the ``pillars`` in the grating layer of a cell mesh (global)."""
    volumes = mesh_data.region_measures()
    return volumes["pillars"] / (volumes["pillars"] + volumes["grating_fill"])


# -- the layer in its stack: constriction at the grating faces ---------------------------------


@dataclass(frozen=True)
class StackResponse:
    """Steady film temperatures of a stack cell per unit heat flux through it (m^2 K/W).

    Attributes:
        film_mean: Mean rise of the ``film`` region over the cell.
        film_max: Maximum rise over the film's nodes.
    """

    film_mean: float
    film_max: float


@dataclass(frozen=True)
class ConstrictionCorrection:
    """The grating layer's through-plane conductivity corrected for its stack (see the module
    docstring).

    Attributes:
        k_zz_cell: The cell problem's k_zz, isothermal faces (W/m/K).
        k_zz: The effective k_zz for this stack: the homogenised stack cell then has the resolved
            cell's mean film temperature (W/m/K).
        resistance: The constriction resistance, ``H / k_zz - H / k_zz_cell`` (m^2 K/W).
        resolved: Film response of the stack cell with the pillars resolved.
        homogenised: Film response of the stack cell, layer homogenised with ``k_zz_cell``.
        corrected: Film response of the stack cell, layer homogenised with ``k_zz``.
        pillar_fraction: Pillar area fraction of the cell mesh.
        iterations: Secant iterations taken.
    """

    k_zz_cell: float
    k_zz: float
    resistance: float
    resolved: StackResponse
    homogenised: StackResponse
    corrected: StackResponse
    pillar_fraction: float
    iterations: int

    @property
    def ripple(self) -> float:
        """Film maximum of the resolved stack over the corrected homogenised one per unit flux
        (m^2 K/W): the micro-scale excess the homogenised layer cannot carry."""
        return self.resolved.film_max - self.corrected.film_max


def _untouched_dofs(V: fem.FunctionSpace, mesh_data: MeshData, regions: Sequence[str]) -> Any:
    """Local indices of the owned dofs that no cell of ``regions`` (on any rank) touches."""
    imap = V.dofmap.index_map
    marks = la.vector(imap, 1, dtype=np.int32)
    marks.array[:] = 0
    cells = np.concatenate(
        [np.empty(0, np.int32)]
        + [mesh_data.cell_tags.find(mesh_data.region(name)) for name in regions]
    )
    marks.array[np.unique(V.dofmap.list[cells].ravel())] = 1
    marks.scatter_reverse(la.InsertMode.add)
    return np.flatnonzero(marks.array[: imap.size_local] == 0).astype(np.int32)


def stack_response(
    mesh_data: MeshData,
    materials: Mapping[str, Any],
    source_fractions: Mapping[str, float],
    *,
    adiabatic: Sequence[str] = ("cover",),
    element_degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
) -> StackResponse:
    """Steady film temperatures of a periodic stack cell heated in its CQD, per unit flux.

    Solves ``-div(K grad T) = Q`` on the cell (``build_cell(device, optical=True)``), periodic
    in x and y, ``T = 0`` on ``bottom``, with ``Q = phi_r q / d_g`` in each region ``r``
    (``phi_r`` its CQD fraction, ``d_g`` the CQD volume per cell area, ``q`` = 1 W/m^2): the
    device's uniform source, all of whose heat leaves through the bottom. Regions in
    ``adiabatic`` (the optical ``cover``) are left out: the top of the stack is adiabatic, as
    on the device. Collective.

    Args:
        mesh_data: The stack cell: regions (``substrate``, ``cladding``, ``pillars``,
            ``grating_fill``, ``film``, ``cap``, ``cover``), boundary ``bottom``, periodic pairs.
        materials: Region name -> thermal properties (``thermal_conductivity`` (W/m/K)).
        source_fractions: Region name -> CQD fraction (absent regions: no source).
        adiabatic: Regions left out of the problem.
        element_degree: Lagrange degree.
        petsc_options: Overrides of the solver options (prefix ``homog_``).

    Returns:
        The film's mean and maximum rise (K) per W/m^2 of flux.
    """
    solved = [name for name in mesh_data.regions if name not in adiabatic]
    missing = [name for name in solved if name not in materials]
    if missing:
        raise KeyError(f"no material for stack regions {missing} (given: {sorted(materials)})")
    with dolfinx.common.Timer(HOMOGENISATION_STACK_TIMER):
        V = fem.functionspace(mesh_data.mesh, ("Lagrange", element_degree))
        volumes = mesh_data.region_measures()
        A, b = _stack_system(V, mesh_data, materials, source_fractions, solved, volumes)
        bottom = boundary_dofs(V, mesh_data, ["bottom"])
        fixed = np.unique(np.concatenate([bottom, _untouched_dofs(V, mesh_data, solved)]))
        pairs = periodic_pairs(mesh_data)
        space = periodic_space(
            V, mesh_data.facet_tags, pairs, dirichlet_dofs=fixed.astype(np.int32)
        )
        try:
            T = _solve_reduced(space, A, b, _options(petsc_options))
        finally:
            for obj in (b, A, space.P):
                obj.destroy()
    film = mesh_data.region("film")
    dofs = np.unique(V.dofmap.list[mesh_data.cell_tags.find(film)].ravel())
    return StackResponse(
        film_mean=global_sum(fem.form(T * mesh_data.dx()(film))) / volumes["film"],
        film_max=global_max(T, dofs),
    )


def _stack_system(
    V: fem.FunctionSpace,
    mesh_data: MeshData,
    materials: Mapping[str, Any],
    source_fractions: Mapping[str, float],
    solved: Sequence[str],
    volumes: Mapping[str, float],
) -> tuple[PETSc.Mat, PETSc.Vec]:
    """Matrix and load of ``-div(K grad T) = Q`` on the ``solved`` regions (no constraint),
    ``Q = phi_r q / d_g`` for 1 W/m^2 through the cell."""
    scalar = dolfinx.default_scalar_type
    area = (volumes["pillars"] + volumes["grating_fill"]) / _grating_height(mesh_data)
    cqd = sum(phi * volumes[name] for name, phi in source_fractions.items() if name in volumes)
    if not cqd > 0:
        raise ValueError(f"no CQD in the stack cell: source fractions {dict(source_fractions)}")
    q_per_volume = area / cqd  # W/m^3 per unit CQD fraction, for 1 W/m^2 through the cell
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = mesh_data.dx()
    a = sum(
        ufl.inner(_tensor(materials[name], scalar) * ufl.grad(u), ufl.grad(v))
        * dx(mesh_data.region(name))
        for name in solved
    )
    L = sum(
        scalar(phi * q_per_volume) * v * dx(mesh_data.region(name))
        for name, phi in source_fractions.items()
        if name in solved and phi != 0
    )
    A = fem_petsc.assemble_matrix(fem.form(a))
    A.assemble()
    b = fem_petsc.assemble_vector(fem.form(L))
    b.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
    return A, b


@dataclass(frozen=True)
class ThermalLayer:
    """A region's conductivity alone (W/m/K), for the stack cell's homogenised layer."""

    thermal_conductivity: tuple[float, float, float]


def constriction_correction(
    mesh_data: MeshData,
    materials: Mapping[str, Any],
    k_cell: tuple[float, float, float],
    *,
    source_fractions: Mapping[str, float] | None = None,
    rtol: float = 1e-11,
    max_iterations: int = 10,
    element_degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
) -> ConstrictionCorrection:
    """The effective k_zz of the grating layer in its stack (see the module docstring).

    Solves the stack cell with the pillars resolved, then with ``pillars`` and ``grating_fill``
    both of the homogenised material ``diag(k_cell)`` (CQD fraction ``1 - f`` in both, f the
    mesh's pillar fraction, as on the homogenised device), and finds by secant iterations on
    ``H / k_zz`` the k_zz for which the homogenised film mean equals the resolved one.
    Collective.

    Args:
        mesh_data: The stack cell, ``build_cell(device, optical=True)``.
        materials: Region name -> thermal properties, for every region but ``cover``.
        k_cell: The cell problem's (k_xx, k_yy, k_zz) (W/m/K), :func:`effective_conductivity`.
        source_fractions: CQD fraction of each region with pillars resolved (default
            ``grating_fill`` and ``film`` 1).
        rtol: Relative tolerance on the film mean (the secant's stopping test).
        max_iterations: Most secant iterations.
        element_degree: Lagrange degree.
        petsc_options: Overrides of the solver options (prefix ``homog_``).

    Returns:
        The correction (its ``k_zz``, ``resistance`` and the responses).

    Raises:
        RuntimeError: The secant iterations did not converge.
    """
    fractions = dict(source_fractions or {"film": 1.0, "grating_fill": 1.0})
    f = pillar_fraction(mesh_data)
    height = _grating_height(mesh_data)

    def response(fr: Mapping[str, float], mats: Mapping[str, Any]) -> StackResponse:
        return stack_response(
            mesh_data, mats, fr, element_degree=element_degree, petsc_options=petsc_options
        )

    # The layer's CQD, spread uniformly over it (the homogenised device's source).
    layer_cqd = fractions.get("pillars", 0.0) * f + fractions.get("grating_fill", 0.0) * (1 - f)
    homogenised_fractions = {**fractions, "pillars": layer_cqd, "grating_fill": layer_cqd}

    def homogenised(layer_resistance: float) -> StackResponse:
        layer = ThermalLayer((k_cell[0], k_cell[1], height / layer_resistance))
        return response(
            homogenised_fractions, {**materials, "pillars": layer, "grating_fill": layer}
        )

    resolved = response(fractions, materials)
    cell_layer = ThermalLayer((k_cell[0], k_cell[1], k_cell[2]))
    first = response(
        homogenised_fractions, {**materials, "pillars": cell_layer, "grating_fill": cell_layer}
    )
    x1, r1, iterations = _secant(
        homogenised, resolved.film_mean, height / k_cell[2], first, rtol, max_iterations
    )
    return ConstrictionCorrection(
        k_zz_cell=float(k_cell[2]),
        k_zz=height / x1,
        resistance=x1 - height / k_cell[2],
        resolved=resolved,
        homogenised=first,
        corrected=r1,
        pillar_fraction=f,
        iterations=iterations,
    )


def _secant(
    homogenised: Callable[[float], StackResponse],
    target: float,
    x0: float,
    r0: StackResponse,
    rtol: float,
    max_iterations: int,
) -> tuple[float, StackResponse, int]:
    """Secant iterations on the layer resistance ``x = H / k_zz`` (m^2 K/W) until the
    homogenised film mean equals ``target``, from ``x0`` and its response ``r0``.

    Returns:
        The resistance, its response and the iterations taken.

    Raises:
        RuntimeError: The resistance went non-positive, or no convergence.
    """
    g0 = r0.film_mean - target
    x1 = x0 - g0  # the 1D stack: the film mean is affine in H / k_zz with slope 1
    iterations = 0
    while True:
        if x1 <= 0:
            raise RuntimeError(
                f"constriction correction: the layer resistance went to {x1} m^2 K/W (the "
                f"resolved stack is cooler than any homogenised one: film mean {target})"
            )
        r1 = homogenised(x1)
        iterations += 1
        g1 = r1.film_mean - target
        if abs(g1) <= rtol * abs(target):
            return x1, r1, iterations
        if iterations >= max_iterations or g1 == g0:
            raise RuntimeError(
                f"constriction correction did not converge in {iterations} secant iterations: "
                f"film mean {r1.film_mean} vs resolved {target} (rtol {rtol})"
            )
        x0, x1, g0 = x1, x1 - g1 * (x1 - x0) / (g1 - g0), g1


def corrected_material(material: Material, correction: ConstrictionCorrection) -> Material:
    """``material`` (the cell problem's, :func:`homogenised_material`) with the stack's k_zz."""
    k_xx, k_yy, _ = material.thermal_conductivity
    return dataclasses.replace(
        material,
        thermal_conductivity=(k_xx, k_yy, correction.k_zz),
        sources={
            **material.sources,
            "thermal_conductivity_w_mk": (
                f"{material.sources.get('thermal_conductivity_w_mk', 'cell problem')}; k_zz "
                f"corrected for the constriction in its stack ({correction.k_zz_cell:.6g} -> "
                f"{correction.k_zz:.6g} W/m/K, R_c = {correction.resistance:.4g} m^2 K/W)"
            ),
        },
    )
