"""Periodic and homogeneous Dirichlet constraints by reduction of the degrees of freedom.

DOLFINx has no periodic boundary conditions. A constrained field is written ``u = P u_r``: ``P`` is
an ``n_full x n_reduced`` PETSc matrix whose rows are laid out like the owned dofs of the function
space ``V``. Row ``i`` of ``P`` holds a single 1 in the column of the reduced dof of the *master* of
dof ``i``, or nothing at all when dof ``i`` is fixed at zero (a Dirichlet dof).

Masters: a dof on an image face equals the dof at ``x - t`` on the source face (``t`` the pair's
translation). These relations, taken over all pairs, are transitive: they split the dofs into
classes (the four corner dofs of a cell periodic in x and y are one class), and each class keeps one
dof, its smallest global index, as master. A class that contains a Dirichlet dof is fixed at zero as
a whole. The Galerkin problems on the constrained space are

    (P^T A P) u_r = P^T b,            u = P u_r,
    (P^T A P) u_r = lambda (P^T B P) u_r,

with ``A``, ``B`` and ``b`` assembled without any boundary condition on the periodic faces (natural
conditions there). The reduced operators of a symmetric problem stay symmetric, and Dirichlet dofs
leave no spurious eigenvalues behind. Lagrange spaces of any degree with block size 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

import dolfinx
from dolfinx import fem, la

from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import boundary_dofs

RELATIVE_TOLERANCE = 1e-6
"""Default matching tolerance, relative to the diagonal of the mesh's bounding box."""


class PeriodicMatchError(ValueError):
    """A dof on an image face has no source dof at ``x - translation``: the faces do not match."""


@dataclass(frozen=True)
class PeriodicSpace:
    """A function space with its constraint matrix ``P`` (``u = P u_r``).

    Attributes:
        V: The full function space.
        P: ``n_full x n_reduced`` AIJ matrix, rows distributed like ``V``'s owned dofs, columns
            like the reduced dofs (each rank owns the reduced dofs of its owned kept dofs).
    """

    V: fem.FunctionSpace
    P: PETSc.Mat

    @property
    def size_global(self) -> int:
        """Global number of reduced dofs."""
        return int(self.P.getSize()[1])

    @property
    def size_local(self) -> int:
        """Number of reduced dofs owned by this rank."""
        return int(self.P.getLocalSize()[1])

    def reduce_matrix(self, A: PETSc.Mat, result: PETSc.Mat | None = None) -> PETSc.Mat:
        """``P^T A P``, for ``A`` assembled on ``V`` (assembled, no periodic boundary conditions).

        Args:
            A: The full operator.
            result: A matrix returned by an earlier call with an ``A`` of the same sparsity,
                refilled in place (cheaper in sweeps over a parameter).

        Returns:
            The reduced operator (``result`` when given).
        """
        return A.PtAP(self.P, result)

    def reduce_vector(self, b: PETSc.Vec, result: PETSc.Vec | None = None) -> PETSc.Vec:
        """``P^T b``, for a right-hand side ``b`` assembled on ``V`` (ghost contributions added).

        Args:
            b: The full vector (only its owned entries are read).
            result: A reduced vector to fill, or None for a new one.

        Returns:
            The reduced vector.
        """
        b_r = self.create_vector() if result is None else result
        self.P.multTranspose(b, b_r)
        return b_r

    def expand(self, x_r: PETSc.Vec, u: fem.Function) -> None:
        """Set ``u`` to ``P x_r``, ghosts included.

        Args:
            x_r: A reduced vector.
            u: A function on ``V``, overwritten.
        """
        self.P.mult(x_r, u.x.petsc_vec)
        u.x.scatter_forward()

    def create_vector(self) -> PETSc.Vec:
        """A new reduced vector (zero)."""
        x_r = self.P.createVecRight()
        x_r.zeroEntries()
        return x_r


def periodic_space(
    V: fem.FunctionSpace,
    facet_tags: dolfinx.mesh.MeshTags,
    pairs: Sequence[tuple[int, int, Sequence[float]]],
    *,
    dirichlet_dofs: npt.NDArray[np.int32] | None = None,
    tol: float | None = None,
) -> PeriodicSpace:
    """Build the constraint ``u = P u_r`` for periodic face pairs and zero Dirichlet dofs.

    Collective on ``V.mesh.comm``.

    Args:
        V: Scalar function space (block size 1), any Lagrange degree.
        facet_tags: Facet tags holding the source and image faces.
        pairs: ``(source tag, image tag, translation)``: image facets are the source facets
            translated by ``translation`` (m, gdim or 3 components), node by node.
        dirichlet_dofs: Local dof indices (owned or ghost) fixed at zero; other ranks' copies of a
            shared dof need not be listed.
        tol: Largest distance (m) between a translated image dof and its source dof. Default:
            ``RELATIVE_TOLERANCE`` times the diagonal of the mesh's bounding box.

    Returns:
        The space with its constraint matrix.

    Raises:
        ValueError: Block size other than 1, or a tag with no facets on any rank.
        PeriodicMatchError: An image dof with no source dof within ``tol`` (non-matching faces).
    """
    if V.dofmap.index_map_bs != 1:
        raise ValueError(
            f"periodic_space needs a scalar space, got block size {V.dofmap.index_map_bs}"
        )
    comm = V.mesh.comm
    imap = V.dofmap.index_map
    if tol is None:
        tol = RELATIVE_TOLERANCE * _bounding_box_diagonal(V.mesh)
    image_global, source_global = _periodic_relations(V, facet_tags, pairs, tol)
    owned_global = imap.local_range[0] + np.arange(imap.size_local, dtype=np.int64)
    fixed = _owned_marks(imap, dirichlet_dofs)
    my_master, fixed, in_class = _masters(comm, image_global, source_global, owned_global, fixed)
    kept = ~fixed & (my_master == owned_global)
    reduced, n_reduced = _reduced_numbering(comm, kept)
    column = _columns(comm, reduced, kept & in_class, fixed, my_master, owned_global)
    rows = ~fixed
    indptr = np.concatenate([[0], np.cumsum(rows)]).astype(PETSc.IntType)
    indices = column[rows].astype(PETSc.IntType)
    values = np.ones(indices.size, dtype=PETSc.ScalarType)
    P = PETSc.Mat().createAIJ(
        size=((imap.size_local, imap.size_global), (int(kept.sum()), n_reduced)),
        csr=(indptr, indices, values),
        comm=comm,
    )
    P.assemble()
    return PeriodicSpace(V, P)


def _periodic_relations(
    V: fem.FunctionSpace,
    facet_tags: dolfinx.mesh.MeshTags,
    pairs: Sequence[tuple[int, int, Sequence[float]]],
    tol: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Global indices of every image dof and of its source dof at ``x - translation``, over all
    pairs, gathered on every rank.

    Raises:
        ValueError: A tag with no facets on any rank.
        PeriodicMatchError: An owned image dof with no source dof within ``tol``.
    """
    msh = V.mesh
    comm = msh.comm
    imap = V.dofmap.index_map
    n_owned = imap.size_local
    n_local = n_owned + imap.num_ghosts
    l2g = imap.local_to_global(np.arange(n_local, dtype=np.int32)).astype(np.int64)
    x = V.tabulate_dof_coordinates()
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    images, sources = [], []
    for source_tag, image_tag, translation in pairs:
        t = np.zeros(3)
        t[: len(translation)] = translation
        src = _face_dofs(V, facet_tags, source_tag)
        img = _face_dofs(V, facet_tags, image_tag)
        src_global = np.concatenate(comm.allgather(l2g[src]))
        src_x = np.concatenate(comm.allgather(x[src]))
        if src_global.size == 0 or comm.allreduce(img.size, op=MPI.SUM) == 0:
            raise ValueError(
                f"periodic pair ({source_tag} -> {image_tag}): no facets tagged "
                f"{source_tag if src_global.size == 0 else image_tag} on any rank"
            )
        dist, nearest = cKDTree(src_x).query(x[img] - t)
        bad = (dist > tol) & (img < n_owned)
        _raise_on_unmatched(comm, source_tag, image_tag, t, tol, x[img][bad], dist[bad])
        images.append(l2g[img])
        sources.append(src_global[nearest])
    image_global = np.concatenate(comm.allgather(np.concatenate([np.empty(0, np.int64), *images])))
    source_global = np.concatenate(
        comm.allgather(np.concatenate([np.empty(0, np.int64), *sources]))
    )
    return image_global, source_global


def _masters(
    comm: MPI.Comm,
    image_global: npt.NDArray[np.int64],
    source_global: npt.NDArray[np.int64],
    owned_global: npt.NDArray[np.int64],
    fixed: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """The master (smallest global index of its class) of every owned dof, which owned dofs are
    fixed at zero (marked, or in a class with a marked dof), and which are in a class of
    periodically related dofs: the classes are the connected components of the graph of the
    periodic relations."""
    nodes, inverse = np.unique(np.concatenate([image_global, source_global]), return_inverse=True)
    n_edges = image_global.size
    graph = coo_matrix(
        (np.ones(n_edges), (inverse[:n_edges], inverse[n_edges:])), shape=(nodes.size, nodes.size)
    )
    n_classes, label = connected_components(graph, directed=False)
    master = np.full(n_classes, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(master, label, nodes)
    fixed_nodes = np.concatenate(comm.allgather(owned_global[fixed]))
    zero_class = np.zeros(n_classes, dtype=bool)
    zero_class[label[np.isin(nodes, fixed_nodes)]] = True

    pos = np.searchsorted(nodes, owned_global)
    in_class = pos < nodes.size
    in_class[in_class] = nodes[pos[in_class]] == owned_global[in_class]
    my_master = owned_global.copy()
    my_master[in_class] = master[label[pos[in_class]]]
    fixed = fixed.copy()
    fixed[in_class] |= zero_class[label[pos[in_class]]]
    return my_master, fixed, in_class


def _reduced_numbering(
    comm: MPI.Comm, kept: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], int]:
    """Reduced numbers of the kept owned dofs (-1 for the others), contiguous per rank in the
    order of the owned dofs, and the global number of reduced dofs."""
    n_kept = int(kept.sum())
    offset = comm.exscan(n_kept) or 0
    reduced = np.full(kept.size, -1, dtype=np.int64)
    reduced[kept] = offset + np.arange(n_kept, dtype=np.int64)
    return reduced, comm.allreduce(n_kept, op=MPI.SUM)


def _columns(
    comm: MPI.Comm,
    reduced: npt.NDArray[np.int64],
    masters: npt.NDArray[np.bool_],
    fixed: npt.NDArray[np.bool_],
    my_master: npt.NDArray[np.int64],
    owned_global: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """The column of ``P`` of every owned dof: its own reduced number if kept, its class
    master's if it is a periodic image (``masters``: the owned class masters, whose reduced
    numbers every rank receives); fixed dofs have none."""
    master_global = np.concatenate(comm.allgather(owned_global[masters]))
    master_reduced = np.concatenate(comm.allgather(reduced[masters]))
    order = np.argsort(master_global)
    master_global, master_reduced = master_global[order], master_reduced[order]
    slave = ~fixed & (reduced < 0)
    column = reduced.copy()
    column[slave] = master_reduced[np.searchsorted(master_global, my_master[slave])]
    return column


def periodic_space_from_mesh(
    V: fem.FunctionSpace,
    mesh_data: MeshData,
    dirichlet: Sequence[str] = ("top", "bottom"),
    *,
    tol: float | None = None,
) -> PeriodicSpace:
    """:func:`periodic_space` for every periodic pair of ``mesh_data``, zero on named boundaries.

    Args:
        V: Scalar function space on ``mesh_data.mesh``.
        mesh_data: The mesh with its boundaries and ``periodic`` pairs (by name).
        dirichlet: Boundary names where the field is zero (the truncated top and bottom of an
            optical cell); ``()`` for none.
        tol: Matching tolerance (m); see :func:`periodic_space`.

    Returns:
        The space with its constraint matrix.
    """
    dofs = boundary_dofs(V, mesh_data, dirichlet)
    pairs = periodic_pairs(mesh_data)
    return periodic_space(V, mesh_data.facet_tags, pairs, dirichlet_dofs=dofs, tol=tol)


def periodic_pairs(mesh_data: MeshData) -> list[tuple[int, int, tuple[float, ...]]]:
    """The mesh's periodic pairs as :func:`periodic_space` takes them: ``(source tag, image tag,
    translation)``."""
    return [
        (mesh_data.boundary(p.source), mesh_data.boundary(p.image), p.translation)
        for p in mesh_data.periodic
    ]


def _face_dofs(
    V: fem.FunctionSpace, facet_tags: dolfinx.mesh.MeshTags, tag: int
) -> npt.NDArray[np.int32]:
    """Local dofs (owned and ghost) on the facets tagged ``tag``."""
    fdim = V.mesh.topology.dim - 1
    return fem.locate_dofs_topological(V, fdim, facet_tags.find(tag))


def _owned_marks(
    imap: dolfinx.common.IndexMap, dofs: npt.NDArray[np.int32] | None
) -> npt.NDArray[np.bool_]:
    """Owned dofs marked on any rank (as owned or ghost dofs there)."""
    marks = la.vector(imap, 1, dtype=np.int32)
    marks.array[:] = 0
    if dofs is not None:
        marks.array[np.asarray(dofs, dtype=np.int32)] = 1
    marks.scatter_reverse(la.InsertMode.add)
    return marks.array[: imap.size_local] > 0


def _bounding_box_diagonal(msh: dolfinx.mesh.Mesh) -> float:
    x = msh.geometry.x
    lo = x.min(axis=0) if x.size else np.full(3, np.inf)
    hi = x.max(axis=0) if x.size else np.full(3, -np.inf)
    msh.comm.Allreduce(MPI.IN_PLACE, lo, op=MPI.MIN)
    msh.comm.Allreduce(MPI.IN_PLACE, hi, op=MPI.MAX)
    return float(np.linalg.norm(hi - lo))


def _raise_on_unmatched(
    comm: MPI.Comm,
    source_tag: int,
    image_tag: int,
    translation: npt.NDArray[np.float64],
    tol: float,
    x_bad: npt.NDArray[np.float64],
    dist_bad: npt.NDArray[np.float64],
) -> None:
    """Raise PeriodicMatchError on every rank when any rank has an unmatched image dof."""
    n_bad = comm.allreduce(x_bad.shape[0], op=MPI.SUM)
    if n_bad == 0:
        return
    examples = [
        (tuple(float(c) for c in xb), float(d))
        for xs, ds in comm.allgather((x_bad[:3], dist_bad[:3]))
        for xb, d in zip(xs, ds, strict=True)
    ][:3]
    shown = "; ".join(f"x = {xb} m, nearest source at {d:.3g} m" for xb, d in examples)
    raise PeriodicMatchError(
        f"periodic pair (source tag {source_tag} -> image tag {image_tag}, translation "
        f"{tuple(float(c) for c in translation)} m): {n_bad} image dofs have no source dof within "
        f"tol = {tol:.3g} m ({shown}); the two faces' meshes do not match node by node"
    )
