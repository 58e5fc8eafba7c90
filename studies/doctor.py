"""``cqdlaser doctor``: the stack's versions and three tiny solves that prove it works together.

Checks: a Gmsh mesh handed to DOLFINx over MPI; a P2 Poisson solve (KSP, direct solver) whose exact
solution is quadratic, so the error is at round-off; a SLEPc eigenvalue of the 1D Laplacian
against pi^2. Each check reports ok or the error it raised.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from typing import Any

from mpi4py import MPI

import numpy as np


def _check_gmsh(comm: MPI.Comm) -> str:
    from cqdlaser.geometry.config import load_device
    from cqdlaser.geometry.stack import build_stack

    data = build_stack(load_device(None, ["mesh.scale=4"]), comm, optical=True)
    length = sum(data.region_measures().values())
    if data.untagged_cells() or length <= 0:
        raise RuntimeError("the Gmsh stack mesh has untagged cells")
    return f"1D stack mesh: {data.counts()['cells']} cells over {comm.size} rank(s)"


def _check_poisson(comm: MPI.Comm) -> str:
    from petsc4py import PETSc

    import ufl
    from dolfinx import fem, mesh
    from dolfinx.fem.petsc import LinearProblem

    msh = mesh.create_unit_square(comm, 8, 8)
    V = fem.functionspace(msh, ("Lagrange", 2))
    x = ufl.SpatialCoordinate(msh)
    u_exact = 1 + x[0] ** 2 + 2 * x[1] ** 2
    uD = fem.Function(V)
    uD.interpolate(lambda p: 1 + p[0] ** 2 + 2 * p[1] ** 2)
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    facets = mesh.exterior_facet_indices(msh.topology)
    bc = fem.dirichletbc(uD, fem.locate_dofs_topological(V, tdim - 1, facets))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx
    L = -6.0 * v * ufl.dx
    solver = "mumps" if PETSc.Sys().hasExternalPackage("mumps") else "petsc"
    problem = LinearProblem(
        a,
        L,
        bcs=[bc],
        petsc_options_prefix="doctor_",
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": solver,
            "ksp_error_if_not_converged": True,
        },
    )
    uh = problem.solve()
    uh = uh[0] if isinstance(uh, tuple) else uh
    err = fem.assemble_scalar(fem.form((uh - u_exact) ** 2 * ufl.dx))
    err = math.sqrt(comm.allreduce(err, op=MPI.SUM))
    if err > 1e-10:
        raise RuntimeError(f"P2 Poisson error {err:.2e} (expected round-off)")
    return f"P2 Poisson ({solver} LU): L2 error {err:.1e}"


def _check_slepc(comm: MPI.Comm) -> str:
    from petsc4py import PETSc
    from slepc4py import SLEPc

    import ufl
    from dolfinx import fem, mesh
    from dolfinx.fem.petsc import assemble_matrix

    msh = mesh.create_interval(comm, 64, [0.0, 1.0])
    V = fem.functionspace(msh, ("Lagrange", 2))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    msh.topology.create_connectivity(0, 1)
    facets = mesh.exterior_facet_indices(msh.topology)
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 0, facets), V)
    A = assemble_matrix(fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx), bcs=[bc])
    A.assemble()
    B = assemble_matrix(fem.form(u * v * ufl.dx), bcs=[bc], diag=0.0)
    B.assemble()
    eps = SLEPc.EPS().create(comm)
    eps.setOperators(A, B)
    eps.setProblemType(SLEPc.EPS.ProblemType.GHEP)
    eps.setDimensions(1)
    eps.setWhichEigenpairs(SLEPc.EPS.Which.TARGET_MAGNITUDE)
    eps.setTarget(9.0)
    st = eps.getST()
    st.setType(SLEPc.ST.Type.SINVERT)
    st.getKSP().setType(PETSc.KSP.Type.PREONLY)
    st.getKSP().getPC().setType(PETSc.PC.Type.LU)
    eps.solve()
    if eps.getConverged() < 1:
        raise RuntimeError(f"SLEPc did not converge (reason {eps.getConvergedReason()})")
    lam = eps.getEigenvalue(0).real
    rel = abs(lam - math.pi**2) / math.pi**2
    if rel > 1e-6:
        raise RuntimeError(f"first eigenvalue {lam:.8f}, expected pi^2 = {math.pi**2:.8f}")
    return f"SLEPc shift-invert: lambda_1 = {lam:.9f} (pi^2, rel. error {rel:.1e})"


CHECKS: dict[str, Callable[[MPI.Comm], str]] = {
    "gmsh_to_dolfinx": _check_gmsh,
    "petsc_poisson": _check_poisson,
    "slepc_eigen": _check_slepc,
}


def run_doctor(comm: MPI.Comm = MPI.COMM_WORLD) -> dict[str, Any]:
    """Versions and check results; ``ok`` is False if any check failed."""
    from cqdlaser.studies.output import versions

    result: dict[str, Any] = {"versions": versions(), "mpi_size": comm.size, "checks": {}}
    for name, check in CHECKS.items():
        t0 = time.perf_counter()
        try:
            message, ok = check(comm), True
        except Exception as err:  # the doctor reports every failure instead of stopping
            message, ok = f"{type(err).__name__}: {err}", False
            if comm.rank == 0:
                traceback.print_exc()
        result["checks"][name] = {
            "ok": ok,
            "message": message,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    result["ok"] = bool(np.all([c["ok"] for c in result["checks"].values()]))
    return result
