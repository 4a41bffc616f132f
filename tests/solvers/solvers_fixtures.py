"""Small LP/MILP fixtures with their known optima written beside them.

Integer optima were found by enumerating every integer point (``test_fixture_constants``
re-does that enumeration), LP optima by Dantzig's closed form (knapsack) or checked against
``scipy.optimize.linprog`` in the same test.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.sparse as sp

from surco.solvers import LinearSpec, Solver, SolverError, Status

#: seconds a loaded machine may add to the time-limit contract (`Solver.solve`: a solve
#: returns within time_limit + TIME_LIMIT_SLACK): the helper thread, the stop and the copy
#: of the result wait for a core (measured on the 2-core test machine at load average 11:
#: at most 0.4 s past the limit, inside the 0.5 s slack)
SCHEDULING_ALLOWANCE = 1.0

MIP_BACKENDS = ("scip", "highs", "cpsat", "pyscipopt")
LP_BACKENDS = ("scip", "highs", "glop", "pdlp", "pyscipopt")   # backends that take relax=True
ALL_BACKENDS = ("scip", "highs", "cpsat", "glop", "pdlp", "pyscipopt")


@dataclasses.dataclass(frozen=True)
class Fixture:
    name: str
    spec: LinearSpec
    c: np.ndarray                   # the cost the optima below belong to
    opt: float | None               # optimum of the spec as written (None: not solvable)
    x_opt: np.ndarray | None        # the unique minimiser, if unique
    lp_opt: float | None = None     # optimum of the LP relaxation
    lp_x: np.ndarray | None = None  # its unique minimiser, if unique


# 0-1 knapsack, max v·x s.t. w·x <= 17. Unique optimum: items 0, 1, 2, value 30.
# LP relaxation (Dantzig): by value/weight 0 (2.0), 2 (1.75), 4 (1.667), 1 (1.625): take
# 0, 2, 4 (weight 12) and 5/8 of item 1: 10 + 7 + 5 + 13 * 5/8 = 30.125.
_KV = np.array([10.0, 13.0, 7.0, 8.0, 5.0, 9.0])
_KW = np.array([5.0, 8.0, 4.0, 6.0, 3.0, 7.0])
KNAPSACK = Fixture(
    "knapsack",
    LinearSpec(shape=(6,), A_ub=_KW[None], b_ub=[17.0], lb=0, ub=1, integer=True, name="knapsack"),
    c=-_KV, opt=-30.0, x_opt=np.array([1.0, 1, 1, 0, 0, 0]),
    lp_opt=-30.125, lp_x=np.array([1.0, 0.625, 1, 0, 1, 0]))

# 3x3 assignment (x shaped (3, 3)): unique optimum rows -> columns (1, 0, 2), cost 1+2+2 = 5.
# The assignment polytope is integral: the LP relaxation has the same unique optimum.
_AC = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
_AX = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])
ASSIGNMENT = Fixture(
    "assignment",
    LinearSpec(shape=(3, 3),
               A_eq=np.vstack([np.kron(np.eye(3), np.ones(3)),     # each row once
                               np.kron(np.ones(3), np.eye(3))]),   # each column once
               b_eq=np.ones(6), lb=0, ub=1, integer=True, name="assignment"),
    c=_AC, opt=5.0, x_opt=_AX, lp_opt=5.0, lp_x=_AX)

# Set cover of {0..5}: two triangles {0,1,2}, {3,4,5} covered by pairs (cost 2) plus
# {0,3} (cost 3) and {2,4,5} (cost 4). Unique optimum sets 1, 4, 6: cost 7.
# LP relaxation: every pair at 1/2, cost 6 (not unique in x).
_SETS = [{0, 1}, {1, 2}, {0, 2}, {3, 4}, {4, 5}, {3, 5}, {0, 3}, {2, 4, 5}]
_SC = np.array([2.0, 2, 2, 2, 2, 2, 3, 4])
_SM = np.array([[1.0 if e in s else 0.0 for s in _SETS] for e in range(6)])
SET_COVER = Fixture(
    "set_cover",
    LinearSpec(shape=(8,), A_ub=-_SM, b_ub=-np.ones(6), lb=0, ub=1, integer=True,
               name="set_cover"),
    c=_SC, opt=7.0, x_opt=np.array([0.0, 1, 0, 0, 1, 0, 1, 0]), lp_opt=6.0)

# Shortest 0 -> 5 path as a flow LP (continuous x in [0, 1]) on a 6-node DAG.
# Paths: 0-1-2-4-3-5 = 9 (unique shortest), 0-1-3-5 = 10, 0-2-4-3-5 = 10, 0-1-2-4-5 = 11, ...
SP_EDGES = np.array([[0, 1], [0, 2], [1, 2], [1, 3], [2, 4], [3, 5], [4, 3], [4, 5]])
SP_COST = np.array([2.0, 4, 1, 7, 3, 1, 2, 5])
_SX = np.array([1.0, 0, 1, 0, 1, 1, 1, 0])


def flow_spec(edges, num_nodes, source, sink, name):
    """Node-arc incidence flow polytope: one unit from source to sink, 0 <= x <= 1."""
    E = len(edges)
    A = sp.csr_matrix((np.r_[np.ones(E), -np.ones(E)],
                       (np.r_[edges[:, 0], edges[:, 1]], np.r_[np.arange(E), np.arange(E)])),
                      shape=(num_nodes, E))
    b = np.zeros(num_nodes)
    b[source], b[sink] = 1.0, -1.0
    return LinearSpec(shape=(E,), A_eq=A, b_eq=b, lb=0, ub=1, name=name)


SHORTEST_PATH = Fixture("shortest_path", flow_spec(SP_EDGES, 6, 0, 5, "shortest_path"),
                        c=SP_COST, opt=9.0, x_opt=_SX, lp_opt=9.0, lp_x=_SX)

# General integers in [-2, 4]: max 5x0 + 4x1 + 2x2 s.t. A x <= b. Unique optimum (3, 0, -1),
# value 13 (enumerated over all 343 points); LP relaxation value 14.2.
BOUNDED_INT = Fixture(
    "bounded_int",
    LinearSpec(shape=(3,), A_ub=[[2.0, 3, 1], [4, 1, 2], [3, 4, 2]], b_ub=[5.0, 11, 8],
               lb=-2, ub=4, integer=True, name="bounded_int"),
    c=np.array([-5.0, -4, -2]), opt=-13.0, x_opt=np.array([3.0, 0, -1]), lp_opt=-14.2)

FEASIBLE = [KNAPSACK, ASSIGNMENT, SET_COVER, SHORTEST_PATH, BOUNDED_INT]

# x0 + x1 <= -1 with x >= 0: empty. Integer and continuous versions.
INFEASIBLE_INT = LinearSpec(shape=(2,), A_ub=[[1.0, 1.0]], b_ub=[-1.0], ub=5, integer=True,
                            name="infeasible_int")
INFEASIBLE_LP = LinearSpec(shape=(2,), A_ub=[[1.0, 1.0]], b_ub=[-1.0], name="infeasible_lp")
# x0 - x1 <= 1, x >= 0, minimise -x0 - x1: x0 = x1 = t for any t. Unbounded below.
UNBOUNDED_INT = LinearSpec(shape=(2,), A_ub=[[1.0, -1.0]], b_ub=[1.0], integer=True,
                           name="unbounded_int")
UNBOUNDED_LP = LinearSpec(shape=(2,), A_ub=[[1.0, -1.0]], b_ub=[1.0], name="unbounded_lp")


def multi_knapsack(n: int = 120, m: int = 5, seed: int = 0) -> tuple[LinearSpec, np.ndarray]:
    """Correlated multi-dimensional 0-1 knapsack: x = 0 is feasible (any solver has an
    incumbent at once: 1-40 ms to a first one, measured) but no backend (HiGHS, SCIP,
    CP-SAT, PySCIPOpt) proved optimality within 60 s on the loaded 2-core test machine, so
    a limit of a few times the time to a first incumbent ends with status FEASIBLE on any
    machine (`test_time_limit_with_incumbent_is_feasible` sizes it so)."""
    rng = np.random.default_rng(seed)
    W = rng.integers(1, 1000, size=(m, n)).astype(float)
    v = W.sum(0) / m + rng.integers(0, 500, n)
    spec = LinearSpec(shape=(n,), A_ub=W, b_ub=0.5 * W.sum(1), ub=1, integer=True,
                      name="multi_knapsack")
    return spec, -v


def market_split(m: int = 4, n: int = 30, seed: int = 0) -> LinearSpec:
    """Cornuéjols & Dawande (1999) market split: A x = floor(A·1 / 2), x binary, a_ij in
    [0, 100). This one (seed 0) has no feasible point at all (enumerated by
    `test_market_split_is_infeasible`), so no solver on any machine has an incumbent; proving
    that by branch and bound took every backend more than 60 s (measured), so a 0.1 s limit
    ends with a timeout and a node limit of 1 with a node-limit error."""
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 100, size=(m, n)).astype(float)
    return LinearSpec(shape=(n,), A_eq=A, b_eq=np.floor(A.sum(1) / 2), ub=1, integer=True,
                      name="market_split")


def sharding_spec(T: int = 50, D: int = 4, seed: int = 0) -> LinearSpec:
    """Table sharding Ω: x[t, d] binary, each table on one device, per-device memory cap."""
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 20, T).astype(float)
    return LinearSpec(shape=(T, D), A_eq=sp.kron(sp.eye(T), np.ones((1, D))), b_eq=np.ones(T),
                      A_ub=sp.kron(size[None, :], sp.eye(D)),
                      b_ub=np.full(D, np.ceil(1.2 * size.sum() / D)), lb=0, ub=1,
                      integer=True, name="sharding")


def grid_edges(rows: int, cols: int) -> np.ndarray:
    """Edges right and down of a rows x cols grid (node r*cols + c)."""
    e = []
    for r in range(rows):
        for k in range(cols):
            v = r * cols + k
            if k + 1 < cols:
                e.append((v, v + 1))
            if r + 1 < rows:
                e.append((v, v + cols))
    return np.array(e)


def takes(backend: str, spec: LinearSpec, relax: bool = False) -> bool:
    """Whether ``backend`` accepts ``spec`` (GLOP/PDLP: LPs only; CP-SAT: all-integer only)."""
    integer = spec.integer & (not relax)
    if backend in ("glop", "pdlp"):
        return not integer.any()
    if backend == "cpsat":
        return bool(integer.all())
    return True


def tol(backend: str) -> dict:
    """PDLP is a first-order method: it meets its optimality tolerances only approximately."""
    return dict(rtol=1e-4, atol=1e-4) if backend == "pdlp" else dict(rtol=1e-9, atol=1e-7)


def transport(m: int, k: int, seed: int = 0) -> tuple[LinearSpec, np.ndarray]:
    """Transportation LP, m sources x k sinks, x >= 0, supply <= s_i, demand >= 0.9 * mean:
    large and degenerate. Measured on the 2-core test machine: GLOP 1.4 s at 200 x 200 and
    15 s at 400 x 400, PDLP 7.5 s at 200 x 200, the HiGHS QP (γ = 1e-3) 8.5 s at 100 x 100."""
    rng = np.random.default_rng(seed)
    supply = rng.integers(50, 100, m).astype(float)
    demand = np.full(k, 0.9 * supply.sum() / k)
    A = sp.vstack([sp.kron(sp.eye(m), np.ones((1, k))),       # shipped from i <= supply_i
                   -sp.kron(np.ones((1, m)), sp.eye(k))])     # received at j >= demand_j
    spec = LinearSpec(shape=(m, k), A_ub=A, b_ub=np.r_[supply, -demand], name="transport")
    return spec, rng.uniform(1.0, 100.0, (m, k))


class Picky(Solver):
    """x = e_i for the cheapest i; a solver error (raised, not a status) for a cost whose
    first entry is negative. Module level, so that process pools can build it."""

    def __init__(self, n: int = 3):
        super().__init__((n,), f"picky{n}")

    def factory(self):
        return functools.partial(Picky, self.n)

    def solve_flat(self, c):
        if c[0] < 0:
            raise SolverError(f"{self.name}: rejected the cost")
        x = np.zeros(self.n)
        x[int(np.argmin(c))] = 1.0
        return x, float(c.min()), Status.OPTIMAL, {}
