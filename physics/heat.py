"""Transient and steady heat conduction on ``stack``, ``axisymmetric`` and ``device`` meshes.

.. math::

    \\rho c_p \\frac{\\partial T}{\\partial t} - \\nabla\\cdot(K(T) \\nabla T) = Q(x, t),

with ``K = diag(k_xx, k_yy, k_zz) (T / 295 K)^n`` per region in device axes (r-z meshes use
``diag(k_xx, k_zz)``, 1D stacks ``k_zz``), ``T = T_sink`` on ``bottom`` and ``side``, adiabatic
symmetry planes and axis, and on ``top`` either no flux or ``-K grad T . n = h (T - T_ambient)``.
The unknown is the rise ``u = T - T_sink`` (K), so the sink condition is homogeneous. Integrals
carry the weight ``w = 2 pi r`` on r-z meshes (``x[0] = r``), 1 otherwise; on ``device`` meshes
(a quarter domain) integrated quantities (energies) are those of the quarter.

Time integration is implicit on a given grid of time levels (``time_grid``: geometric steps from
``first_step``, growing by ``step_growth`` up to ``max_step``, restarted at each pump edge):

- ``backward-euler``: ``C (u^{n+1} - u^n) / dt_n + A u^{n+1} = F^{n+1}``;
- ``bdf2`` (variable step, ``omega = dt_n / dt_{n-1}``):
  ``C (a0 u^{n+1} + a1 u^n + a2 u^{n-1}) / dt_n + A u^{n+1} = F^{n+1}`` with
  ``a0 = (1 + 2 omega)/(1 + omega)``, ``a1 = -(1 + omega)``, ``a2 = omega^2/(1 + omega)``.
  The first step, and the first step after each pump edge, is backward Euler (the solution has a
  kink there).

The pump term of a step is ``Q`` times the exact mean of the waveform over the step, so the
energy put in is exact whatever the grid. Each step starts its solver from the linear
extrapolation of the last two levels (from the last level after a pump edge). For linear
problems the mass and stiffness matrices are assembled once and the operator ``K + (a0/dt) M``
is re-formed (its diagonal, or a matrix AXPY for a consistent mass; no assembly) when ``a0/dt``
changes, i.e. on every step of a geometric grid. The preconditioner is not: it is kept while
``a0/dt`` stays within a factor ``preconditioner_reuse_ratio`` (4) of its value at the last
build and the last solve on the kept one took at most ``preconditioner_reuse_iterations`` (40)
Krylov iterations, and rebuilt otherwise (so after every pump edge, and for ``steady``). The
grid itself is unchanged, so reuse alters results only within the solver tolerance. A direct
solver (no Krylov iterations to absorb the difference) is refactorised whenever ``a0/dt``
changes. With ``nonlinear`` and
a material of non-zero ``conductivity_exponent``, each step is a Newton solve (PETSc SNES, prefix
``heat_snes_``) with residual and Jacobian callbacks of our own rather than
``dolfinx.fem.petsc.NonlinearProblem``, because the (lumped) storage matrix enters both outside
UFL. The storage term is lumped by row sums by default (``int C phi_i w``; positive for P1/Q1,
also on the r-z axis), which keeps the discrete maximum principle at the 1 ns first steps where a
consistent mass matrix overshoots by ~1 % next to the film/substrate interface.

Linear solvers: CG + GAMG (prefix ``heat_`` by default, ``petsc_options_prefix``), or MUMPS LU
for at most ``direct_max_dofs`` unknowns; defaults in ``DEFAULT_HEAT_*OPTIONS``, overridden by
``HeatSettings.petsc_options`` / ``snes_options``, and by command-line options under the prefix.
Every solve checks the converged reason and then the answer, its true residual ``||b - A x|| /
||b||`` (:func:`~physics._petsc.check_linear_solve`; Newton: ``||F(u)|| / ||F(0)||``), and every
step its discrete energy balance (:data:`ENERGY_BALANCE_RTOL`), and raises
:class:`~physics._petsc.SolverError` (a ``RuntimeError``) naming the reason or the failed check
and the options in effect, read back from the solver (command-line ones included): a
``preonly`` KSP with a preconditioner that solves nothing (``-heat_pc_type jacobi``) converges by
its reason and returns a wrong answer, which these checks stop. On quadrilateral and hexahedral
meshes of degree 1 (``vertex_preconditioner``) CG solves with the operator ``A`` but GAMG is
built from ``P = K_v + (a0/dt) M_lumped``, ``K_v`` the conduction matrix integrated at the cell
vertices (Gauss-Lobatto, 2 points a direction). On the flat, extruded cells of the device meshes
(40 nm by um) the Q1 matrix ``K`` has large positive couplings between lateral neighbours, which
aggregation cannot tell from real ones; ``K_v`` is the 5/7-point M-matrix of the same cells
(stored zeros dropped). On box cells ``K = sum_d K_d (x) M_1 (x) M_1`` and ``K_v`` has the
lumped 1D mass in place of each ``M_1``, so ``K_v / 9 <= K <= K_v`` whatever the aspect ratio,
and ``P`` preconditions ``A`` uniformly. On the paper's 3D device this took CG + GAMG from
48 iterations a step on average (203 at worst, growing with the mesh) to about 20.

Thermal boundary resistance ``R`` (m^2 K/W) at the ``interface``: the layer of cells just below
the interface (substrate or cladding side, where there is no source) has its through-plane
conductivity replaced by ``h / (h / k_zz + R)``, ``h`` the cell's depth: an equivalent layer one
cell thick. Steady 1D temperatures are exact (series resistances); in 2D/3D the jump ``R q`` is
spread over one (thin) cell instead of sitting on the plane, and that cell keeps its heat
capacity. The ``interface`` nodes then carry the film-side temperature.

Energy bookkeeping: ``in`` is the pump energy (exact), ``stored`` is ``int C u w dV``, ``out``
the heat through the sink from the consistent (reaction) flux, the residual of the unconstrained
equations at the sink's degrees of freedom, and ``out_top`` the heat through a convective top,
both integrated in time by the rectangle rule on backward-Euler steps (then
``in = stored + out + out_top`` holds to solver tolerance) and by the trapezoidal rule on BDF2
steps (then it holds to the scheme's second-order accuracy). ``in`` is the load's own integral
(the source form with the test function replaced by 1), the heat the discrete equations receive.
Each step checks the scheme's own balance, exact for both schemes to solver tolerance,
``a0 S^{n+1} + a1 S^n + a2 S^{n-1} = dt (P - q_sink - q_top)`` (``S`` the stored energy), within
:data:`ENERGY_BALANCE_RTOL` of its terms, and :meth:`HeatProblem.run` the sum of these defects
(for backward Euler the final ``balance_error``) within :data:`ENERGY_BALANCE_RTOL` of the run's
energies. Measured on the paper device (stack, r-z and a coarse 3D mesh, both schemes, MUMPS
and CG + GAMG, 1 and 2 ranks): step defects <= 2e-9 of their terms, ``|balance_error| / in``
<= 4e-9 (backward Euler; BDF2's quadrature adds up to 4e-8 on the 3D mesh and 2e-3 where the heat
reaches the sink during the pulse, on a 1 um substrate).

Timers (``dolfinx.common.Timer``, per rank; read them with ``dolfinx.common.timing(name)``):
:data:`HEAT_SETUP_TIMER` (the set-up in :class:`HeatProblem`'s constructor: forms, matrices,
solvers), :data:`HEAT_RUN_TIMER` (the time stepping of :meth:`HeatProblem.run`, callbacks
included) and :data:`HEAT_STEADY_TIMER` (:meth:`HeatProblem.steady`). The solver statistics are
attributes of the problem: ``linear_solver`` (``"mumps"``, ``"cg+gamg"``), ``krylov_iterations``
and ``preconditioner_builds``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np

import dolfinx
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from cqdlaser.geometry.device import Device
from cqdlaser.geometry.meshdata import MeshData
from cqdlaser.physics._fem import boundary_dofs, global_max, global_sum
from cqdlaser.physics._petsc import (
    DIRECT_RESIDUAL_FLOOR,
    KRYLOV_RESIDUAL_FACTOR,
    PETSC_FAILURES,
    SolverError,
    check_linear_solve,
    configure,
    options_in_effect,
    options_set,
)
from cqdlaser.physics.laser import thermal_resistance
from cqdlaser.physics.source import HeatSource, source_from_device

logger = logging.getLogger(__name__)

REFERENCE_TEMPERATURE = 295.0
"""Temperature (K) at which the conductivities hold; ``k(T) = k (T / 295 K)^n``."""

HEAT_SETUP_TIMER = "cqdlaser: heat set-up"
"""Timer of :class:`HeatProblem`'s set-up (forms, matrices, solvers, bookkeeping)."""
HEAT_RUN_TIMER = "cqdlaser: heat time stepping"
"""Timer of the time stepping of :meth:`HeatProblem.run` (its callbacks included)."""
HEAT_STEADY_TIMER = "cqdlaser: heat steady state"
"""Timer of a steady solve, :meth:`HeatProblem.steady`."""

SCHEMES = ("bdf2", "backward-euler")
SINKS = ("bottom", "side")

ENERGY_BALANCE_RTOL = 1e-6
"""Tolerance of a step's discrete energy balance, relative to the sum of the magnitudes of its
terms (stored energies, pump heat, heat out), and of a run's, relative to its energies (see the
module docstring). Right answers reach 2e-9; a wrong linear solve leaves 1e-2 to 1."""

DEFAULT_HEAT_OPTIONS: dict[str, Any] = {
    "ksp_type": "cg",
    "pc_type": "gamg",
    "pc_gamg_threshold": 0.01,
    "pc_gamg_agg_nsmooths": 0,
    "mg_levels_ksp_type": "richardson",
    "mg_levels_ksp_max_it": 1,
    "mg_levels_pc_type": "sor",
    "pc_use_amat": False,
    "pc_gamg_reuse_interpolation": False,
    "ksp_rtol": 1e-9,
    "ksp_max_it": 2000,
    "ksp_initial_guess_nonzero": True,
    "ksp_error_if_not_converged": True,
}
"""Linear solver options (prefix ``heat_``): CG + GAMG; small problems use MUMPS instead.

Chosen on the paper's 3D quarter device (260k DOFs, 112 steps from 1 ns to 100 us), with GAMG
built from the vertex-quadrature matrix (see the module docstring):

- ``pc_gamg_threshold`` 0.01: drop weak graph edges, so that aggregates follow the strong
  (through-thickness) couplings of the thin layers; without it CG needs 200+ iterations at the
  late steps; 0.005 and 0.02 are alike.
- ``pc_gamg_agg_nsmooths`` 0 (plain aggregation): smoothed prolongators of such aggregates give
  coarse operators with hundreds of entries a row and set-ups of 2-25 s; plain ones cost 0.2 s
  for about 30 % more iterations.
- one Richardson/SOR sweep per level (local symmetric SOR, so the V-cycle is symmetric for CG):
  fewer iterations than the Chebyshev/Jacobi default and the cheapest per solve.
- ``pc_use_amat`` false: the smoothers use ``P`` (7 entries a row), not ``A`` (27).
- ``pc_gamg_reuse_interpolation`` false: a rebuild recomputes the aggregates for the new
  ``a0/dt`` (at 1 ns the storage term dominates and the aggregates are point-like).
- ``ksp_rtol`` 1e-9, relative to the preconditioned right-hand side (the step's storage and
  pump terms): film temperatures within 2e-6 K of a 1e-12 solve over the whole run (1e-8:
  2e-5 K, 1e-10: 2e-7 K), at 15 instead of 24 iterations a step.
"""

DEFAULT_HEAT_DIRECT_OPTIONS: dict[str, Any] = {
    "ksp_type": "preonly",
    "pc_type": "lu",
    "pc_factor_mat_solver_type": "mumps",
    "ksp_rtol": 1e-9,
    "ksp_error_if_not_converged": True,
}
"""Linear solver options for problems of at most ``HeatSettings.direct_max_dofs`` unknowns
(``ksp_rtol`` holds if a Krylov method replaces ``preonly``: ``-heat_ksp_type gmres``)."""

DEFAULT_HEAT_SNES_OPTIONS: dict[str, Any] = {
    "snes_type": "newtonls",
    "snes_linesearch_type": "basic",
    "snes_rtol": 1e-10,
    "snes_stol": 1e-12,
    "snes_max_it": 30,
    "snes_error_if_not_converged": True,
}
"""Newton options (prefix ``heat_snes_``); its linear solver follows the same size rule."""

SourceFunction = Callable[[Any, fem.Constant], Any]
"""A source given as ``Q(x, t)`` (W/m^3): a UFL expression of the spatial coordinate and time."""


class ThermalMaterial(Protocol):
    """What the heat solver needs of a material (``physics.materials.Material`` has it)."""

    @property
    def thermal_conductivity(self) -> tuple[float, float, float]:
        """(k_xx, k_yy, k_zz) at 295 K (W/m/K), device axes."""
        ...

    @property
    def volumetric_heat_capacity(self) -> float:
        """rho c_p (J/m^3/K)."""
        ...

    @property
    def conductivity_exponent(self) -> float:
        """n in k(T) = k(295 K) (T / 295 K)^n (0: constant)."""
        ...


@dataclass(frozen=True)
class ThermalProperties:
    """Plain thermal properties of a region (for tests and user-defined regions).

    Attributes:
        thermal_conductivity: (k_xx, k_yy, k_zz) at 295 K (W/m/K).
        volumetric_heat_capacity: rho c_p (J/m^3/K).
        conductivity_exponent: n in k(T) = k(295 K) (T / 295 K)^n.
    """

    thermal_conductivity: tuple[float, float, float]
    volumetric_heat_capacity: float
    conductivity_exponent: float = 0.0

    @classmethod
    def isotropic(cls, k: float, rho_c: float, exponent: float = 0.0) -> ThermalProperties:
        """Isotropic conductivity ``k`` (W/m/K), heat capacity ``rho_c`` (J/m^3/K)."""
        return cls((k, k, k), rho_c, exponent)


@dataclass(frozen=True)
class HeatSettings:
    """Boundary conditions, time stepping and solver settings of a heat run.

    Attributes:
        sink_temperature: T on ``bottom`` and ``side`` and the initial temperature (K).
        top: ``"adiabatic"`` or ``"convective"``.
        heat_transfer_coefficient: h on a convective top (W/m^2/K).
        ambient_temperature: Ambient temperature of a convective top (K); None: the sink's.
        boundary_resistance: Thermal boundary resistance at the ``interface`` (m^2 K/W).
        scheme: ``"bdf2"`` or ``"backward-euler"``.
        first_step: First time step, and the step after each pump edge (s).
        step_growth: Ratio of successive steps.
        max_step: Largest time step (s).
        nonlinear: Use k(T) (materials' ``conductivity_exponent``) and Newton.
        element_degree: Lagrange degree.
        lumped_mass: Lump the storage term by row sums (degree 1), else consistent mass.
        quadrature_degree: Quadrature degree of the source terms (None: estimated by UFL).
        direct_max_dofs: Problems with at most this many unknowns use MUMPS.
        vertex_preconditioner: Build the iterative solver's preconditioner from the conduction
            matrix integrated at the vertices (quadrilateral and hexahedral cells of degree 1),
            not from the operator itself.
        preconditioner_reuse_ratio: Keep the preconditioner while ``a0/dt`` stays within this
            factor of its value at the last build (1: rebuild whenever ``a0/dt`` changes).
        preconditioner_reuse_iterations: Rebuild also after a solve on a kept preconditioner
            that took more than this many Krylov iterations.
        petsc_options: Overrides of the linear solver options (prefix ``heat_``).
        snes_options: Overrides of the Newton options (prefix ``heat_snes_``).
    """

    sink_temperature: float = 295.0
    top: str = "adiabatic"
    heat_transfer_coefficient: float = 0.0
    ambient_temperature: float | None = None
    boundary_resistance: float = 0.0
    scheme: str = "bdf2"
    first_step: float = 1e-9
    step_growth: float = 1.1
    max_step: float = 1e-3
    nonlinear: bool = False
    element_degree: int = 1
    lumped_mass: bool = True
    quadrature_degree: int | None = None
    direct_max_dofs: int = 50_000
    vertex_preconditioner: bool = True
    preconditioner_reuse_ratio: float = 4.0
    preconditioner_reuse_iterations: int = 40
    petsc_options: Mapping[str, Any] = field(default_factory=dict)
    snes_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"HeatSettings.scheme = {self.scheme!r}: must be one of {SCHEMES}")
        if self.top not in ("adiabatic", "convective"):
            raise ValueError(f"HeatSettings.top = {self.top!r}: 'adiabatic' or 'convective'")
        if self.boundary_resistance < 0 or self.heat_transfer_coefficient < 0:
            raise ValueError("HeatSettings: boundary resistance and h must be >= 0")
        if self.preconditioner_reuse_ratio < 1.0 or self.preconditioner_reuse_iterations < 1:
            raise ValueError(
                "HeatSettings: preconditioner_reuse_ratio must be >= 1 and "
                f"preconditioner_reuse_iterations >= 1, got {self.preconditioner_reuse_ratio}, "
                f"{self.preconditioner_reuse_iterations}"
            )

    @classmethod
    def from_device(cls, device: Device, **overrides: Any) -> HeatSettings:
        """The settings of a device's ``[heat]`` section (keyword arguments override them)."""
        h = device.heat
        values: dict[str, Any] = {
            "sink_temperature": h.sink_temperature_k,
            "top": h.top,
            "heat_transfer_coefficient": h.heat_transfer_coefficient_w_m2k,
            "boundary_resistance": h.boundary_resistance_m2k_w,
            "scheme": h.scheme,
            "first_step": h.first_step_ns * 1e-9,
            "step_growth": h.step_growth,
            "max_step": h.max_step_us * 1e-6,
            "nonlinear": h.nonlinear,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class HeatHistory:
    """Time series of a transient run (one entry per time level, t = 0 first).

    Energies are cumulative from the start of the run (stored: its change since then), in J
    (J/m^2 on ``stack`` meshes; the quarter domain's on ``device`` meshes).

    Attributes:
        times: Time levels (s).
        film_max_temperature: Maximum temperature over the film's nodes (K).
        film_mean_temperature: Mean temperature of the film over the spot (K).
        interface_temperature: Maximum temperature on the ``interface`` (K; NaN without one);
            with a boundary resistance, on its film side.
        energy_in: Pump heat put in.
        energy_stored: Heat stored, int rho c_p (T - T_sink) dV.
        energy_out: Heat out through the sink (``bottom``, ``side``).
        energy_out_top: Heat out through a convective top.
        scheme: The time integration scheme.
    """

    times: np.ndarray
    film_max_temperature: np.ndarray
    film_mean_temperature: np.ndarray
    interface_temperature: np.ndarray
    energy_in: np.ndarray
    energy_stored: np.ndarray
    energy_out: np.ndarray
    energy_out_top: np.ndarray
    scheme: str

    @classmethod
    def from_records(cls, times: np.ndarray, records: Any, scheme: str) -> HeatHistory:
        """The history of recorded rows, one per time level: film max, film mean, interface,
        energy in, stored, out and out through the top (the order of ``HeatProblem._record``)."""
        data = np.asarray(records, dtype=float)
        return cls(np.asarray(times, dtype=float).copy(), *(data[:, i] for i in range(7)), scheme)

    @property
    def balance_error(self) -> np.ndarray:
        """``in - stored - out - out_top`` at each time level (J or J/m^2)."""
        return self.energy_in - self.energy_stored - self.energy_out - self.energy_out_top


def time_grid(
    end_time: float,
    edges: tuple[float, ...] = (),
    *,
    first_step: float = 1e-9,
    growth: float = 1.1,
    max_step: float = 1e-3,
) -> np.ndarray:
    """Time levels from 0 to ``end_time`` (s): geometric steps that restart at every edge.

    Steps start at ``first_step`` and grow by ``growth`` up to ``max_step``; every edge (a pump
    switching time) is a time level, after which the steps start again at ``first_step``. A step
    that would leave a sliver before the next edge is merged with it (or the rest split in two).
    """
    if end_time <= 0 or first_step <= 0 or growth < 1.0 or max_step <= 0:
        raise ValueError(
            f"time_grid: need end_time, first_step, max_step > 0 and growth >= 1, got "
            f"{end_time=}, {first_step=}, {max_step=}, {growth=}"
        )
    stops = [e for e in sorted(set(edges)) if 0.0 < e < end_time] + [end_time]
    times = [0.0]
    t = 0.0
    for stop in stops:
        dt = min(first_step, max_step)
        while stop - t > 1e-12 * stop:
            remaining = stop - t
            if remaining <= 1.25 * dt:
                t = stop
            elif remaining < 2.0 * dt:
                t += 0.5 * remaining
            else:
                t += dt
            times.append(t)
            dt = min(dt * growth, max_step)
        t = stop
        times[-1] = stop
    return np.asarray(times)


def _vertical_axes(kind: str, gdim: int) -> tuple[int, ...]:
    """Which of (k_xx, k_yy, k_zz) go on the mesh's axes."""
    if kind == "axisymmetric":
        return (0, 2)
    return {1: (2,), 2: (0, 2), 3: (0, 1, 2)}[gdim]


def _solver_name(ksp: PETSc.KSP) -> str:
    """The linear solver of a configured KSP: the factorisation package of an LU/Cholesky
    preconditioner (``"mumps"``), else ``"<ksp type>+<pc type>"`` (``"cg+gamg"``)."""
    pc = ksp.getPC()
    pc_type = str(pc.getType())
    if pc_type in ("lu", "cholesky"):
        return str(pc.getFactorSolverType() or pc_type)
    return f"{ksp.getType()}+{pc_type}"


def _drop_zeros(matrix: PETSc.Mat) -> PETSc.Mat:
    """A copy of an assembled AIJ matrix without its stored zeros (the diagonal is kept)."""
    indptr, columns, values = matrix.getValuesCSR()
    first = matrix.getOwnershipRange()[0]
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    keep = (values != 0.0) | (columns == rows + first)
    counts = np.bincount(rows[keep], minlength=len(indptr) - 1)
    pointers = np.concatenate([[0], np.cumsum(counts)]).astype(indptr.dtype)
    compact = PETSc.Mat().createAIJ(
        matrix.getSizes(), csr=(pointers, columns[keep], values[keep]), comm=matrix.getComm()
    )
    compact.assemble()
    return compact


class HeatProblem:
    """Heat conduction on a tagged mesh: transient steps, runs and steady states.

    The constructor sets the problem up in named steps (function space and constants, the sink
    condition, the forms, the monitors, the storage matrix, the linear or Newton solver, the
    energy bookkeeping); :meth:`destroy` releases the PETSc objects it created, and the problem
    is a context manager that does so on leaving the block::

        with HeatProblem(mesh_data, materials, source) as problem:
            history = problem.run(2e-6)

    Attributes:
        u: Temperature rise above the sink, T - T_sink (K), at the current time.
        u_n: The rise at the previous time level; ``u_nn`` the one before.
        t: Current time (s), a ``fem.Constant`` (sources given as functions see ``t_{n+1}``).
        dt: Current step (s), a ``fem.Constant``.
        V: The Lagrange space of ``u``.
        petsc_options_prefix: Options prefix of the linear solver; the Newton solver's is this
            followed by ``snes_``.
        linear_solver: The linear solver in effect, ``"mumps"`` (or another LU/Cholesky
            package) for a direct solver, else ``"<ksp>+<pc>"`` (``"cg+gamg"``); for Newton, that
            of its steps.
        krylov_iterations: Iterations of every linear solve so far (1 per MUMPS solve; none are
            recorded for Newton solves).
        preconditioner_builds: Number of preconditioner set-ups (factorisations for MUMPS).
    """

    def __init__(
        self,
        mesh_data: MeshData,
        materials: Mapping[str, ThermalMaterial],
        source: HeatSource | SourceFunction,
        settings: HeatSettings | None = None,
        *,
        initial: Callable[[np.ndarray], np.ndarray] | None = None,
        petsc_options_prefix: str = "heat_",
    ) -> None:
        """Set up the forms, matrices and solvers.

        Args:
            mesh_data: The mesh with regions and boundaries (kind ``stack``, ``axisymmetric``
                or ``device``).
            materials: Region name -> thermal properties, for every region of the mesh.
            source: The pump (:class:`~physics.source.HeatSource`) or a function ``Q(x, t)``
                (W/m^3) of the UFL spatial coordinate and the time constant.
            settings: Boundary conditions, stepping and solvers (default ``HeatSettings()``).
            initial: Initial rise T - T_sink (K) as a function of coordinates (default 0).
            petsc_options_prefix: Options prefix of the linear solver (``-heat_ksp_monitor`` on
                the command line); the Newton solver's is this followed by ``snes_``.
        """
        self.mesh_data = mesh_data
        self.settings = settings if settings is not None else HeatSettings()
        self.source = source
        self.comm: MPI.Comm = mesh_data.mesh.comm
        self.petsc_options_prefix = petsc_options_prefix
        self._petsc_objects: list[Any] = []
        with dolfinx.common.Timer(HEAT_SETUP_TIMER):
            sinks = self._check_inputs(materials)
            self._create_function_space(initial)
            self._create_sink_condition(sinks)
            self._define_materials(materials)
            self._define_top()
            spot = self._define_source()
            self._create_monitors(spot)
            residual, mass, capacity = self._define_forms()
            self._create_storage_matrix(mass, capacity)
            self._create_work_vectors()
            direct = self._use_direct_solver()
            if self.nonlinear:
                self._create_nonlinear_solver(residual, direct)
            else:
                self._create_linear_solver(mass, direct)
            self._create_energy_bookkeeping()
        logger.debug(
            "heat problem: %d unknowns, %s, %s solver",
            self._size,
            "nonlinear" if self.nonlinear else "linear",
            self.linear_solver,
        )

    @classmethod
    def from_device(
        cls,
        device: Device,
        mesh_data: MeshData,
        materials: Mapping[str, Any],
        *,
        petsc_options_prefix: str = "heat_",
        **overrides: Any,
    ) -> HeatProblem:
        """The heat problem of a device on one of its meshes, with the materials given.

        The materials are an argument, not derived here: the homogenised grating's conductivity
        depends on ``heat.grating_conductivity`` through cell problems on meshes of their own,
        which the composition layer builds (``cqdlaser.heat_problem(device)`` composes mesh,
        materials and this problem as ``cqdlaser heat`` does).

        Args:
            device: The device description (``[pump]`` and ``[heat]`` are used).
            mesh_data: A ``stack`` (thermal), ``axisymmetric`` or ``device`` mesh of it.
            materials: Region name -> material.
            petsc_options_prefix: Options prefix of the solvers (see :class:`HeatProblem`).
            overrides: ``HeatSettings`` fields to override.
        """
        return cls(
            mesh_data,
            materials,
            source_from_device(device, materials),
            HeatSettings.from_device(device, **overrides),
            petsc_options_prefix=petsc_options_prefix,
        )

    # -- set-up steps ------------------------------------------------------------------------

    def _own(self, obj: Any) -> Any:
        """Record a PETSc object created here, for :meth:`destroy`; return it."""
        self._petsc_objects.append(obj)
        return obj

    def _check_inputs(self, materials: Mapping[str, ThermalMaterial]) -> list[str]:
        """Every region has a material and the mesh has a sink; return the sink boundaries."""
        mesh_data = self.mesh_data
        missing = sorted(set(mesh_data.regions) - set(materials))
        if missing:
            raise KeyError(f"no material for regions {missing} (given: {sorted(materials)})")
        sinks = [name for name in SINKS if name in mesh_data.boundaries]
        if not sinks:
            raise KeyError(f"the mesh has no sink boundary {SINKS}: {sorted(mesh_data.boundaries)}")
        return sinks

    def _create_function_space(self, initial: Callable[[np.ndarray], np.ndarray] | None) -> None:
        """The space, the rise at three time levels, the time constants and the integral weight."""
        msh = self.mesh_data.mesh
        self.V = V = fem.functionspace(msh, ("Lagrange", self.settings.element_degree))
        self.u = fem.Function(V, name="temperature_rise")
        self.u_n = fem.Function(V)
        self.u_nn = fem.Function(V)
        if initial is not None:
            self.u_n.interpolate(initial)
            self.u.x.array[:] = self.u_n.x.array
        scalar = dolfinx.default_scalar_type
        self.t = fem.Constant(msh, scalar(0.0))
        self.dt = fem.Constant(msh, scalar(self.settings.first_step))
        self._c = [fem.Constant(msh, scalar(0.0)) for _ in range(3)]  # a0/dt, -a1/dt, -a2/dt
        self._factor = fem.Constant(msh, scalar(1.0))
        # Factor on the pump heat of the next steps, set by the caller between steps (less heat
        # while the film lases); the energy bookkeeping includes it.
        self.source_scale = 1.0
        self._dt_prev: float | None = None
        self._have_history = False
        x = ufl.SpatialCoordinate(msh)
        self.weight = 2.0 * math.pi * x[0] if self.mesh_data.axisymmetric else ufl.as_ufl(1.0)
        self._size = V.dofmap.index_map.size_global * V.dofmap.index_map_bs

    def _create_sink_condition(self, sinks: list[str]) -> None:
        """``u = 0`` on the sink boundaries, and the indicator of the sink's dofs."""
        V = self.V
        sink_dofs = boundary_dofs(V, self.mesh_data, sinks)
        self.bcs = [fem.dirichletbc(dolfinx.default_scalar_type(0.0), sink_dofs, V)]
        self._sink_indicator = fem.Function(V)
        self._sink_indicator.x.array[sink_dofs] = 1.0

    def _define_materials(self, materials: Mapping[str, ThermalMaterial]) -> None:
        """Per region: its tag, conductivity on the mesh's axes, heat capacity and exponent n."""
        msh = self.mesh_data.mesh
        settings = self.settings
        scalar = dolfinx.default_scalar_type
        self._axes = _vertical_axes(self.mesh_data.kind, msh.geometry.dim)
        self._resistance = None
        if settings.boundary_resistance > 0.0:
            self._resistance = _boundary_resistance_field(
                self.mesh_data, settings.boundary_resistance
            )
        self._region_terms = []
        for name, tag in self.mesh_data.regions.items():
            mat = materials[name]
            k = fem.Constant(
                msh, np.array([mat.thermal_conductivity[i] for i in self._axes], scalar)
            )
            c = fem.Constant(msh, scalar(mat.volumetric_heat_capacity))
            n = float(mat.conductivity_exponent) if settings.nonlinear else 0.0
            self._region_terms.append((tag, k, c, n))
        self.nonlinear = any(n != 0.0 for _, _, _, n in self._region_terms)

    def _conductivity(self, k: fem.Constant, n: float) -> Any:
        """``diag(k) (T / 295 K)^n``, the through-plane part in series with a boundary
        resistance where there is one."""
        temperature = self.u + self.settings.sink_temperature
        factor = (temperature / REFERENCE_TEMPERATURE) ** n if n != 0.0 else 1.0
        comps = [k[i] * factor for i in range(len(self._axes))]
        if self._resistance is not None:
            comps[-1] = comps[-1] / (1.0 + comps[-1] * self._resistance)
        return ufl.diag(ufl.as_vector(comps))

    def _define_top(self) -> None:
        """The convective top: its coefficient h, ambient rise and measure (if convective)."""
        settings = self.settings
        mesh_data = self.mesh_data
        convective = settings.top == "convective" and settings.heat_transfer_coefficient > 0
        coefficient = settings.heat_transfer_coefficient if convective else 0.0
        self._h = fem.Constant(mesh_data.mesh, dolfinx.default_scalar_type(coefficient))
        ambient = settings.ambient_temperature
        self._ambient_rise = 0.0 if ambient is None else ambient - settings.sink_temperature
        self._ds_top = None
        if "top" in mesh_data.boundaries:
            self._ds_top = mesh_data.ds()(mesh_data.boundary("top"))
        self._convective = convective and self._ds_top is not None

    def _define_source(self) -> Any:
        """The source terms at full pump (waveform factor 1), or ``Q(x, t)`` given as a
        function; return the spot indicator of the film-mean monitor."""
        mesh_data = self.mesh_data
        msh = mesh_data.mesh
        settings = self.settings
        qmeta = (
            {}
            if settings.quadrature_degree is None
            else {"quadrature_degree": settings.quadrature_degree}
        )
        dx = mesh_data.dx()
        v = ufl.TestFunction(self.V)
        w = self.weight
        if isinstance(self.source, HeatSource):
            densities = self.source.density(mesh_data)
            q_terms = [
                (q, dx(mesh_data.region(name), metadata=qmeta)) for name, q in densities.items()
            ]
            self._time_dependent_source = False
            spot = self.source.spot_indicator(mesh_data)
        else:
            x = ufl.SpatialCoordinate(msh)
            q_terms = [(self.source(x, self.t), ufl.Measure("dx", domain=msh, metadata=qmeta))]
            self._time_dependent_source = True
            spot = ufl.as_ufl(1.0)
        self._source_ufl = sum(q * v * w * dxq for q, dxq in q_terms)
        # The power is the load summed over the test functions (a partition of unity), with the
        # load's quadrature: the heat the discrete equations receive, so the energy balance
        # holds also where the quadrature does not resolve a source's edges.
        one = fem.Function(self.V)
        one.x.array[:] = 1.0
        self._source_rate = fem.form(ufl.replace(self._source_ufl, {v: one}))
        self._source_power = None if self._time_dependent_source else self._sum(self._source_rate)
        return spot

    def _create_monitors(self, spot: Any) -> None:
        """Film nodes (maximum), interface nodes (maximum) and the film mean over the spot."""
        mesh_data = self.mesh_data
        msh = mesh_data.mesh
        V = self.V
        tdim = msh.topology.dim
        w = self.weight
        dx = mesh_data.dx()
        v = ufl.TestFunction(V)
        film = "film" if "film" in mesh_data.regions else None
        film_cells = (
            mesh_data.cell_tags.find(mesh_data.region(film))
            if film is not None
            else np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
        )
        self._film_dofs = np.unique(V.dofmap.list[film_cells].ravel())
        self._interface_dofs = None
        if "interface" in mesh_data.boundaries:
            self._interface_dofs = boundary_dofs(V, mesh_data, ["interface"])
        dx_film = dx(mesh_data.region(film)) if film is not None else dx
        # Linear functionals of u are kept as vectors: a dot product per step, no assembly.
        self._film_mean = self._own(fem_petsc.assemble_vector(fem.form(spot * v * w * dx_film)))
        self._film_mean.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        self._film_spot_measure = self._sum(fem.form(spot * w * dx_film))

    def _define_forms(self) -> tuple[Any, Any, Any]:
        """The residual without the storage term (conduction, convective top, pump), the
        storage (mass) and capacity forms, and the heat flows through the sink and the top.

        Returns:
            The residual, mass and capacity forms (UFL).
        """
        mesh_data = self.mesh_data
        V = self.V
        w = self.weight
        dx = mesh_data.dx()
        v = ufl.TestFunction(V)
        du = ufl.TrialFunction(V)
        c0, c1, c2 = self._c
        residual = -self._factor * self._source_ufl
        mass = 0
        capacity = 0
        history = c0 * self.u - c1 * self.u_n - c2 * self.u_nn
        mass_on_sink = 0
        for tag, k, c, n in self._region_terms:
            kk = self._conductivity(k, n)
            residual += ufl.inner(kk * ufl.grad(self.u), ufl.grad(v)) * w * dx(tag)
            mass += c * du * v * w * dx(tag)
            capacity += c * v * w * dx(tag)
            mass_on_sink += c * history * self._sink_indicator * w * dx(tag)
        self._top_rate = None
        if self._convective:
            h, ambient_rise, ds_top = self._h, self._ambient_rise, self._ds_top
            residual += h * (self.u - ambient_rise) * v * w * ds_top
            self._top_rate = fem.form(h * (self.u - ambient_rise) * w * ds_top)
        sink_rate = -ufl.replace(residual, {v: self._sink_indicator})
        if not self.settings.lumped_mass:
            sink_rate -= mass_on_sink
        self._sink_rate = fem.form(sink_rate)
        return residual, mass, capacity

    def _create_storage_matrix(self, mass: Any, capacity: Any) -> None:
        """The storage matrix, consistent or lumped by row sums (``int C phi_i w``, which keeps
        the discrete maximum principle for the tiny first steps), zero on the sink's rows and
        columns; the capacity vector and the stored-energy functional."""
        self._M = self._own(fem_petsc.assemble_matrix(fem.form(mass), bcs=self.bcs, diag=0.0))
        self._M.assemble()
        self._capacity = self._own(fem_petsc.assemble_vector(fem.form(capacity)))
        self._capacity.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        # int C u w dV = sum_i u_i int C phi_i w dV
        self._stored = self._own(self._capacity.copy())
        fem_petsc.set_bc(self._capacity, self.bcs)
        if self.settings.lumped_mass:
            self._M.zeroEntries()
            self._M.setDiagonal(self._capacity)
            self._M.assemble()

    def _create_work_vectors(self) -> None:
        """The storage history and right-hand side vectors, and the solver statistics."""
        self.preconditioner_builds = 0
        self.krylov_iterations: list[int] = []
        self._history = self._own(fem_petsc.create_vector(self.V))
        self._b = self._own(fem_petsc.create_vector(self.V))

    def _use_direct_solver(self) -> bool:
        """MUMPS for at most ``direct_max_dofs`` unknowns (where PETSc has it), else CG + GAMG."""
        small = self._size <= self.settings.direct_max_dofs
        return small and PETSc.Sys().hasExternalPackage("mumps")

    def _create_nonlinear_solver(self, residual: Any, direct: bool) -> None:
        """Newton (SNES, prefix ``<prefix>snes_``) with our residual and Jacobian callbacks."""
        base = DEFAULT_HEAT_DIRECT_OPTIONS if direct else DEFAULT_HEAT_OPTIONS
        settings = self.settings
        self._options = {**DEFAULT_HEAT_SNES_OPTIONS, **base, **dict(settings.snes_options)}
        self._options.pop("ksp_initial_guess_nonzero", None)
        du = ufl.TrialFunction(self.V)
        self._F_form = fem.form(residual)
        self._J_form = fem.form(ufl.derivative(residual, self.u, du))
        self._J = self._own(fem_petsc.create_matrix(self._J_form))
        self._x = self._own(fem_petsc.create_vector(self.V))
        self._snes = self._own(PETSc.SNES().create(self.comm))
        self._snes.setFunction(self._snes_residual, self._b)
        self._snes.setJacobian(self._snes_jacobian, self._J)
        configure(self._snes, self._snes_prefix, self._options)
        self.linear_solver = _solver_name(self._snes.getKSP())

    @property
    def _snes_prefix(self) -> str:
        return f"{self.petsc_options_prefix}snes_"

    def _stiffness_form(self, metadata: dict[str, Any] | None = None) -> Any:
        """The conduction (and convective top) bilinear form at k(295 K), with ``metadata``
        on every integral."""
        mesh_data = self.mesh_data
        w = self.weight
        dx = mesh_data.dx()
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        stiff = sum(
            ufl.inner(self._conductivity(k, 0.0) * ufl.grad(du), ufl.grad(v))
            * w
            * (dx(tag) if metadata is None else dx(tag, metadata=metadata))
            for tag, k, _, _ in self._region_terms
        )
        if self._convective:
            if metadata is None:
                ds_top = self._ds_top
            else:
                ds_top = mesh_data.ds()(mesh_data.boundary("top"), metadata=metadata)
            stiff += self._h * du * v * w * ds_top
        return stiff

    def _create_linear_solver(self, mass: Any, direct: bool) -> None:
        """The linear solver: the stiffness and operator matrices, the sink's affine heat flow,
        the preconditioning matrix, the KSP (prefix ``<prefix>``) and the load vectors."""
        base = DEFAULT_HEAT_DIRECT_OPTIONS if direct else DEFAULT_HEAT_OPTIONS
        self._options = {**base, **dict(self.settings.petsc_options)}
        stiff = self._stiffness_form()
        self._K = self._own(fem_petsc.assemble_matrix(fem.form(stiff), bcs=self.bcs, diag=1.0))
        self._K.assemble()
        self._K_diagonal = self._own(self._K.getDiagonal())
        self._create_sink_flow(stiff, mass)
        self._A = self._own(self._K.duplicate(copy=True))
        self._A_coefficient = 0.0
        self._P = self._create_vertex_preconditioner(direct)
        self._create_ksp()
        self._create_load_vectors()

    def _create_sink_flow(self, stiff: Any, mass: Any) -> None:
        """The sink's heat flow, affine in u: ``-a(u, 1_sink) + s int Q 1_sink w + ...``."""
        indicator = self._sink_indicator
        du = ufl.TrialFunction(self.V)
        v = ufl.TestFunction(self.V)
        self._sink_stiffness = self._own(
            fem_petsc.assemble_vector(fem.form(ufl.replace(stiff, {du: indicator})))
        )
        self._sink_stiffness.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        self._sink_source = fem.form(ufl.replace(self._source_ufl, {v: indicator}))
        self._sink_source_value = self._sum(self._sink_source)
        self._sink_ambient = 0.0
        if self._convective:
            flow = self._h * self._ambient_rise * indicator * self.weight * self._ds_top
            self._sink_ambient = self._sum(fem.form(flow))
        self._sink_mass = None
        if not self.settings.lumped_mass:
            self._sink_mass = self._own(
                fem_petsc.assemble_vector(fem.form(ufl.replace(mass, {du: indicator})))
            )
            self._sink_mass.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)

    def _create_vertex_preconditioner(self, direct: bool) -> PETSc.Mat | None:
        """The preconditioning matrix ``K_v + (a0/dt) M_lumped`` on quadrilateral and hexahedral
        cells of degree 1 with an iterative solver (see the module docstring), else None (the
        operator itself)."""
        settings = self.settings
        tensor = self.mesh_data.mesh.topology.cell_type in (
            dolfinx.mesh.CellType.quadrilateral,
            dolfinx.mesh.CellType.hexahedron,
        )
        if (
            direct
            or not settings.vertex_preconditioner
            or not tensor
            or settings.element_degree != 1
            or self._options.get("ksp_type") == "preonly"
        ):
            return None
        vertex = {"quadrature_rule": "GLL", "quadrature_degree": 1}
        stiffness = fem_petsc.assemble_matrix(
            fem.form(self._stiffness_form(vertex)), bcs=self.bcs, diag=1.0
        )
        stiffness.assemble()
        P = self._own(_drop_zeros(stiffness))
        stiffness.destroy()
        self._P_stiffness_diagonal = self._own(P.getDiagonal())
        return P

    def _create_ksp(self) -> None:
        """The KSP on ``A`` (preconditioned from ``P`` where there is one), prefix
        ``<prefix>``, with the state of preconditioner reuse."""
        self._ksp = self._own(PETSc.KSP().create(self.comm))
        self._ksp.setOperators(self._A, self._A if self._P is None else self._P)
        configure(self._ksp, self.petsc_options_prefix, self._options)
        self.linear_solver = _solver_name(self._ksp)
        # Without Krylov iterations (LU) a kept factorisation would give wrong answers.
        self._reuse = self._ksp.getType() != PETSc.KSP.Type.PREONLY
        self._ksp.getPC().setReusePreconditioner(True)
        self._pc_coefficient: float | None = None
        self._fresh_preconditioner = False
        self._reused_iterations = 0

    def _create_load_vectors(self) -> None:
        """The pump's load vector at full pump, and the ambient's of a convective top."""
        self._source_form = fem.form(self._source_ufl)
        self._F_source = self._own(fem_petsc.assemble_vector(self._source_form))
        self._F_source.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        self._F_ambient = None
        if self._convective and self._ambient_rise != 0.0:
            v = ufl.TestFunction(self.V)
            load = self._h * self._ambient_rise * v * self.weight * self._ds_top
            self._F_ambient = self._own(fem_petsc.assemble_vector(fem.form(load)))
            self._F_ambient.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)

    def _create_energy_bookkeeping(self) -> None:
        """Cumulative pump heat in and heat out (J), and the boundary heat flows now (W)."""
        self.energy_in = 0.0
        self.energy_out = 0.0
        self.energy_out_top = 0.0
        self._rates = self._boundary_rates()

    # -- PETSc objects -----------------------------------------------------------------------

    def destroy(self) -> None:
        """Release every PETSc object the problem created (solvers, matrices, vectors).

        Collective. The problem cannot solve afterwards; ``u`` and the other functions stay.
        """
        for obj in reversed(self._petsc_objects):
            obj.destroy()
        self._petsc_objects.clear()

    def __enter__(self) -> HeatProblem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- global quantities -------------------------------------------------------------------

    def _sum(self, form: fem.Form) -> float:
        return global_sum(form)

    def _max(self, dofs: np.ndarray | None) -> float:
        if dofs is None:
            return math.nan
        return global_max(self.u, dofs) + self.settings.sink_temperature

    def temperature(self) -> fem.Function:
        """A new function holding the temperature ``T = u + T_sink`` (K), for output."""
        temperature = fem.Function(self.V, name="temperature")
        temperature.x.array[:] = self.u.x.array + self.settings.sink_temperature
        return temperature

    def film_max_temperature(self) -> float:
        """Maximum temperature over the film's nodes (K)."""
        return self._max(self._film_dofs)

    def film_mean_temperature(self) -> float:
        """Mean temperature of the film over the spot (K)."""
        mean = self._film_mean.dot(self.u.x.petsc_vec) / self._film_spot_measure
        return mean + self.settings.sink_temperature

    def interface_temperature(self) -> float:
        """Maximum temperature on the ``interface`` (K), NaN if the mesh has none."""
        return self._max(self._interface_dofs)

    def stored_energy(self) -> float:
        """``int rho c_p (T - T_sink) w dV`` (J, or J/m^2 on stacks)."""
        return float(self._stored.dot(self.u.x.petsc_vec))

    def _boundary_rates(self) -> tuple[float, float]:
        """Heat flow (W) out through the sink and through a convective top, now."""
        top = 0.0 if self._top_rate is None else self._sum(self._top_rate)
        if self.nonlinear:
            return self._sum(self._sink_rate), top
        source = (
            self._sum(self._sink_source) if self._time_dependent_source else self._sink_source_value
        )
        u = self.u.x.petsc_vec
        sink = float(self._factor.value) * source + self._sink_ambient - self._sink_stiffness.dot(u)
        if self._sink_mass is not None:
            c0, c1, c2 = (float(c.value) for c in self._c)
            m = self._sink_mass
            sink -= c0 * m.dot(u) - c1 * m.dot(self.u_n.x.petsc_vec)
            sink += c2 * m.dot(self.u_nn.x.petsc_vec)
        return sink, top

    def source_power(self) -> float:
        """``int Q w dV`` at full pump (at the current ``t`` for a source function) (W)."""
        if self._source_power is not None:
            return self._source_power
        return self._sum(self._source_rate)

    # -- solves ------------------------------------------------------------------------------

    def _history_vector(self) -> PETSc.Vec:
        """``c1 u^n + c2 u^{n-1}`` (the known part of the storage term)."""
        hist = self._history
        self.u_n.x.petsc_vec.copy(hist)
        hist.scale(float(self._c[1].value))
        hist.axpy(float(self._c[2].value), self.u_nn.x.petsc_vec)
        return hist

    def _snes_residual(self, snes: PETSc.SNES, x: PETSc.Vec, b: PETSc.Vec) -> None:
        x.ghostUpdate(PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD)
        x.copy(self.u.x.petsc_vec)
        self.u.x.scatter_forward()
        with b.localForm() as loc:
            loc.set(0.0)
        fem_petsc.assemble_vector(b, self._F_form)
        b.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        # Storage term M (c0 x - c1 u^n - c2 u^{n-1}); M vanishes on the sink's rows.
        stor = self._history_vector()
        stor.scale(-1.0)
        stor.axpy(float(self._c[0].value), x)
        self._M.multAdd(stor, b, b)
        # Sink rows: b = x (the iterates keep u = 0 there).
        fem_petsc.set_bc(b, self.bcs, x, -1.0)

    def _snes_jacobian(self, snes: PETSc.SNES, x: PETSc.Vec, J: PETSc.Mat, P: PETSc.Mat) -> None:
        J.zeroEntries()
        fem_petsc.assemble_matrix(J, self._J_form, bcs=self.bcs, diag=1.0)
        J.assemble()
        subset = PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN
        J.axpy(float(self._c[0].value), self._M, structure=subset)

    def _unconverged(self, what: str) -> SolverError:
        """The error of the Newton (``what = "Newton"``) or linear solver."""
        if what == "Newton":
            solver, enum, prefix = self._snes, PETSc.SNES.ConvergedReason, self._snes_prefix
        else:
            solver, enum, prefix = self._ksp, PETSc.KSP.ConvergedReason, self.petsc_options_prefix
        return SolverError.of(f"heat {what} solver", solver, enum, prefix, self._options)

    def _solve(self) -> None:
        """Solve the step (or steady) equations for ``u``, from its current value."""
        if self.nonlinear:
            self._solve_newton()
            return
        coefficient = float(self._c[0].value)
        self._update_operator(coefficient)
        rebuild = self._preconditioner_stale(coefficient)
        if rebuild:
            self._prepare_preconditioner(coefficient)
        self._solve_linear(self._assemble_rhs(), rebuild)

    def _solve_newton(self) -> None:
        """One Newton solve (SNES) from the current ``u``."""
        x = self._x
        self.u.x.petsc_vec.copy(x)
        try:
            with options_set(self._snes_prefix, self._options):
                self._snes.solve(None, x)
        except PETSC_FAILURES as error:
            raise self._unconverged("Newton") from error
        if self._snes.getConvergedReason() <= 0:
            raise self._unconverged("Newton")
        self._check_newton_residual(x)
        x.copy(self.u.x.petsc_vec)
        self.u.x.scatter_forward()

    def _check_newton_residual(self, x: PETSc.Vec) -> None:
        """Check the Newton solution by its true residual: ``||F(x)|| / ||F(0)||`` (``F(0)`` is
        the step's load, the right-hand side ``b`` of the linear case) within ``100 snes_rtol``
        (at least :data:`~physics._petsc.DIRECT_RESIDUAL_FLOOR`) or ``100 snes_atol``.

        Newton may stop on a small step (``snes_stol``) when its linear solves are wrong; this
        tells such a stop from a solution. Overwrites ``u``.

        Raises:
            SolverError: The residual is too large, with the options in effect.
        """
        residual = self._work_vector()
        self._snes_residual(self._snes, x, residual)
        norm = residual.norm()
        zero = self._history.duplicate()
        try:
            zero.set(0.0)
            self._snes_residual(self._snes, zero, residual)
        finally:
            zero.destroy()
        load = residual.norm()
        rtol, atol, _, _ = self._snes.getTolerances()
        bound = max(KRYLOV_RESIDUAL_FACTOR * rtol, DIRECT_RESIDUAL_FLOOR) * load
        if norm <= max(bound, KRYLOV_RESIDUAL_FACTOR * atol):
            return
        relative = norm / load if load > 0.0 else norm
        raise SolverError.failed_check(
            "heat Newton solver",
            self._snes_prefix,
            "TRUE_RESIDUAL",
            options_in_effect(self._snes_prefix, self._options, self._snes),
            f", ||F(u)|| / ||F(0)|| = {relative:.3g}",
        )

    def _work_vector(self) -> PETSc.Vec:
        """A vector of the unknowns for the solution checks (made on first use)."""
        if getattr(self, "_check_vector", None) is None:
            self._check_vector = self._own(self._history.duplicate())
        return self._check_vector

    def _update_operator(self, coefficient: float) -> None:
        """Re-form ``A = K + coefficient M`` if the coefficient changed (no assembly)."""
        if coefficient == self._A_coefficient:
            return
        if self.settings.lumped_mass:  # only the diagonal differs from K's
            diagonal = self._K_diagonal.copy()
            diagonal.axpy(coefficient, self._capacity)
            self._A.setDiagonal(diagonal)
            diagonal.destroy()
        else:
            self._K.copy(self._A, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
            self._A.axpy(coefficient, self._M, structure=PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN)
        self._A_coefficient = coefficient

    def _assemble_rhs(self) -> PETSc.Vec:
        """``M (c1 u^n + c2 u^{n-1}) + s F_source + F_ambient``, zero on the sink."""
        if self._time_dependent_source:
            with self._F_source.localForm() as loc:
                loc.set(0.0)
            fem_petsc.assemble_vector(self._F_source, self._source_form)
            self._F_source.ghostUpdate(PETSc.InsertMode.ADD, PETSc.ScatterMode.REVERSE)
        b = self._b
        self._M.mult(self._history_vector(), b)
        b.axpy(float(self._factor.value), self._F_source)
        if self._F_ambient is not None:
            b.axpy(1.0, self._F_ambient)
        fem_petsc.set_bc(b, self.bcs)
        return b

    def _solve_linear(self, b: PETSc.Vec, rebuild: bool) -> None:
        """Solve ``A u = b`` (KSP), setting the preconditioner up again if ``rebuild``."""
        pc = self._ksp.getPC()
        try:
            if rebuild:
                # The set-up happens in the solve; multigrid levels read their options then.
                pc.setReusePreconditioner(False)
                with options_set(self.petsc_options_prefix, self._options):
                    self._ksp.solve(b, self.u.x.petsc_vec)
            else:
                self._ksp.solve(b, self.u.x.petsc_vec)
        except PETSC_FAILURES as error:
            raise self._unconverged("linear") from error
        finally:
            pc.setReusePreconditioner(True)
        if self._ksp.getConvergedReason() <= 0:
            raise self._unconverged("linear")
        self._last_residual = check_linear_solve(
            self._ksp,
            b,
            self.u.x.petsc_vec,
            solver="heat linear solver",
            prefix=self.petsc_options_prefix,
            options=self._options,
            work=self._work_vector(),
        )
        iterations = self._ksp.getIterationNumber()
        self.krylov_iterations.append(iterations)
        if not self._fresh_preconditioner:
            self._reused_iterations = iterations
        self._fresh_preconditioner = False
        self.u.x.scatter_forward()

    def _preconditioner_stale(self, coefficient: float) -> bool:
        """Whether to rebuild the preconditioner for the operator ``K + coefficient M``."""
        built = self._pc_coefficient
        if built is None or (built == 0.0) != (coefficient == 0.0):
            return True
        if built == coefficient:
            return False
        if not self._reuse:
            return True
        s = self.settings
        if built != 0.0 and max(coefficient / built, built / coefficient) > (
            s.preconditioner_reuse_ratio * (1.0 + 1e-12)
        ):
            return True
        return self._reused_iterations > s.preconditioner_reuse_iterations

    def _prepare_preconditioner(self, coefficient: float) -> None:
        """Mark the preconditioner for a set-up for ``K + coefficient M`` in the next solve."""
        if self._P is not None:
            diagonal = self._P_stiffness_diagonal.copy()
            diagonal.axpy(coefficient, self._capacity)
            self._P.setDiagonal(diagonal)
            diagonal.destroy()
        self._pc_coefficient = coefficient
        self._fresh_preconditioner = True
        self._reused_iterations = 0
        self.preconditioner_builds += 1

    def step(self, dt: float | None = None, *, restart: bool = False) -> None:
        """Advance by one step from ``t`` to ``t + dt`` (s).

        Args:
            dt: The step (s); default the current value of ``self.dt``.
            restart: Take a backward-Euler step (as after a pump edge) even with BDF2.
        """
        dt = float(self.dt.value) if dt is None else float(dt)
        t0 = float(self.t.value)
        t1 = t0 + dt
        bdf2 = (
            self.settings.scheme == "bdf2"
            and not restart
            and self._have_history
            and self._dt_prev is not None
        )
        if bdf2:
            assert self._dt_prev is not None
            omega = dt / self._dt_prev
            a0 = (1.0 + 2.0 * omega) / (1.0 + omega)
            a1 = -(1.0 + omega)
            a2 = omega**2 / (1.0 + omega)
        else:
            a0, a1, a2 = 1.0, -1.0, 0.0
        self.dt.value = dt
        self._c[0].value = a0 / dt
        self._c[1].value = -a1 / dt
        self._c[2].value = -a2 / dt
        self.t.value = t1
        if isinstance(self.source, HeatSource):
            self._factor.value = self.source_scale * self.source.waveform.mean_factor(t0, t1)
        else:
            self._factor.value = self.source_scale
        # Initial guess: linear extrapolation of the last two levels (none across a pump edge).
        if self._have_history and self._dt_prev is not None and not restart:
            ratio = dt / self._dt_prev
            self.u.x.array[:] = (1.0 + ratio) * self.u_n.x.array - ratio * self.u_nn.x.array
        else:
            self.u.x.array[:] = self.u_n.x.array
        self._solve()
        heat_in = dt * float(self._factor.value) * self.source_power()
        self.energy_in += heat_in
        rates = self._boundary_rates()
        self._check_step_balance((a0, a1, a2), heat_in, dt, rates)
        if bdf2:  # trapezoidal in time, as BDF2 is second order
            self.energy_out += 0.5 * dt * (self._rates[0] + rates[0])
            self.energy_out_top += 0.5 * dt * (self._rates[1] + rates[1])
        else:  # the rectangle rule makes the backward-Euler balance exact
            self.energy_out += dt * rates[0]
            self.energy_out_top += dt * rates[1]
        self._rates = rates
        self.u_nn.x.array[:] = self.u_n.x.array
        self.u_n.x.array[:] = self.u.x.array
        self._dt_prev = dt
        self._have_history = True

    def _check_step_balance(
        self,
        coefficients: tuple[float, float, float],
        heat_in: float,
        dt: float,
        rates: tuple[float, float],
    ) -> None:
        """Check the step's discrete energy balance (before ``u_n``, ``u_nn`` move on).

        Summed over the unknowns, the step's equations say ``a0 S(u) + a1 S(u^n) + a2 S(u^{n-1})
        = dt (P - q_sink - q_top)``, ``S`` the stored energy, ``P`` the pump power of the step and
        ``q`` the boundary heat flows at the new level: exactly for backward Euler (it is the step
        of ``HeatHistory.balance_error``) and BDF2 alike, to solver tolerance. A wrong solution
        breaks it. The defect is kept in ``_step_balance`` (J, with the sum of the terms'
        magnitudes) for :meth:`run`.

        Raises:
            SolverError: The defect exceeds :data:`ENERGY_BALANCE_RTOL` times the sum of the
                terms' magnitudes, with the options in effect.
        """
        levels = (self.u, self.u_n, self.u_nn)
        terms = [
            c * float(self._stored.dot(f.x.petsc_vec))
            for c, f in zip(coefficients, levels, strict=True)
        ]
        terms += [-heat_in, dt * rates[0], dt * rates[1]]
        defect = math.fsum(terms)
        scale = math.fsum(abs(term) for term in terms)
        self._step_balance = (defect, scale)
        if abs(defect) <= ENERGY_BALANCE_RTOL * scale:
            return
        raise self._balance_error(
            f", the step to t = {float(self.t.value):.6g} s: |defect| / scale = "
            f"{abs(defect) / scale:.3g} > {ENERGY_BALANCE_RTOL:g}"
        )

    def _check_run_balance(
        self, defects: list[tuple[float, float]], energies: np.ndarray, stored: float
    ) -> None:
        """Check the run's energy balance: the sum of the steps' discrete defects (for backward
        Euler, ``HeatHistory.balance_error`` at the end) within :data:`ENERGY_BALANCE_RTOL` of
        the run's energies (heat in, stored, out; the stored energy at the start), plus the
        round-off of the steps' sums.

        BDF2's ``balance_error`` also holds its trapezoidal heat-out quadrature, a second-order
        truncation error and no failure, so the check is on the scheme's own balance.

        Raises:
            SolverError: The balance fails, with the options in effect.
        """
        if not defects:
            return
        total = math.fsum(d for d, _ in defects)
        energy = max(float(np.max(np.abs(energies))), abs(stored))
        roundoff = 64.0 * np.finfo(float).eps * math.fsum(s for _, s in defects)
        bound = ENERGY_BALANCE_RTOL * energy + roundoff
        if abs(total) <= bound:
            return
        raise self._balance_error(
            f", the run to t = {float(self.t.value):.6g} s: |in - stored - out| = {abs(total):.3g}"
            f" J > {bound:.3g} J ({ENERGY_BALANCE_RTOL:g} of {energy:.3g} J)"
        )

    def _balance_error(self, detail: str) -> SolverError:
        """The error of a failed energy balance, naming the solver's options in effect."""
        if self.nonlinear:
            prefix, solver = self._snes_prefix, self._snes
        else:
            prefix, solver = self.petsc_options_prefix, self._ksp
        return SolverError.failed_check(
            "heat energy balance",
            prefix,
            "ENERGY_BALANCE",
            options_in_effect(prefix, self._options, solver),
            detail,
        )

    def run(
        self,
        end_time: float | None = None,
        *,
        times: np.ndarray | None = None,
        callback: Callable[[HeatProblem], None] | None = None,
    ) -> HeatHistory:
        """Integrate from the current state at t = 0 over a grid of time levels.

        Args:
            end_time: End of the run (s), on the grid of :func:`time_grid` with the settings'
                steps and the pump's edges. Ignored when ``times`` is given.
            times: Explicit time levels (s), starting at 0; steps leaving a pump edge restart
                with backward Euler.
            callback: Called with the problem after every step (to write fields, for example).

        Returns:
            The time series of film temperatures and energies.
        """
        s = self.settings
        edges: tuple[float, ...] = ()
        if isinstance(self.source, HeatSource):
            stop = float(times[-1]) if times is not None else end_time
            if stop is None:
                raise ValueError("HeatProblem.run needs end_time or times")
            edges = self.source.waveform.edges(stop)
        if times is None:
            if end_time is None:
                raise ValueError("HeatProblem.run needs end_time or times")
            times = time_grid(
                end_time,
                edges,
                first_step=s.first_step,
                growth=s.step_growth,
                max_step=s.max_step,
            )
        times = np.asarray(times, dtype=float)
        scale = max(abs(times[-1]), 1e-300)
        edge_set = np.asarray(edges)
        start = (self.energy_in, self.stored_energy(), self.energy_out, self.energy_out_top)
        records = [self._record(start)]
        defects: list[tuple[float, float]] = []
        with dolfinx.common.Timer(HEAT_RUN_TIMER):
            for i in range(1, len(times)):
                near = np.abs(edge_set - times[i - 1]) < 1e-12 * scale
                restart = bool(np.any(near))
                self.step(times[i] - times[i - 1], restart=restart)
                defects.append(self._step_balance)
                self.t.value = times[i]
                records.append(self._record(start))
                if callback is not None:
                    callback(self)
        history = HeatHistory.from_records(times, records, s.scheme)
        self._check_run_balance(defects, np.asarray(records)[:, 3:], start[1])
        return history

    def _record(self, start: tuple[float, float, float, float]) -> tuple[float, ...]:
        e_in, e_stored, e_out, e_top = start
        return (
            self.film_max_temperature(),
            self.film_mean_temperature(),
            self.interface_temperature(),
            self.energy_in - e_in,
            self.stored_energy() - e_stored,
            self.energy_out - e_out,
            self.energy_out_top - e_top,
        )

    def steady(self, factor: float = 1.0) -> fem.Function:
        """Solve the steady state with the pump at ``factor`` of full intensity (CW).

        The result overwrites ``u`` (the rise above the sink, K); the time history is untouched.
        """
        saved = [float(c.value) for c in self._c]
        for c in self._c:
            c.value = 0.0
        self._factor.value = factor
        try:
            with dolfinx.common.Timer(HEAT_STEADY_TIMER):
                self._solve()
        finally:
            for c, value in zip(self._c, saved, strict=True):
                c.value = value
        return self.u

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """The time-stepping state besides ``u_n`` and ``u_nn``, as JSON-ready numbers.

        Time and steps (the last step starts BDF2 again), the cumulative energies and the
        boundary heat flows of the last level (the trapezoidal rule needs them), the pump
        scale, the coefficient of the preconditioner in use and the solver statistics. With
        the values of ``u_n`` and ``u_nn`` it is what :meth:`restore` needs to continue a run
        on the same grid as if it had not stopped.
        """
        return {
            "t": float(self.t.value),
            "dt": float(self.dt.value),
            "dt_prev": self._dt_prev,
            "have_history": self._have_history,
            "energy_in": self.energy_in,
            "energy_out": self.energy_out,
            "energy_out_top": self.energy_out_top,
            "rates": [float(r) for r in self._rates],
            "source_scale": self.source_scale,
            "preconditioner_coefficient": getattr(self, "_pc_coefficient", None),
            "reused_iterations": getattr(self, "_reused_iterations", 0),
            "preconditioner_builds": self.preconditioner_builds,
            "krylov_iterations": [int(i) for i in self.krylov_iterations],
        }

    def restore(self, state: Mapping[str, Any], u_n: np.ndarray, u_nn: np.ndarray) -> None:
        """Continue from a :meth:`checkpoint` (collective).

        An iterative solver's preconditioner is built again for the coefficient it had when
        the state was saved (it is kept across steps), so the next steps solve with the same
        preconditioner as an uninterrupted run would.

        Args:
            state: What :meth:`checkpoint` returned.
            u_n: The owned values of ``u_n`` on this rank (the same mesh distribution).
            u_nn: The owned values of ``u_nn``.
        """
        owned = self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs
        for f, values in ((self.u_n, u_n), (self.u_nn, u_nn)):
            if len(values) != owned:
                raise ValueError(f"restore: {len(values)} values for {owned} owned unknowns")
            f.x.array[:owned] = values
            f.x.scatter_forward()
        self.u.x.array[:] = self.u_n.x.array
        self.t.value = state["t"]
        self.dt.value = state["dt"]
        self._dt_prev = state["dt_prev"]
        self._have_history = bool(state["have_history"])
        self.energy_in = float(state["energy_in"])
        self.energy_out = float(state["energy_out"])
        self.energy_out_top = float(state["energy_out_top"])
        self._rates = tuple(float(r) for r in state["rates"])
        self.source_scale = float(state["source_scale"])
        self.krylov_iterations[:] = [int(i) for i in state["krylov_iterations"]]
        coefficient = state["preconditioner_coefficient"]
        if not self.nonlinear and self._reuse and coefficient is not None:
            self._update_operator(float(coefficient))
            self._prepare_preconditioner(float(coefficient))
            with options_set(self.petsc_options_prefix, self._options):
                self._ksp.setUp()
            self._fresh_preconditioner = False
        self.preconditioner_builds = int(state["preconditioner_builds"])
        self._reused_iterations = int(state["reused_iterations"])


def _boundary_resistance_field(mesh_data: MeshData, resistance: float) -> fem.Function:
    """DG0 field ``R / h`` on the cells just below the ``interface`` (0 elsewhere), 1/(W/m/K).

    ``h`` is the depth of a cell below the interface plane (the facet's height minus the cell's
    lowest node).
    """
    if "interface" not in mesh_data.boundaries:
        raise KeyError("a thermal boundary resistance needs an 'interface' boundary on the mesh")
    msh = mesh_data.mesh
    tdim = msh.topology.dim
    fdim = tdim - 1
    zaxis = msh.geometry.dim - 1
    Q = fem.functionspace(msh, ("DG", 0))
    rho = fem.Function(Q, name="boundary_resistance_per_height")
    facets = mesh_data.facet_tags.find(mesh_data.boundary("interface"))
    msh.topology.create_connectivity(fdim, tdim)
    f2c = msh.topology.connectivity(fdim, tdim)
    xg = msh.geometry.x
    cell_nodes = msh.geometry.dofmap
    if len(facets):
        facet_nodes = dolfinx.mesh.entities_to_geometry(msh, fdim, facets)
        for facet, nodes in zip(facets, facet_nodes, strict=True):
            z_facet = float(np.max(xg[nodes, zaxis]))
            for cell in f2c.links(facet):
                z_cell = xg[cell_nodes[cell], zaxis]
                height = z_facet - float(np.min(z_cell))
                if height > 0.5 * float(np.ptp(z_cell)):
                    rho.x.array[Q.dofmap.list[cell, 0]] = resistance / height
    rho.x.scatter_forward()
    return rho


def steady_thermal_resistance(
    mesh_data: MeshData,
    materials: Mapping[str, ThermalMaterial],
    source: HeatSource,
    settings: HeatSettings | None = None,
) -> float:
    """Steady film temperature rise per unit pump intensity, with the pump on (CW).

    Args:
        mesh_data: A ``stack``, ``axisymmetric`` or ``device`` mesh.
        materials: Region name -> thermal properties.
        source: The pump; its intensity is the one the rise is divided by.
        settings: Boundary conditions and solvers.

    Returns:
        ``(max film T - T_sink) / I`` (K m^2/W, :func:`~physics.laser.thermal_resistance`); with
        k(T) it holds at ``source.intensity``.
    """
    with HeatProblem(mesh_data, materials, source, settings) as problem:
        problem.steady()
        rise = problem.film_max_temperature() - problem.settings.sink_temperature
    return thermal_resistance(rise, source.intensity)
