r"""Full-vector DFB band edges at the Gamma point, open above and below: wavelengths, quality
factors and symmetry classes of the square lattice's band-edge modes.

Equation, for the electric field :math:`\mathbf E` (time :math:`e^{-i\omega t}`,
:math:`k_0 = \omega/c`), with the perfectly matched layers of :mod:`physics.pml`
(:math:`\Lambda = \mathrm{diag}(s, s, 1/s)`, identity outside them):

.. math:: \nabla\times(\Lambda^{-1}\nabla\times\mathbf E) = k_0^2\,\varepsilon\Lambda\,\mathbf E,
   \qquad \int \Lambda^{-1}\nabla\times\mathbf E\cdot\nabla\times\mathbf v
   = k_0^2 \int \varepsilon\Lambda\,\mathbf E\cdot\mathbf v,

:math:`\varepsilon` the real part of each region's permittivity (a tensor
:math:`\mathrm{diag}(\varepsilon_\parallel, \varepsilon_\parallel, \varepsilon_\perp)` for a
uniaxial region). Tangential continuity holds by the Nedelec (first kind, ``N1curl``) elements.

**Symmetry, and the quarter cell.** The square cell with one cylindrical pillar has the point
group :math:`C_{4v}`. At the Gamma point each mode can be chosen of definite parity under the
mirrors :math:`\sigma_x: x\to -x` and :math:`\sigma_y`, and then has that parity about the cell's
edges too (:mod:`geometry.quarter_cell`). On the quarter cell an even mode (character +1: the
field's normal component vanishes on the mirror) has a perfect magnetic wall there (natural
condition), an odd one a perfect electric wall (:math:`\mathbf n\times\mathbf E = 0`,
essential). The wall pairs give the classes of :math:`C_{4v}`:

- (PMC, PMC): :math:`A_1` or :math:`B_1`; (PEC, PEC): :math:`A_2` or :math:`B_2` (non-degenerate;
  the diagonal mirror :math:`\sigma_d` tells them apart, :func:`diagonal_character`);
- (PMC, PEC) and (PEC, PMC): the two partners of an :math:`E` mode, doubly degenerate (the 90
  degree rotation maps one onto the other; the second is solved only on request, as a check).

A plane wave leaving normally to the surface transforms like the in-plane vector
:math:`(x, y)`, i.e. as :math:`E`: the non-degenerate band edges cannot couple to it and are
symmetry-protected dark, bound states in the continuum, whenever the zeroth diffraction order is
the only one open (:math:`n_\mathrm{sub}, n_\mathrm{cover} < \lambda/\Lambda`). Their computed
Q is limited only by the discretisation and the PML.

**Spurious modes.** The curl's null space (gradients, :math:`k_0 = 0`) lies far from the target;
modes of the PMLs and of the discretised radiation continuum carry most of their
:math:`|\mathbf E|^2` in the outer half of the padding and the PMLs and are dropped by the
radiation-fraction test of :mod:`physics.bands`.

**Observables** of a mode :math:`\mathbf E = \mathbf E_r + i\mathbf E_i`:

- ``confinement[r]``: :math:`\Gamma_r = \mathrm{Re}\,\int_r \mathbf E^T\varepsilon\Lambda
  \mathbf E / \int \mathbf E^T\varepsilon\Lambda\mathbf E` (unconjugated, over the whole mesh,
  the PMLs included): the first-order change of the eigenvalue when region r gains, the factor
  that multiplies a material gain in the mode's growth rate. For a bound mode (real field) it is
  the electric-energy share; for a radiating one it does not depend on where the PMLs sit, as
  the energy share (which counts the outgoing wave in the padding) would. The shares sum to 1.
- ``q_factor``: :math:`\mathrm{Re}\,\omega/(2|\mathrm{Im}\,\omega|)` of the eigenvalue
  (radiation); ``q_flux`` the same from the radiated power, :math:`Q = \omega W/P`,
  :math:`W = \tfrac14\int(\varepsilon|\mathbf E|^2 + |\nabla\times\mathbf E|^2/k_0^2)`,
  :math:`P = \tfrac12\oint \mathrm{Re}(\mathbf E\times\overline{\mathbf H})\cdot\mathbf n`
  (:math:`Z_0 \mathbf H = \nabla\times\mathbf E / (ik_0)`), the flux averaged over the outer half
  of the padding above and below;
- ``q_absorption``: :math:`1/Q_\mathrm{abs} = \mathrm{Re}\int\mathbf E^T\mathrm{Im}
  (\varepsilon)\Lambda\mathbf E / \int\mathbf E^T\mathrm{Re}(\varepsilon)\Lambda\mathbf E`
  (first order in the regions' losses);
- ``family``: TE-like when :math:`|E_z|^2` is a smaller share of :math:`|\mathbf E|^2` in the film
  than :math:`|H_z|^2` of :math:`|\mathbf H|^2` (a TE slab mode has :math:`E_z = 0`, a TM one
  :math:`H_z = 0`).

Timers: :data:`VECTOR_BANDS_TIMER` (all of :func:`vector_band_edges`), within it
:data:`VECTOR_BANDS_SOLVE_TIMER` (the eigensolves).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from petsc4py import PETSc

import numpy as np

import dolfinx
import ufl
from dolfinx import fem
from dolfinx.fem.petsc import assemble_matrix

from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import boundary_dofs, global_sum, region_function
from cqdlaser.physics._slepc import with_direct_solver
from cqdlaser.physics.bands import DEFAULT_BANDS_EPS_OPTIONS
from cqdlaser.physics.pml import (
    PML,
    load_vector,
    normalise_phase,
    pml_tensors,
    quality_factor,
    solve_complex_pencil,
)

OPTIONS_PREFIX = "vbands_"

VECTOR_BANDS_TIMER = "cqdlaser: vector band edges"
"""Timer of :func:`vector_band_edges`."""
VECTOR_BANDS_SOLVE_TIMER = "cqdlaser: vector band edges, eigensolves"
"""Timer of the SLEPc eigensolves of :func:`vector_band_edges`."""

DEFAULT_VECTOR_EPS_OPTIONS: dict[str, Any] = {**DEFAULT_BANDS_EPS_OPTIONS, "eps_ncv": 64}
"""SLEPc options of the vector band-edge eigensolver (prefix ``vbands_``): those of the scalar one
with a wider Krylov subspace (the real form asks for 16 eigenvalues amid the continuum's; with
the default 32 vectors Krylov-Schur restarted 20-30 times per class on the paper cell, with 64
4-5 times, 25 % less time); ``eps_target`` and ``eps_nev`` are set per solve unless given."""

WALLS = ("PMC", "PEC")
CLASSES: tuple[tuple[str, str], ...] = (("PMC", "PMC"), ("PEC", "PEC"), ("PMC", "PEC"))
"""The wall pairs (x walls, y walls) solved by default: every class of C4v once."""
E_PARTNER = ("PEC", "PMC")
"""The wall pair of the second partner of the E modes (a check of the degeneracy)."""


@dataclass(frozen=True)
class VectorBandEdge:
    """A full-vector band-edge mode at the Gamma point.

    Attributes:
        wavelength: Vacuum wavelength 2 pi / Re(k0) (m).
        k0: Complex vacuum wavenumber (1/m), Im <= 0.
        q_factor: Radiation Q from the complex eigenvalue (inf: real).
        q_flux: Radiation Q from the radiated power (:math:`\\omega W / P`).
        q_absorption: Q of the regions' absorption (inf: lossless).
        walls: (x walls, y walls) of its quarter-cell problem, ``"PMC"`` or ``"PEC"``.
        symmetry: ``"A1"``, ``"A2"``, ``"B1"``, ``"B2"`` or ``"E"`` (C4v irreducible
            representation; ``"A1/B1"`` or ``"A2/B2"`` when the diagonal test is inconclusive).
        degeneracy: 1, or 2 for E.
        dark: Symmetry-protected from radiating (non-degenerate, zeroth order the only open one).
        family: ``"TE-like"`` or ``"TM-like"``.
        confinement: Region -> Gamma_r, the first-order gain factor (module docstring; sums
            to 1).
        radiation_fraction: Share of |E|^2 in the outer half of the padding and the PMLs.
        field_re: Real part of E (N1curl), scaled to a peak |E| of about 1.
        field_im: Imaginary part of E.
    """

    wavelength: float
    k0: complex
    q_factor: float
    q_flux: float
    q_absorption: float
    walls: tuple[str, str]
    symmetry: str
    degeneracy: int
    dark: bool
    family: str
    confinement: dict[str, float]
    radiation_fraction: float
    field_re: fem.Function = field(repr=False)
    field_im: fem.Function = field(repr=False)

    @property
    def q_total(self) -> float:
        """Q of radiation and absorption together."""
        return 1.0 / (1.0 / self.q_factor + 1.0 / self.q_absorption)


def solver_options(petsc_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULT_VECTOR_EPS_OPTIONS` with a direct solver and the user's overrides."""
    return with_direct_solver(DEFAULT_VECTOR_EPS_OPTIONS, petsc_options)


def _tensor(value: Any) -> tuple[complex, complex]:
    """(in-plane, along z) permittivity of a region (isotropic: both equal)."""
    if isinstance(value, tuple):
        return complex(value[0]), complex(value[-1])
    return complex(value), complex(value)


def _permittivity_functions(
    mesh_data: MeshData, permittivity: Mapping[str, Any]
) -> dict[str, fem.Function]:
    """DG0 fields of the permittivity's parts: ``par_re``, ``perp_re``, ``par_im``, ``perp_im``."""
    missing = sorted(set(mesh_data.regions) - set(permittivity))
    if missing:
        raise KeyError(
            f"permittivity must name every region of the mesh {sorted(mesh_data.regions)}: "
            f"missing {missing}"
        )
    parts = {name: _tensor(permittivity[name]) for name in mesh_data.regions}
    return {
        "par_re": region_function(mesh_data, {n: p[0].real for n, p in parts.items()}),
        "perp_re": region_function(mesh_data, {n: p[1].real for n, p in parts.items()}),
        "par_im": region_function(mesh_data, {n: p[0].imag for n, p in parts.items()}),
        "perp_im": region_function(mesh_data, {n: p[1].imag for n, p in parts.items()}),
    }


def _eps_matrix(par: Any, perp: Any) -> Any:
    return ufl.as_matrix([[par, 0.0, 0.0], [0.0, par, 0.0], [0.0, 0.0, perp]])


def _check(mesh_data: MeshData, degree: int, window: tuple[float, float]) -> None:
    if mesh_data.kind != "quarter-cell":
        raise ValueError(f"vector_band_edges needs the quarter-cell mesh, got {mesh_data.kind!r}")
    if degree < 1:
        raise ValueError(f"degree = {degree} must be at least 1")
    lo, hi = window
    if not 0.0 < lo < hi:
        raise ValueError(f"wavelength window = ({lo}, {hi}) m must have 0 < low < high")


def vector_band_edges(
    mesh_data: MeshData,
    permittivity: Mapping[str, Any],
    pml: PML,
    *,
    period: float,
    window: tuple[float, float],
    degree: int = 2,
    classes: Sequence[tuple[str, str]] = CLASSES,
    n_per_class: int = 8,
    max_radiation_share: float = 0.5,
    petsc_options: Mapping[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> list[VectorBandEdge]:
    """Band-edge modes at the Gamma point with vacuum wavelengths in ``window``, by wavelength.

    Args:
        mesh_data: The quarter-cell mesh (:func:`geometry.quarter_cell.build_quarter_cell`).
        permittivity: Complex relative permittivity of every region (a pair (in-plane, along
            z) for a uniaxial one); the real part enters the eigenproblem, the imaginary part
            ``q_absorption``.
        pml: The mesh's PMLs (:meth:`physics.pml.PML.of`).
        period: Lattice period (m).
        window: (shortest, longest) vacuum wavelength kept (m); the shift is its centre.
        degree: Nedelec degree.
        classes: Wall pairs to solve (:data:`CLASSES`; add :data:`E_PARTNER` to check the
            degeneracy of E modes).
        n_per_class: Eigenpairs of the complex pencil computed per class.
        max_radiation_share: Modes whose ``radiation_fraction`` exceeds this share of the outer
            region's volume fraction are modes of the PMLs or the continuum, dropped; so are
            modes with more than this share of their gain factor in the substrate and the cover
            (the continuum of a substrate of higher index than the film, e.g. Si).
        petsc_options: SLEPc/PETSc options (prefix ``vbands_``) over
            :data:`DEFAULT_VECTOR_EPS_OPTIONS`.
        info: Filled with ``dofs``, ``real_form_size``, ``iterations`` (per class),
            ``converged``, ``options``.

    Raises:
        ValueError: Wrong mesh kind, degree or window.
        SolverError: SLEPc failed, or an eigenpair failed its residual check, with the options
            in effect.
    """
    _check(mesh_data, degree, window)
    msh = mesh_data.mesh
    with dolfinx.common.Timer(VECTOR_BANDS_TIMER):
        V = fem.functionspace(msh, ("N1curl", degree))
        eps = _permittivity_functions(mesh_data, permittivity)
        forms = _forms(V, eps, pml)
        observables = _Observables.build(mesh_data, V, eps, pml, period)
        centre = 0.5 * (window[0] + window[1])
        target = (2.0 * math.pi / centre) ** 2
        options = solver_options(petsc_options)
        nev = int(options.pop("eps_nev", n_per_class))
        n_sub = max(math.sqrt(max(_tensor(permittivity[r])[0].real, 0.0)) for r in ("substrate",))
        n_cover = math.sqrt(max(_tensor(permittivity["cover"])[0].real, 0.0))
        stats: dict[str, Any] = {"dofs": V.dofmap.index_map.size_global, "iterations": {}}
        found: list[VectorBandEdge] = []
        for walls in classes:
            bcs = _walls(V, mesh_data, walls)
            matrices = [
                _assemble(form, bcs, diag)
                for form, diag in zip(forms, (1.0, 0.0, 0.0, 0.0), strict=True)
            ]
            try:
                with dolfinx.common.Timer(VECTOR_BANDS_SOLVE_TIMER):
                    pairs, run = solve_complex_pencil(
                        (matrices[0], matrices[1]),
                        (matrices[2], matrices[3]),
                        prefix=OPTIONS_PREFIX,
                        target=target,
                        nev=nev,
                        options=options,
                    )
            finally:  # also when the solver fails: a caller may catch it and go on
                for m in matrices:
                    m.destroy()
            stats["iterations"]["/".join(walls)] = run["iterations"]
            stats["real_form_size"] = run["size"]
            stats["options"] = run["options"]
            for pair in pairs:
                try:
                    edge = _edge(
                        pair,
                        V,
                        walls,
                        observables,
                        window,
                        max_radiation_share,
                        period,
                        max(n_sub, n_cover),
                    )
                finally:
                    pair.re.destroy()
                    pair.im.destroy()
                if edge is not None:
                    found.append(edge)
        if info is not None:
            info.update(stats)
        return sorted(found, key=lambda e: e.wavelength)


def _forms(V: fem.FunctionSpace, eps: Mapping[str, fem.Function], pml: PML) -> list[fem.Form]:
    """Compiled A_r, A_i, B_r, B_i of the stretched curl-curl pencil."""
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    z = ufl.SpatialCoordinate(V.mesh)[2]
    t = pml_tensors(pml.sigma(z))
    er = _eps_matrix(eps["par_re"], eps["perp_re"])
    a_re = ufl.inner(t["inv_re"] * ufl.curl(u), ufl.curl(v)) * ufl.dx
    a_im = ufl.inner(t["inv_im"] * ufl.curl(u), ufl.curl(v)) * ufl.dx
    b_re = ufl.inner(er * t["lam_re"] * u, v) * ufl.dx
    b_im = ufl.inner(er * t["lam_im"] * u, v) * ufl.dx
    return [fem.form(f) for f in (a_re, a_im, b_re, b_im)]


def _walls(
    V: fem.FunctionSpace, mesh_data: MeshData, walls: tuple[str, str]
) -> list[fem.DirichletBC]:
    """n x E = 0 on the PEC walls of the class and on the truncation above and below."""
    for w in walls:
        if w not in WALLS:
            raise ValueError(f"walls = {walls}: each must be one of {WALLS}")
    names = ["top", "bottom"]
    if walls[0] == "PEC":
        names += ["x_centre", "x_edge"]
    if walls[1] == "PEC":
        names += ["y_centre", "y_edge"]
    dofs = boundary_dofs(V, mesh_data, names)
    zero = fem.Function(V)
    return [fem.dirichletbc(zero, dofs)]


def _assemble(form: fem.Form, bcs: list[fem.DirichletBC], diag: float) -> PETSc.Mat:
    """A matrix with the essential conditions: rows and columns of constrained dofs zero, the
    diagonal ``diag`` (1 in A_r, 0 elsewhere: their eigenvalues are infinite)."""
    mat = assemble_matrix(form, bcs=bcs, diag=diag)
    mat.assemble()
    return mat


@dataclass(frozen=True)
class _Observables:
    """Compiled integrals of a complex mode (``re`` + i ``im``), see the module docstring."""

    re: fem.Function
    im: fem.Function
    k0: fem.Constant
    indicator: fem.Function
    region_masks: dict[str, np.ndarray]
    regions: tuple[fem.Form, fem.Form]
    absorbed: tuple[fem.Form, fem.Form]
    stored_e: tuple[fem.Form, fem.Form]
    far: fem.Form
    total: fem.Form
    far_share: float
    film_ez: fem.Form
    film_e: fem.Form
    film_hz: fem.Form
    film_h: fem.Form
    energy: fem.Form
    flux: fem.Form
    probe: _Probe

    @classmethod
    def build(
        cls,
        mesh_data: MeshData,
        V: fem.FunctionSpace,
        eps: Mapping[str, fem.Function],
        pml: PML,
        period: float,
    ) -> _Observables:
        msh = mesh_data.mesh
        re, im = fem.Function(V), fem.Function(V)
        k0 = fem.Constant(msh, PETSc.ScalarType(1.0))
        x = ufl.SpatialCoordinate(msh)
        z = x[2]
        inner = 1.0 - pml.inside(z)
        e2 = ufl.inner(re, re) + ufl.inner(im, im)
        er = _eps_matrix(eps["par_re"], eps["perp_re"])
        ei = _eps_matrix(eps["par_im"], eps["perp_im"])
        lam = pml_tensors(pml.sigma(z))
        dx = ufl.Measure("dx", domain=msh, subdomain_data=mesh_data.cell_tags)
        weight = _unconjugated(re, im, er * lam["lam_re"], er * lam["lam_im"])
        indicator = fem.Function(fem.functionspace(msh, ("DG", 0)))
        absorbed = _unconjugated(re, im, ei * lam["lam_re"], ei * lam["lam_im"])
        levels = mesh_data.z_levels
        z_low = 0.5 * (pml.z_bottom + levels["substrate_top"])
        z_high = 0.5 * (levels["cover_bottom"] + pml.z_top)
        far = ufl.conditional(ufl.Or(ufl.lt(z, z_low), ufl.gt(z, z_high)), 1.0, 0.0)
        one = fem.Constant(msh, PETSc.ScalarType(1.0))
        far_share = global_sum(fem.form(far * ufl.dx(domain=msh))) / global_sum(
            fem.form(one * ufl.dx(domain=msh))
        )
        cr, ci = ufl.curl(re), ufl.curl(im)
        h2 = ufl.inner(cr, cr) + ufl.inner(ci, ci)
        film = mesh_data.regions["film"]
        # Flux averaged over the outer half of the padding, up above and down below
        slab_low = ufl.conditional(ufl.And(ufl.gt(z, pml.z_bottom), ufl.lt(z, z_low)), 1.0, 0.0)
        slab_high = ufl.conditional(ufl.And(ufl.gt(z, z_high), ufl.lt(z, pml.z_top)), 1.0, 0.0)
        s_z = ufl.cross(re, ci)[2] - ufl.cross(im, cr)[2]
        flux = s_z / k0 * (slab_high / (pml.z_top - z_high) - slab_low / (z_low - pml.z_bottom))
        between = ufl.conditional(
            ufl.And(ufl.gt(z, 0.5 * (pml.z_bottom + z_low)), ufl.lt(z, 0.5 * (z_high + pml.z_top))),
            1.0,
            0.0,
        )
        energy = 0.25 * (ufl.inner(er * re, re) + ufl.inner(er * im, im) + h2 / k0**2) * between
        return cls(
            re=re,
            im=im,
            k0=k0,
            indicator=indicator,
            region_masks={
                name: region_function(
                    mesh_data, {r: float(r == name) for r in mesh_data.regions}
                ).x.array.copy()
                for name in mesh_data.regions
            },
            regions=(
                fem.form(weight[0] * indicator * ufl.dx),
                fem.form(weight[1] * indicator * ufl.dx),
            ),
            absorbed=(fem.form(absorbed[0] * ufl.dx), fem.form(absorbed[1] * ufl.dx)),
            stored_e=(fem.form(weight[0] * ufl.dx), fem.form(weight[1] * ufl.dx)),
            far=fem.form(far * e2 * ufl.dx),
            total=fem.form(e2 * ufl.dx),
            far_share=far_share,
            film_ez=fem.form((re[2] ** 2 + im[2] ** 2) * dx(film)),
            film_e=fem.form(e2 * dx(film)),
            film_hz=fem.form((cr[2] ** 2 + ci[2] ** 2) * dx(film)),
            film_h=fem.form(h2 * dx(film)),
            energy=fem.form(energy * ufl.dx),
            flux=fem.form(flux * ufl.dx),
            probe=_Probe.build(re, im, inner, period),
        )


def _unconjugated(re: Any, im: Any, m_re: Any, m_im: Any) -> tuple[Any, Any]:
    """Real and imaginary parts of the unconjugated product E^T M E, E = re + i im,
    M = m_re + i m_im symmetric (UFL)."""
    real = ufl.inner(m_re * re, re) - ufl.inner(m_re * im, im) - 2.0 * ufl.inner(m_im * im, re)
    imag = 2.0 * ufl.inner(m_re * im, re) + ufl.inner(m_im * re, re) - ufl.inner(m_im * im, im)
    return real, imag


def _complex_sum(forms: tuple[fem.Form, fem.Form]) -> complex:
    """The complex integral of a (real part, imaginary part) pair of forms."""
    return complex(global_sum(forms[0]), global_sum(forms[1]))


@dataclass(frozen=True)
class _Probe:
    """Overlaps <E, g> of the loaded mode with test fields g interpolated into ``g`` (one compiled
    form for the real part, one for the imaginary part, whatever the test field)."""

    g: fem.Function
    re: fem.Form
    im: fem.Form
    wavenumber: float

    @classmethod
    def build(cls, re: fem.Function, im: fem.Function, weight: Any, period: float) -> _Probe:
        msh = re.function_space.mesh
        g = fem.Function(fem.functionspace(msh, ("Discontinuous Lagrange", 2, (3,))))
        return cls(
            g,
            fem.form(ufl.inner(re, g) * weight * ufl.dx),
            fem.form(ufl.inner(im, g) * weight * ufl.dx),
            2.0 * math.pi / period,
        )

    def profiles(self) -> list[Any]:
        """The in-plane profiles f(a, b) of the test fields e_c f(x, y)."""
        k = self.wavenumber
        return [
            lambda a, b: np.ones_like(a),
            lambda a, b: np.cos(k * a),
            lambda a, b: np.cos(k * b),
            lambda a, b: np.cos(k * a) * np.cos(k * b),
            lambda a, b: np.sin(k * a) * np.sin(k * b),
            lambda a, b: np.sin(k * a) * np.cos(k * b),
        ]

    def overlap(self, component: int, f: Any, mirrored: bool) -> complex:
        """<E, g> for g = e_component f(x, y), or for its mirror image sigma_d g =
        P e_component f(y, x) (P swaps the x and y components)."""

        def field(x: np.ndarray) -> np.ndarray:
            out = np.zeros((3, x.shape[1]))
            if mirrored:
                out[(1, 0, 2)[component]] = f(x[1], x[0])
            else:
                out[component] = f(x[0], x[1])
            return out

        self.g.interpolate(field)
        return complex(global_sum(self.re), global_sum(self.im))


def diagonal_character(observables: _Observables) -> float:
    r"""The character of the loaded mode under the diagonal mirror :math:`\sigma_d`
    (:math:`(x, y, z) \to (y, x, z)`, swapping :math:`E_x` and :math:`E_y`): +1 or -1 for a
    non-degenerate mode, by :math:`\langle\sigma_d\mathbf E, \mathbf g\rangle = \langle\mathbf E,
    \sigma_d\mathbf g\rangle = \chi\langle\mathbf E, \mathbf g\rangle` over test fields
    :math:`\mathbf g = \mathbf e_c f(x, y)` (least squares). The quarter cell is its own image
    under :math:`\sigma_d`."""
    probe = observables.probe
    num, den = 0.0, 0.0
    for f in probe.profiles():
        for component in range(3):
            a = probe.overlap(component, f, mirrored=False)
            b = probe.overlap(component, f, mirrored=True)
            num += (b * a.conjugate()).real
            den += abs(a) ** 2
    return num / den if den > 0.0 else math.nan


def _symmetry(walls: tuple[str, str], chi: float) -> str:
    """The C4v class from the walls and the diagonal character (module docstring)."""
    if walls[0] != walls[1]:
        return "E"
    pair = ("A1", "B1") if walls[0] == "PMC" else ("B2", "A2")
    if not abs(abs(chi) - 1.0) < 0.2:
        return "/".join(sorted(pair))
    return pair[0] if chi > 0.0 else pair[1]


def _edge(
    pair: Any,
    V: fem.FunctionSpace,
    walls: tuple[str, str],
    obs: _Observables,
    window: tuple[float, float],
    max_radiation_share: float,
    period: float,
    n_outer: float,
) -> VectorBandEdge | None:
    """The band edge of one eigenpair, or None when it is outside the window or spurious."""
    k0 = complex(np.sqrt(pair.value))
    if k0.real < 0.0:
        k0 = -k0
    if not k0.real > 0.0:
        return None
    wavelength = 2.0 * math.pi / k0.real
    if not window[0] <= wavelength <= window[1]:
        return None
    load_vector(obs.re, pair.re)
    load_vector(obs.im, pair.im)
    normalise_phase(obs.re, obs.im)
    radiation = global_sum(obs.far) / global_sum(obs.total)
    if radiation > max_radiation_share * obs.far_share:
        return None
    stored = _complex_sum(obs.stored_e)
    confinement = {}
    for name, mask in obs.region_masks.items():
        obs.indicator.x.array[:] = mask
        confinement[name] = (_complex_sum(obs.regions) / stored).real
    outside = sum(abs(confinement.get(r, 0.0)) for r in ("substrate", "cover"))
    if outside > max_radiation_share:
        return None  # a mode of the substrate or the cover (the continuum of a high-index one)
    absorbed = (_complex_sum(obs.absorbed) / stored).real
    q_abs = 1.0 / absorbed if absorbed > 0.0 else math.inf
    obs.k0.value = k0.real
    power = 0.5 * global_sum(obs.flux)
    q_flux = k0.real * global_sum(obs.energy) / power if power > 0.0 else math.inf
    ez = global_sum(obs.film_ez) / global_sum(obs.film_e)
    hz = global_sum(obs.film_hz) / global_sum(obs.film_h)
    chi = diagonal_character(obs) if walls[0] == walls[1] else math.nan
    symmetry = _symmetry(walls, chi)
    degenerate = symmetry == "E"
    return VectorBandEdge(
        wavelength=wavelength,
        k0=k0,
        q_factor=quality_factor(pair.value),
        q_flux=q_flux,
        q_absorption=q_abs,
        walls=walls,
        symmetry=symmetry,
        degeneracy=2 if degenerate else 1,
        dark=(not degenerate) and n_outer < wavelength / period,
        family="TE-like" if ez < hz else "TM-like",
        confinement=confinement,
        radiation_fraction=radiation,
        field_re=_copy(obs.re, "E_re"),
        field_im=_copy(obs.im, "E_im"),
    )


def _copy(f: fem.Function, name: str) -> fem.Function:
    out = fem.Function(f.function_space, name=name)
    out.x.array[:] = f.x.array
    return out


__all__ = [
    "CLASSES",
    "E_PARTNER",
    "VectorBandEdge",
    "diagonal_character",
    "vector_band_edges",
]
