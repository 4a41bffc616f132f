"""Combinatorial oracles: feasible sets solved by a dedicated algorithm, not a MILP, with the
same `Solver` contract (``solve``, ``solve_batch``, ``Solution``). Each exposes its set as a
`LinearSpec` through the ``spec`` property, like the MILP backends' ``spec`` attribute.

Their solves are short calls that hold the GIL (scipy's Dijkstra and Jonker-Volgenant), so
Ctrl-C is handled between calls by Python itself; they need no `blocking_call`.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import dijkstra

from .base import Solver
from .result import Status
from .spec import LinearSpec


class ShortestPathOracle(Solver):
    """Shortest s–t path in a directed graph with nonnegative edge costs (Dijkstra).

    x ∈ {0, 1}^E marks the edges of the path; c holds one cost per edge.

    Args:
      num_nodes: number of nodes.
      edges: ``(E, 2)`` integer array of (tail, head); no self-loops, no parallel edges.
      source, sink: node indices.

    Raises:
      ValueError: bad edges or nodes; at solve time, a negative cost (Dijkstra needs c >= 0).
    """

    def __init__(self, num_nodes: int, edges, source: int, sink: int,
                 name: str = "shortest_path"):
        edges = np.asarray(edges, dtype=np.int64)
        if edges.ndim != 2 or edges.shape[1] != 2 or len(edges) == 0:
            raise ValueError(f"{name}: edges must be a non-empty (E, 2) array, got shape {edges.shape}")
        if edges.min() < 0 or edges.max() >= num_nodes:
            raise ValueError(f"{name}: edge endpoints must lie in [0, {num_nodes})")
        if np.any(edges[:, 0] == edges[:, 1]):
            raise ValueError(f"{name}: self-loop at edge {int(np.flatnonzero(edges[:, 0] == edges[:, 1])[0])}")
        key = edges[:, 0] * num_nodes + edges[:, 1]
        if len(np.unique(key)) != len(key):
            raise ValueError(f"{name}: parallel edges are not supported")
        for v, what in ((source, "source"), (sink, "sink")):
            if not 0 <= int(v) < num_nodes:
                raise ValueError(f"{name}: {what}={v} is not a node in [0, {num_nodes})")
        if source == sink:
            raise ValueError(f"{name}: source and sink are the same node {source}")
        super().__init__((len(edges),), name)
        self.num_nodes, self.edges = int(num_nodes), edges
        self.source, self.sink = int(source), int(sink)
        order = np.lexsort((edges[:, 1], edges[:, 0]))
        self._order = order
        self._indptr = np.searchsorted(edges[order, 0], np.arange(num_nodes + 1)).astype(np.int32)
        self._indices = edges[order, 1].astype(np.int32)
        self._edge_id = {(int(u), int(v)): i for i, (u, v) in enumerate(edges)}

    def factory(self):
        return functools.partial(ShortestPathOracle, self.num_nodes, self.edges, self.source,
                                 self.sink, self.name)

    def check_cost_values(self, c):
        if np.any(c < 0):
            raise ValueError(f"{self.name}: Dijkstra needs nonnegative edge costs; c has "
                             f"{int(np.sum(c < 0))} negative entries (min {c.min():.4g}). "
                             "Use a cost_transform such as softplus, or a LinearSpec backend")

    def solve_flat(self, c):
        # Explicit zeros in a CSR graph are edges for csgraph; build it without pruning.
        g = sp.csr_matrix((c[self._order], self._indices, self._indptr),
                          shape=(self.num_nodes, self.num_nodes))
        dist, pred = dijkstra(g, directed=True, indices=self.source, return_predecessors=True)
        if not np.isfinite(dist[self.sink]):
            return None, np.nan, Status.INFEASIBLE, {"detail": f"sink {self.sink} unreachable"}
        x = np.zeros(len(self.edges))
        v = self.sink
        while v != self.source:
            u = int(pred[v])
            x[self._edge_id[(u, v)]] = 1.0
            v = u
        return x, float(c @ x), Status.OPTIMAL, {}

    @functools.cached_property
    def spec(self) -> LinearSpec:
        """The s–t flow polytope of this graph (totally unimodular), for MILP/LP backends."""
        E, V = len(self.edges), self.num_nodes
        rows = np.concatenate([self.edges[:, 0], self.edges[:, 1]])
        cols = np.concatenate([np.arange(E), np.arange(E)])
        vals = np.concatenate([np.ones(E), -np.ones(E)])
        A = sp.csr_matrix((vals, (rows, cols)), shape=(V, E))
        b = np.zeros(V)
        b[self.source], b[self.sink] = 1.0, -1.0
        return LinearSpec(shape=(E,), A_eq=A, b_eq=b, lb=0.0, ub=1.0, name=self.name + "-flow")


class AssignmentOracle(Solver):
    """Linear assignment (Hungarian / Jonker–Volgenant via scipy): x ∈ {0,1}^{n×m}.

    With n <= m every row is assigned to exactly one column and every column to at most one
    row; with n > m the roles swap. c holds one cost per (row, column) pair.
    """

    def __init__(self, n_rows: int, n_cols: int, name: str = "assignment"):
        if int(n_rows) < 1 or int(n_cols) < 1:
            raise ValueError(f"{name}: n_rows and n_cols must be >= 1, got {n_rows}, {n_cols}")
        super().__init__((int(n_rows), int(n_cols)), name)

    def factory(self):
        return functools.partial(AssignmentOracle, self.shape[0], self.shape[1], self.name)

    def solve_flat(self, c):
        C = c.reshape(self.shape)
        r, k = linear_sum_assignment(C)
        x = np.zeros(self.shape)
        x[r, k] = 1.0
        return x.reshape(-1), float(C[r, k].sum()), Status.OPTIMAL, {}

    @functools.cached_property
    def spec(self) -> LinearSpec:
        """The assignment polytope as a `LinearSpec` (binary x, TU constraints)."""
        n, m = self.shape
        rows_eq = sp.kron(sp.eye(n), np.ones((1, m)))   # sum_j x_ij
        cols = sp.kron(np.ones((1, n)), sp.eye(m))      # sum_i x_ij
        if n <= m:
            return LinearSpec(shape=(n, m), A_eq=rows_eq, b_eq=np.ones(n), A_ub=cols,
                              b_ub=np.ones(m), lb=0, ub=1, integer=True, name=self.name + "-milp")
        return LinearSpec(shape=(n, m), A_eq=cols, b_eq=np.ones(m), A_ub=rows_eq,
                          b_ub=np.ones(n), lb=0, ub=1, integer=True, name=self.name + "-milp")
