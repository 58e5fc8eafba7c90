"""Periodic constraints by dof reduction: structure of P, manufactured solutions, eigenvalues."""

from __future__ import annotations

import math

from mpi4py import MPI
from petsc4py import PETSc
from slepc4py import SLEPc

import numpy as np
import pytest
from scipy.spatial import cKDTree

import dolfinx
import dolfinx.fem.petsc
import ufl
from dolfinx import fem, mesh

from cqdlaser.geometry.meshdata import MeshData, PeriodicPair
from cqdlaser.physics.periodic import (
    PeriodicMatchError,
    PeriodicSpace,
    periodic_space,
    periodic_space_from_mesh,
)

# Facet tags of the unit square / cube: x = 0, x = 1, y = 0, y = 1, z = 0, z = 1.
X0, X1, Y0, Y1, Z0, Z1 = 1, 2, 3, 4, 5, 6
PAIR_X = (X0, X1, (1.0, 0.0, 0.0))
PAIR_Y = (Y0, Y1, (0.0, 1.0, 0.0))


def unit_box(
    comm: MPI.Comm, dim: int, n: int, cell_type: mesh.CellType | None = None
) -> tuple[mesh.Mesh, mesh.MeshTags]:
    """The unit square or cube with n cells a side (simplices by default), boundary faces tagged."""
    if dim == 2:
        msh = mesh.create_unit_square(comm, n, n, cell_type=cell_type or mesh.CellType.triangle)
    else:
        msh = mesh.create_unit_cube(comm, n, n, n, cell_type=cell_type or mesh.CellType.tetrahedron)
    fdim = dim - 1
    indices, values = [], []
    for axis in range(dim):
        for side, tag in ((0.0, 1 + 2 * axis), (1.0, 2 + 2 * axis)):
            facets = mesh.locate_entities_boundary(
                msh, fdim, lambda x, a=axis, s=side: np.isclose(x[a], s)
            )
            indices.append(facets)
            values.append(np.full(facets.size, tag, dtype=np.int32))
    order_ = np.argsort(np.concatenate(indices), kind="stable")
    ft = mesh.meshtags(msh, fdim, np.concatenate(indices)[order_], np.concatenate(values)[order_])
    msh.topology.create_connectivity(fdim, dim)
    return msh, ft


def tagged_dofs(V: fem.FunctionSpace, ft: mesh.MeshTags, tags: tuple[int, ...]) -> np.ndarray:
    fdim = V.mesh.topology.dim - 1
    facets = np.unique(np.concatenate([ft.find(t) for t in tags])).astype(np.int32)
    return fem.locate_dofs_topological(V, fdim, facets)


def solve_reduced(space: PeriodicSpace, a: ufl.Form, L: ufl.Form, prefix: str) -> fem.Function:
    """Solve the reduced linear system with MUMPS and expand the solution."""
    A = dolfinx.fem.petsc.assemble_matrix(fem.form(a))
    A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(fem.form(L))
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    A_r = space.reduce_matrix(A)
    b_r = space.reduce_vector(b)
    x_r = space.create_vector()
    ksp = PETSc.KSP().create(space.V.mesh.comm)
    ksp.setOptionsPrefix(prefix)
    ksp.setOperators(A_r)
    ksp.setType("preonly")
    ksp.getPC().setType("lu")
    ksp.getPC().setFactorSolverType("mumps")
    ksp.setFromOptions()
    ksp.solve(b_r, x_r)
    assert ksp.getConvergedReason() > 0, ksp.getConvergedReason()
    uh = fem.Function(space.V)
    space.expand(x_r, uh)
    for obj in (ksp, A, b, A_r, b_r, x_r):
        obj.destroy()
    return uh


def l2_error(uh: fem.Function, u_exact: ufl.core.expr.Expr, degree: int) -> float:
    dx = ufl.Measure("dx", metadata={"quadrature_degree": degree + 4})
    local = fem.assemble_scalar(fem.form((uh - u_exact) ** 2 * dx))
    return math.sqrt(uh.function_space.mesh.comm.allreduce(local, op=MPI.SUM))


# --- structure of P ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dim", "degree", "n", "pairs", "dirichlet", "expected"),
    [
        (2, 1, 4, (PAIR_X,), (Y0, Y1), lambda k: k * (k - 1)),
        (2, 2, 3, (PAIR_X,), (Y0, Y1), lambda k: k * (k - 1)),
        (2, 2, 3, (PAIR_X, PAIR_Y), (), lambda k: k * k),
        (3, 1, 3, (PAIR_X, PAIR_Y), (), lambda k: k * k * (k + 1)),
        (3, 2, 2, (PAIR_X, PAIR_Y), (Z0, Z1), lambda k: k * k * (k - 1)),
    ],
)
def test_constraint_matrix(comm, dim, degree, n, pairs, dirichlet, expected):
    msh, ft = unit_box(comm, dim, n)
    V = fem.functionspace(msh, ("Lagrange", degree))
    fixed = tagged_dofs(V, ft, dirichlet) if dirichlet else None
    space = periodic_space(V, ft, pairs, dirichlet_dofs=fixed)
    k = degree * n
    assert space.P.getSize() == ((k + 1) ** dim, expected(k))
    assert space.size_global == expected(k)
    assert comm.allreduce(space.size_local, op=MPI.SUM) == expected(k)

    # Rows: one 1 for a free dof, nothing for a dof on a Dirichlet face.
    x = V.tabulate_dof_coordinates()[: V.dofmap.index_map.size_local]
    on_dirichlet = np.zeros(x.shape[0], dtype=bool)
    for tag in dirichlet:
        axis, side = (tag - 1) // 2, float((tag - 1) % 2)
        on_dirichlet |= np.isclose(x[:, axis], side)
    r0, r1 = space.P.getOwnershipRange()
    assert r1 - r0 == x.shape[0]
    for i in range(r0, r1):
        cols, vals = space.P.getRow(i)
        if on_dirichlet[i - r0]:
            assert cols.size == 0
        else:
            assert cols.size == 1 and vals[0] == 1.0

    # Every reduced dof is used; multiplicities add up to the free dofs.
    ones = space.P.createVecLeft()
    ones.set(1.0)
    mult = space.reduce_vector(ones)
    assert mult.min()[1] >= 1.0
    n_free = comm.allreduce(int((~on_dirichlet).sum()), op=MPI.SUM)
    assert mult.sum() == pytest.approx(n_free)

    # P of a random reduced vector is periodic (corners and edges included) and zero on Dirichlet.
    x_r = space.create_vector()
    x_r.setRandom()
    u = fem.Function(V)
    space.expand(x_r, u)
    allx = np.concatenate(comm.allgather(x))
    allu = np.concatenate(comm.allgather(u.x.array[: x.shape[0]]))
    tree = cKDTree(allx)
    for _, image, t in pairs:
        axis = (image - 1) // 2
        on_image = np.isclose(allx[:, axis], 1.0)
        dist, j = tree.query(allx[on_image] - np.asarray(t))
        assert dist.max() < 1e-12
        np.testing.assert_array_equal(allu[on_image], allu[j])
    assert np.all(u.x.array[: x.shape[0]][on_dirichlet] == 0.0)
    assert np.count_nonzero(np.unique(np.round(allu, 14))) == expected(k)

    # Without Dirichlet dofs P maps constants to constants: 1^T (P^T M P) 1 is the volume, 1.
    # Refilling the reduced matrix of 2 M in place doubles it.
    u_, v_ = ufl.TrialFunction(V), ufl.TestFunction(V)
    M = dolfinx.fem.petsc.assemble_matrix(fem.form(u_ * v_ * ufl.dx))
    M.assemble()
    M_r = space.reduce_matrix(M)
    one_r, y_r = space.create_vector(), space.create_vector()
    one_r.set(1.0)
    M_r.mult(one_r, y_r)
    total = one_r.dot(y_r)
    M.scale(2.0)
    assert space.reduce_matrix(M, M_r) is M_r
    M_r.mult(one_r, y_r)
    assert one_r.dot(y_r) == pytest.approx(2.0 * total, rel=1e-12)
    if not dirichlet:
        assert total == pytest.approx(1.0, rel=1e-12)
    for obj in (ones, mult, x_r, M, M_r, one_r, y_r):
        obj.destroy()


# --- manufactured solutions ---------------------------------------------------------------------


def observed_order(hs: list[float], errors: list[float]) -> float:
    """Least-squares slope of log(error) against log(h)."""
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("y_condition", ["neumann", "dirichlet"])
def test_manufactured_square(comm, degree, y_condition):
    """-div grad u + u = f on the unit square, periodic in x; u neither zero nor flat at x = 0."""
    errors, hs = [], []
    for n in [8, 16, 32] if degree == 1 else [4, 8, 16]:
        msh, ft = unit_box(comm, 2, n)
        V = fem.functionspace(msh, ("Lagrange", degree))
        x = ufl.SpatialCoordinate(msh)
        if y_condition == "neumann":
            u_exact = ufl.cos(2 * ufl.pi * (x[0] - 0.2)) * ufl.cos(ufl.pi * x[1])
            fixed = None
        else:
            u_exact = ufl.cos(2 * ufl.pi * (x[0] - 0.2)) * ufl.sin(ufl.pi * x[1])
            fixed = tagged_dofs(V, ft, (Y0, Y1))
        f = -ufl.div(ufl.grad(u_exact)) + u_exact
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx + u * v * ufl.dx
        L = f * v * ufl.dx
        space = periodic_space(V, ft, [PAIR_X], dirichlet_dofs=fixed)
        uh = solve_reduced(space, a, L, f"test_periodic_square_{degree}_")
        errors.append(l2_error(uh, u_exact, degree))
        hs.append(1.0 / n)
    rate = observed_order(hs, errors)
    assert rate > degree + 1 - 0.1, (errors, rate)


@pytest.mark.parametrize(
    ("degree", "cell_type", "sizes"),
    [
        # P1 on tetrahedra is still pre-asymptotic at affordable sizes (fitted order 1.89 on
        # n = 8, 16, 32, as for the same problem without periodicity): hexahedra for P1.
        (1, mesh.CellType.hexahedron, [6, 12, 24]),
        (2, mesh.CellType.tetrahedron, [3, 6, 12]),
    ],
)
def test_manufactured_cube(comm, degree, cell_type, sizes):
    """-div grad u + u = f on the unit cube, periodic in x and y, natural condition in z."""
    errors, hs = [], []
    for n in sizes:
        msh, ft = unit_box(comm, 3, n, cell_type)
        V = fem.functionspace(msh, ("Lagrange", degree))
        x = ufl.SpatialCoordinate(msh)
        u_exact = (
            ufl.cos(2 * ufl.pi * (x[0] - 0.2))
            * ufl.cos(2 * ufl.pi * (x[1] - 0.1))
            * ufl.cos(ufl.pi * x[2])
        )
        f = -ufl.div(ufl.grad(u_exact)) + u_exact
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        a = ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx + u * v * ufl.dx
        space = periodic_space(V, ft, [PAIR_X, PAIR_Y])
        uh = solve_reduced(space, a, f * v * ufl.dx, f"test_periodic_cube_{degree}_")
        errors.append(l2_error(uh, u_exact, degree))
        hs.append(1.0 / n)
    rate = observed_order(hs, errors)
    assert rate > degree + 1 - 0.1, (errors, rate)


# --- eigenvalues --------------------------------------------------------------------------------


def laplace_eigenvalues(comm: MPI.Comm, n: int, degree: int, nev: int) -> np.ndarray:
    """Smallest eigenvalues of -Laplace on [0, 1]^2, periodic in x, zero at y = 0 and 1."""
    msh, ft = unit_box(comm, 2, n)
    cells = np.arange(msh.topology.index_map(2).size_local, dtype=np.int32)
    ct = mesh.meshtags(msh, 2, cells, np.ones_like(cells))
    mesh_data = MeshData(
        msh,
        ct,
        ft,
        {"domain": 1},
        {"periodic_x_min": X0, "periodic_x_max": X1, "bottom": Y0, "top": Y1},
        "cross-section",
        (PeriodicPair("periodic_x_min", "periodic_x_max", (1.0, 0.0)),),
    )
    V = fem.functionspace(msh, ("Lagrange", degree))
    space = periodic_space_from_mesh(V, mesh_data, dirichlet=("top", "bottom"))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    A = dolfinx.fem.petsc.assemble_matrix(fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx))
    A.assemble()
    B = dolfinx.fem.petsc.assemble_matrix(fem.form(u * v * ufl.dx))
    B.assemble()
    A_r, B_r = space.reduce_matrix(A), space.reduce_matrix(B)
    eps = SLEPc.EPS().create(comm)
    eps.setOptionsPrefix("test_periodic_eig_")
    eps.setOperators(A_r, B_r)
    eps.setProblemType(SLEPc.EPS.ProblemType.GHEP)
    eps.setDimensions(nev)
    eps.setTarget(0.0)
    eps.setWhichEigenpairs(SLEPc.EPS.Which.TARGET_MAGNITUDE)
    eps.setTolerances(1e-12, 200)
    st = eps.getST()
    st.setType(SLEPc.ST.Type.SINVERT)
    st.getKSP().setType("preonly")
    st.getKSP().getPC().setType("lu")
    st.getKSP().getPC().setFactorSolverType("mumps")
    eps.setFromOptions()
    eps.solve()
    assert eps.getConvergedReason() > 0 and eps.getConverged() >= nev
    values = np.sort([eps.getEigenvalue(i).real for i in range(eps.getConverged())])[:nev]
    for obj in (eps, A, B, A_r, B_r):
        obj.destroy()
    return values


def test_laplace_eigenvalues(comm):
    """lambda = (2 pi m)^2 + (pi n)^2, n >= 1, twice for m != 0 (cos and sin); same on any ranks."""
    exact = np.pi**2 * np.array([1.0, 4.0, 5.0, 5.0, 8.0, 8.0, 9.0])
    n, degree = 12, 2
    h = 1.0 / n
    values = laplace_eigenvalues(comm, n, degree, exact.size)
    relative = (values - exact) / exact
    # Conforming Galerkin: upper bounds, with error O((sqrt(lambda) h)^(2p)).
    assert np.all(relative > -1e-10), relative
    assert np.all(relative < 0.01 * (np.sqrt(exact) * h) ** (2 * degree)), relative
    # Exact degeneracy: the mesh is invariant under x -> x + h, so +m and -m modes pair up.
    assert values[3] - values[2] < 1e-8 * values[2]
    assert values[5] - values[4] < 1e-8 * values[4]
    assert values[2] - values[1] > 0.1 * values[1]
    serial = laplace_eigenvalues(MPI.COMM_SELF, n, degree, exact.size)
    np.testing.assert_allclose(values, serial, rtol=1e-9)


# --- errors -------------------------------------------------------------------------------------


def test_non_matching_faces_raise(comm):
    n = 6
    msh, ft = unit_box(comm, 2, n)
    x = msh.geometry.x
    on_image = np.isclose(x[:, 0], 1.0)
    x[on_image, 1] += 0.25 / n * np.sin(np.pi * x[on_image, 1])
    V = fem.functionspace(msh, ("Lagrange", 1))
    with pytest.raises(PeriodicMatchError, match="do not match node by node"):
        periodic_space(V, ft, [PAIR_X])
    with pytest.raises(ValueError, match="no facets tagged 9"):
        periodic_space(V, ft, [(X0, 9, (1.0, 0.0))])
