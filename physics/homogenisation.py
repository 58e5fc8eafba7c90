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

Heat capacity is the volume average ``<rho c_p>_Y``. The volume fraction is taken from the mesh
(the pillar's polygon), so that conductivity and capacity describe the same geometry.

Solver: prefix ``homog_``, MUMPS LU where PETSc has it (else CG + GAMG), options in
:data:`DEFAULT_HOMOG_OPTIONS` / :data:`DEFAULT_HOMOG_ITERATIVE_OPTIONS`, overridable; the
converged reason is checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np

import dolfinx
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from geometry.device import Device
from geometry.meshdata import MeshData
from physics.materials import Material, homogenised_grating, region_materials
from physics.periodic import PeriodicSpace, periodic_space, periodic_space_from_mesh

DEFAULT_HOMOG_OPTIONS: dict[str, Any] = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
    "ksp_error_if_not_converged": True,
}
"""Cell-problem solver options (prefix ``homog_``) where MUMPS is available."""

DEFAULT_HOMOG_ITERATIVE_OPTIONS: dict[str, Any] = {
    "ksp_type": "cg",
    "pc_type": "gamg",
    "ksp_rtol": 1e-12,
    "ksp_max_it": 2000,
    "ksp_error_if_not_converged": True,
}
"""Cell-problem solver options (prefix ``homog_``) without MUMPS."""

PREFIX = "homog_"
CELL_REGIONS = ("pillars", "grating_fill")


def _configure(ksp: PETSc.KSP, options: Mapping[str, Any]) -> None:
    """Set ``options`` under the prefix (command-line values win) and apply them."""
    opts = PETSc.Options()
    placed = []
    for key, value in options.items():
        name = f"{PREFIX}{key}"
        if opts.hasName(name):
            continue
        opts[name] = value
        placed.append(name)
    ksp.setOptionsPrefix(PREFIX)
    ksp.setFromOptions()
    for name in placed:
        opts.delValue(name)


def _solve_reduced(
    space: PeriodicSpace, A: PETSc.Mat, b: PETSc.Vec, options: Mapping[str, Any]
) -> PETSc.Vec:
    """Solve ``(P^T A P) x_r = P^T b``; return ``x = P x_r`` as a full vector."""
    A_r = space.reduce_matrix(A)
    b_r = space.reduce_vector(b)
    x_r = space.create_vector()
    ksp = PETSc.KSP().create(A.getComm())
    try:
        ksp.setOperators(A_r)
        _configure(ksp, options)
        try:
            ksp.solve(b_r, x_r)
        except PETSc.Error as error:
            _raise(ksp, options, error)
        if ksp.getConvergedReason() <= 0:
            _raise(ksp, options)
    finally:
        ksp.destroy()
        A_r.destroy()
        b_r.destroy()
    x = space.P.createVecLeft()
    space.P.mult(x_r, x)
    x_r.destroy()
    return x


def _raise(ksp: PETSc.KSP, options: Mapping[str, Any], error: Exception | None = None) -> None:
    reason = ksp.getConvergedReason()
    names = {v: k for k, v in vars(PETSc.KSP.ConvergedReason).items() if isinstance(v, int)}
    raise RuntimeError(
        f"homogenisation cell solver (prefix {PREFIX!r}) did not converge: reason {reason} "
        f"({names.get(reason, reason)}); options {dict(options)}"
    ) from error


def _pinned_space(V: fem.FunctionSpace, mesh_data: MeshData) -> PeriodicSpace:
    """Periodic in x and y, no Dirichlet face, the periodic class of one dof fixed at zero (this
    removes the constants, the null space of the in-plane cell problem)."""
    comm = V.mesh.comm
    pin = np.array([0], dtype=np.int32)
    owner = comm.allreduce(comm.rank if V.dofmap.index_map.size_local > 0 else comm.size, MPI.MIN)
    dofs = pin if comm.rank == owner else np.empty(0, dtype=np.int32)
    pairs = [
        (mesh_data.boundary(p.source), mesh_data.boundary(p.image), p.translation)
        for p in mesh_data.periodic
    ]
    return periodic_space(V, mesh_data.facet_tags, pairs, dirichlet_dofs=dofs)


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
        RuntimeError: A cell solve did not converge.
    """
    missing = [name for name in mesh_data.regions if name not in materials]
    if missing:
        raise KeyError(f"no material for cell regions {missing} (given: {sorted(materials)})")
    msh = mesh_data.mesh
    comm = msh.comm
    scalar = dolfinx.default_scalar_type
    direct = PETSc.Sys().hasExternalPackage("mumps")
    base = DEFAULT_HOMOG_OPTIONS if direct else DEFAULT_HOMOG_ITERATIVE_OPTIONS
    options = {**base, **dict(petsc_options or {})}

    V = fem.functionspace(msh, ("Lagrange", element_degree))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = mesh_data.dx()
    conductivity = {
        tag: ufl.diag(
            ufl.as_vector(
                [scalar(k) for k in materials[name].thermal_conductivity]  # type: ignore[arg-type]
            )
        )
        for name, tag in mesh_data.regions.items()
    }
    a = fem.form(
        sum(ufl.inner(K * ufl.grad(u), ufl.grad(v)) * dx(tag) for tag, K in conductivity.items())
    )
    A = fem_petsc.assemble_matrix(a)
    A.assemble()
    volume = comm.allreduce(
        fem.assemble_scalar(fem.form(fem.Constant(msh, scalar(1.0)) * dx)), op=MPI.SUM
    )
    z_levels = [x for name, x in mesh_data.z_levels.items() if name.startswith("grating")]
    height = max(z_levels) - min(z_levels)

    def flux_average(i: int, load: np.ndarray, space: PeriodicSpace) -> float:
        e = ufl.as_vector([scalar(c) for c in load])
        L = fem.form(
            sum(-ufl.inner(K * e, ufl.grad(v)) * dx(tag) for tag, K in conductivity.items())
        )
        b = fem_petsc.assemble_vector(L)
        b.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        x = _solve_reduced(space, A, b, options)
        chi = fem.Function(V)
        x.copy(chi.x.petsc_vec)
        chi.x.scatter_forward()
        x.destroy()
        b.destroy()
        flux = sum(
            (K * (e + ufl.grad(chi)))[i] * dx(tag) for tag, K in conductivity.items()
        )
        return float(comm.allreduce(fem.assemble_scalar(fem.form(flux)), op=MPI.SUM)) / volume

    in_plane = _pinned_space(V, mesh_data)
    k_xx = flux_average(0, np.array([1.0, 0.0, 0.0]), in_plane)
    k_yy = flux_average(1, np.array([0.0, 1.0, 0.0]), in_plane)
    through = periodic_space_from_mesh(V, mesh_data, dirichlet=("top", "bottom"))
    # Unit temperature difference across the layer: grad(z/H) = e_z/H, flux times H.
    k_zz = height * flux_average(2, np.array([0.0, 0.0, 1.0 / height]), through)
    A.destroy()
    in_plane.P.destroy()
    through.P.destroy()
    return (k_xx, k_yy, k_zz)


def homogenised_material(
    device: Device,
    comm: MPI.Comm = MPI.COMM_WORLD,
    *,
    mesh_data: MeshData | None = None,
    materials: Mapping[str, Material] | None = None,
    element_degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
) -> Material:
    """The ``grating`` region's material with the cell problem's conductivity tensor.

    Args:
        device: The device (it must have a [grating]).
        comm: Communicator of the cell mesh (used when ``mesh_data`` is None).
        mesh_data: The thermal cell; default ``build_cell(device, comm, optical=False)``.
        materials: Region materials; default ``region_materials(device)``.
        element_degree: Lagrange degree of the cell solutions.
        petsc_options: Overrides of the solver options (prefix ``homog_``).

    Returns:
        A :class:`~physics.materials.Material`: conductivity (k_xx, k_yy, k_zz) from the cell
        problem, density and rho c_p the volume averages over the cell, optical properties as in
        :func:`~physics.materials.homogenised_grating` (volume fraction of the mesh).
    """
    if materials is None:
        materials = region_materials(device)
    if mesh_data is None:
        from geometry.cell import build_cell

        mesh_data = build_cell(device, comm, optical=False)
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
    """Volume fraction of the ``pillars`` region in a cell mesh (global)."""
    volumes = mesh_data.region_measures()
    return volumes["pillars"] / sum(volumes.values())
