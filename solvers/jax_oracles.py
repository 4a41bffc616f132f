"""Exact combinatorial oracles written in JAX: jit-, vmap- and grad-compatible, on CPU or GPU,
without a host callback.

Where Ω has an exact algorithm that XLA can run (shortest paths over a fixed graph, one
choice per row, the k smallest entries), ``argmin_{x in Ω} c·x`` needs no solver process:
a whole SurCo-zero run over such an Ω compiles to one XLA program (`surco.zero(..., backend="jax")`).

Every oracle here is a small immutable object with

* ``shape``: the shape of x (and c), and ``name``;
* ``solve(c) -> x``: a pure JAX function; c has shape ``(..., *shape)`` and every leading
  entry is solved independently (it is also ``vmap``-able);
* ``solve_with_status(c) -> (x, status)``: the same, plus an int32 `surco.solvers.Status`
  per leading entry (``OPTIMAL``, ``INFEASIBLE`` for an unreachable sink, ``ERROR`` for a
  cost holding NaN/inf); a failed entry has an all-NaN x, as in the host solvers;
* ``spec``: the equivalent `LinearSpec`, so that any MILP/LP backend (`make_solver`)
  solves the very same problem, for cross-checks.

Oracles compare equal (and hash) by their content, so that compiled programs keyed by an
oracle are reused for an equal one.

    >>> import jax.numpy as jnp
    >>> from surco.solvers.jax_oracles import TopK
    >>> TopK(4, 2).solve(jnp.array([3.0, 1.0, 2.0, 0.5]))
    Array([0., 1., 0., 1.], dtype=float32)
"""
from __future__ import annotations

import abc
import functools
from typing import Any, Hashable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .oracles import ShortestPathOracle
from .result import Status
from .spec import LinearSpec

Array = jax.Array

__all__ = ["JaxOracle", "ShortestPath", "OneHot", "TopK", "as_jax_oracle"]


class JaxOracle(abc.ABC):
    """Base of the JAX-native oracles: shape checks, batching over leading dimensions,
    equality by content. Subclasses implement `_solve_one` (one cost of shape ``shape``),
    `spec` and `_key`."""

    shape: tuple[int, ...]
    name: str

    @property
    def n(self) -> int:
        """Number of entries of x."""
        return int(np.prod(self.shape))

    # -- to implement ----------------------------------------------------------------------
    @abc.abstractmethod
    def _solve_one(self, c: Array) -> tuple[Array, Array]:
        """``(x, status)`` for one finite cost shaped ``shape``: x (bool or float, 0/1) and an
        int32 `Status` scalar; x is ignored where status is not OPTIMAL."""

    @property
    @abc.abstractmethod
    def spec(self) -> LinearSpec:
        """The same Ω as a `LinearSpec` (for the MILP/LP backends)."""

    @abc.abstractmethod
    def _key(self) -> Hashable:
        """Everything that defines Ω (for equality and hashing)."""

    # -- public ----------------------------------------------------------------------------
    def solve_with_status(self, c) -> tuple[Array, Array]:
        """``argmin_{x in Ω} c·x`` for every leading entry of c, with its status.

        Args:
          c: floating-point cost of shape ``shape`` or ``(..., *shape)`` (a JAX or numpy
            array, or a tracer).

        Returns:
          ``(x, status)``: x with c's shape and dtype (0/1 entries; all-NaN where the solve
          failed), and int32 `Status` values of shape ``c.shape[:-len(shape)]``.

        Raises:
          ValueError: c is not floating point or not shaped ``(..., *shape)``.
        """
        c = self._check(c)
        k = len(self.shape)
        batch = c.shape[:c.ndim - k]
        x, status = self._jitted()(c.reshape((-1,) + self.shape))
        return x.reshape(c.shape), status.reshape(batch)

    def solve(self, c) -> Array:
        """``argmin_{x in Ω} c·x`` (see `solve_with_status`; failed entries are all-NaN)."""
        return self.solve_with_status(c)[0]

    # -- helpers ---------------------------------------------------------------------------
    def _jitted(self):
        """The batched solve, jitted once per distinct oracle (equal oracles share it, see
        `_jitted_solve`); inside an outer jit it is inlined."""
        return _jitted_solve(self)

    def _guarded(self, c: Array) -> tuple[Array, Array]:
        finite = jnp.all(jnp.isfinite(c))
        x, status = self._solve_one(jnp.where(finite, c, jnp.zeros_like(c)))
        status = jnp.where(finite, status, jnp.int32(Status.ERROR))
        ok = status == Status.OPTIMAL
        x = jnp.where(ok, x.astype(c.dtype), jnp.full_like(c, jnp.nan))
        return x, status

    def _check(self, c) -> Array:
        if not isinstance(c, (jax.Array, np.ndarray, jax.core.Tracer)):
            c = np.asarray(c)
        if not jnp.issubdtype(c.dtype, jnp.floating):
            raise ValueError(f"{self.name}: cost c must be a floating-point array, got dtype "
                             f"{c.dtype}")
        k = len(self.shape)
        if c.ndim < k or tuple(c.shape[c.ndim - k:]) != self.shape:
            raise ValueError(f"{self.name}: cost c has shape {tuple(c.shape)}, expected "
                             f"{self.shape} or (..., {', '.join(map(str, self.shape))})")
        return jnp.asarray(c)

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, shape={self.shape})"


@functools.lru_cache(maxsize=64)
def _jitted_solve(oracle: JaxOracle):
    """``jit(vmap(oracle._guarded))``, shared by equal oracles (they hash by content)."""
    return jax.jit(jax.vmap(oracle._guarded))


_OPT, _INF, _ERR = (np.int32(Status.OPTIMAL), np.int32(Status.INFEASIBLE),
                    np.int32(Status.ERROR))


class ShortestPath(JaxOracle):
    """Exact ``argmin c·x`` over the s–t flow polytope of a directed graph, in JAX.

    Ω is the polytope of `ShortestPathOracle.spec` — ``{x in [0,1]^E : out(v) − in(v) = 1 at
    the source, −1 at the sink, 0 elsewhere}`` — whose vertices are 0/1 (totally unimodular).
    For c >= 0 its optimum is a shortest s–t path (Dijkstra's answer, x = edge indicator).
    For costs with negative entries (a blackbox re-solve at c + λ·∂f/∂x, a perturbation) the
    optimum is still the flow polytope's, as an LP backend returns it: a path plus every
    cycle of negative total cost, each edge used at most once.

    Algorithm: a min-cost flow by successive shortest paths (Ford & Fulkerson 1962; Ahuja,
    Magnanti & Orlin, *Network Flows*, 1993, §9.7). Edges with c_e < 0 start saturated, which
    leaves a residual graph of nonnegative arc costs and node imbalances; each round sends one
    unit along a shortest residual path from a node with excess to one with deficit (the
    sink's demand included), found by Bellman–Ford (a min-plus relaxation over all arcs per
    iteration; Bellman 1958, Ford 1956), until no excess is left. With c >= 0 that is one
    Bellman–Ford pass from the source. Each relaxation runs until nothing changes (at most
    V + 1 iterations), as a ``lax.while_loop``.

    Ties are broken deterministically. For c >= 0: among optimal s–t paths the one with the
    fewest edges; remaining ties by the smallest edge index, choosing the predecessor edge of
    each node backwards from the sink (shortest paths are lexicographic in (cost, hops), so a
    zero-cost cycle is never added). With negative entries the same rule picks each
    augmenting path (and the deficit node of smallest index among equally near ones). Costs
    that are mathematically equal but rounded differently in floating point are not ties.

    A sink that the source cannot reach gives status INFEASIBLE and an all-NaN x (the host
    oracle raises `InfeasibleError` then). A cost with NaN/inf gives ERROR.

    Work per solve: O(K · R · V · D) for K augmentations (1 when c >= 0), R relaxation rounds
    (at most the largest number of arcs on a shortest path, + 1) and D the largest node
    degree (the in/out arcs of each node are gathered into a V × D table).

    Args:
      num_nodes, edges, source, sink: as `ShortestPathOracle` (edges ``(E, 2)`` of
        (tail, head); no self-loops, no parallel edges).
      name: used in messages.

    Raises:
      ValueError: as `ShortestPathOracle` (bad edges, nodes, source == sink).
    """

    def __init__(self, num_nodes: int, edges, source: int, sink: int,
                 name: str = "shortest_path"):
        host = ShortestPathOracle(num_nodes, edges, source, sink, name=name)  # validates
        self._host = host
        self.name, self.shape = name, (len(host.edges),)
        self.num_nodes, self.source, self.sink = host.num_nodes, host.source, host.sink
        self.edges = host.edges.copy()
        self.edges.setflags(write=False)
        V, E = self.num_nodes, len(self.edges)
        tail, head = self.edges[:, 0], self.edges[:, 1]
        deg = np.bincount(tail, minlength=V) + np.bincount(head, minlength=V)
        D = int(deg.max())
        inc = np.full((V, D), E, np.int32)          # E = padding (a dummy edge)
        is_head = np.zeros((V, D), bool)
        other = np.zeros((V, D), np.int32)
        fill = np.zeros(V, int)
        for e in range(E):                          # slots in increasing edge index
            for node, at_head, far in ((head[e], True, tail[e]), (tail[e], False, head[e])):
                j = fill[node]
                inc[node, j], is_head[node, j], other[node, j] = e, at_head, far
                fill[node] += 1
        self._inc, self._is_head, self._other = inc, is_head, other
        self._valid = inc < E

    @classmethod
    def from_oracle(cls, oracle: ShortestPathOracle) -> "ShortestPath":
        """The JAX twin of a host `ShortestPathOracle` (same graph, same edge order)."""
        return cls(oracle.num_nodes, oracle.edges, oracle.source, oracle.sink, oracle.name)

    def host_oracle(self) -> ShortestPathOracle:
        """The host (Dijkstra) oracle over the same graph, for cross-checks."""
        return ShortestPathOracle(self.num_nodes, self.edges, self.source, self.sink, self.name)

    @property
    def spec(self) -> LinearSpec:
        """The s–t flow polytope (see `ShortestPathOracle.spec`)."""
        return self._host.spec

    def _key(self):
        return (self.num_nodes, self.source, self.sink, self.edges.tobytes())

    # -- the algorithm ---------------------------------------------------------------------
    def _relax(self, c: Array, x: Array, roots: Array):
        """Lexicographic (cost, hops) Bellman–Ford in the residual graph of x, from all
        ``roots`` at distance (0, 0).

        Returns ``(d, h, pred_edge, pred_node, has_pred, converged)``: distances and hop
        counts per node, each node's predecessor edge and node on a lexicographically
        shortest path (the tight in-arc of smallest edge index), whether it has one, and
        whether the relaxation reached a fixed point within V + 1 rounds."""
        V = self.num_nodes
        big = jnp.int32(V + 2)
        inc, other = jnp.asarray(self._inc), jnp.asarray(self._other)
        valid, is_head = jnp.asarray(self._valid), jnp.asarray(self._is_head)
        cp = jnp.concatenate([c, jnp.zeros((1,), c.dtype)])
        xp = jnp.concatenate([x, jnp.zeros((1,), bool)])
        xe = xp[inc]                                     # (V, D) edge state per slot
        enters = valid & (is_head != xe)                 # the residual arc enters this node
        w = jnp.where(xe, -cp[inc], cp[inc])             # residual arc cost
        inf = jnp.asarray(jnp.inf, c.dtype)

        def candidates(d, h):
            cd = jnp.where(enters, d[other] + w, inf)
            ch = jnp.where(enters, h[other] + 1, big)
            return cd, ch

        def body(state):
            d, h, _, it = state
            cd, ch = candidates(d, h)
            dmin = cd.min(axis=1)
            hmin = jnp.where(cd == dmin[:, None], ch, big).min(axis=1)
            better = jnp.isfinite(dmin) & ((dmin < d) | ((dmin == d) & (hmin < h)))
            return (jnp.where(better, dmin, d), jnp.where(better, hmin, h), jnp.any(better),
                    it + 1)

        d0 = jnp.where(roots, jnp.zeros((V,), c.dtype), inf)
        h0 = jnp.where(roots, 0, big).astype(jnp.int32)
        d, h, changed, _ = jax.lax.while_loop(
            lambda s: s[2] & (s[3] <= V + 1), body, (d0, h0, jnp.bool_(True), jnp.int32(0)))
        cd, ch = candidates(d, h)
        tight = enters & (cd == d[:, None]) & (ch == h[:, None])
        D = inc.shape[1]
        slot = jnp.where(tight, jnp.arange(D, dtype=jnp.int32), D).min(axis=1)
        has_pred = slot < D                              # first slot = smallest edge index
        slot = jnp.minimum(slot, D - 1)
        rows = jnp.arange(V)
        return d, h, inc[rows, slot], other[rows, slot], has_pred, ~changed

    def _solve_one(self, c):
        V, E = self.num_nodes, self.shape[0]
        tail, head = jnp.asarray(self.edges[:, 0]), jnp.asarray(self.edges[:, 1])
        x0 = c < 0
        xi = x0.astype(jnp.int32)
        # r[v] = b_v - (out(v) - in(v)) of x0: excess (> 0) to send, deficit (< 0) to fill
        b = jnp.zeros((V,), jnp.int32).at[self.source].set(1).at[self.sink].set(-1)
        r = b - (jnp.zeros((V,), jnp.int32).at[tail].add(xi).at[head].add(-xi))
        big = V + 2
        nodes = jnp.arange(V, dtype=jnp.int32)

        def augment(state):
            x, r, status, it = state
            d, h, pred_e, pred_v, has_pred, converged = self._relax(c, x, r > 0)
            demand = r < 0
            dm = jnp.where(demand, d, jnp.inf).min()
            cand = demand & (d == dm)
            hm = jnp.where(cand, h, big).min()
            t = jnp.where(cand & (h == hm), nodes, V).min()   # ties: smallest node index
            t = jnp.minimum(t, V - 1)
            reached = jnp.isfinite(dm)

            # augment: flip the residual arcs on the predecessor path from t back to its
            # root (h drops by one per edge); a node without a tight in-arc (possible only
            # through float rounding) stops the walk short of a root: an error
            def back(s):
                x, v, n = s
                e = pred_e[v]
                return x.at[e].set(~x[e]), pred_v[v], n + 1

            x_new, root, _ = jax.lax.while_loop(
                lambda s: reached & (h[s[1]] > 0) & has_pred[s[1]] & (s[2] <= V), back,
                (x, t, jnp.int32(0)))
            walked = h[root] == 0
            ok = reached & converged & walked
            # no deficit node reachable: infeasible (Ω is empty); anything else is an error
            status = jnp.where(ok, status, jnp.where(converged & ~reached, _INF, _ERR))
            r_new = r.at[root].add(-1).at[t].add(1)
            return (jnp.where(ok, x_new, x), jnp.where(ok, r_new, r), status, it + 1)

        x, r, status, _ = jax.lax.while_loop(
            lambda s: jnp.any(s[1] > 0) & (s[2] == _OPT) & (s[3] <= E + 1),
            augment, (x0, r, _OPT, jnp.int32(0)))
        status = jnp.where(jnp.any(r != 0) & (status == _OPT), _ERR, status)
        return x, status


class OneHot(JaxOracle):
    """One choice per row: ``x[i] = e_{argmin_j c[i, j]}``, x ∈ {0,1}^{rows × cols} with
    every row summing to 1. Ties go to the smallest column index.

    Args:
      n_rows, n_cols: shape of x (both >= 1).
      name: used in messages.

    Raises:
      ValueError: a size < 1 or not an int.
    """

    def __init__(self, n_rows: int, n_cols: int, name: str = "one_hot"):
        for what, v in (("n_rows", n_rows), ("n_cols", n_cols)):
            if not isinstance(v, (int, np.integer)) or int(v) < 1:
                raise ValueError(f"{name}: {what} must be an int >= 1, got {v!r}")
        self.name, self.shape = name, (int(n_rows), int(n_cols))

    def _solve_one(self, c):
        x = jax.nn.one_hot(jnp.argmin(c, axis=1), self.shape[1], dtype=c.dtype)
        return x, _OPT

    @functools.cached_property
    def spec(self) -> LinearSpec:
        """``sum_j x_ij = 1`` for every row, x binary."""
        n, m = self.shape
        return LinearSpec(shape=(n, m), A_eq=sp.kron(sp.eye(n), np.ones((1, m))),
                          b_eq=np.ones(n), lb=0, ub=1, integer=True, name=self.name + "-milp")

    def _key(self):
        return self.shape


class TopK(JaxOracle):
    """The k smallest costs: x ∈ {0,1}^n with ``sum(x) = k``, x_i = 1 on the k smallest c_i.
    Ties go to the smaller index (`jax.lax.top_k` on −c keeps the lower index first).

    Args:
      n: length of x (>= 1).
      k: number of entries to pick, 0 <= k <= n.
      name: used in messages.

    Raises:
      ValueError: n < 1 or k outside [0, n] (or not ints).
    """

    def __init__(self, n: int, k: int, name: str = "top_k"):
        if not isinstance(n, (int, np.integer)) or int(n) < 1:
            raise ValueError(f"{name}: n must be an int >= 1, got {n!r}")
        if not isinstance(k, (int, np.integer)) or not 0 <= int(k) <= int(n):
            raise ValueError(f"{name}: k must be an int in [0, n={int(n)}], got {k!r}")
        self.name, self.shape, self.k = name, (int(n),), int(k)

    def _solve_one(self, c):
        if self.k == 0:
            return jnp.zeros_like(c), _OPT
        _, idx = jax.lax.top_k(-c, self.k)
        return jnp.zeros_like(c).at[idx].set(1.0), _OPT

    @functools.cached_property
    def spec(self) -> LinearSpec:
        """``sum(x) = k``, x binary."""
        n = self.shape[0]
        return LinearSpec(shape=(n,), A_eq=np.ones((1, n)), b_eq=[float(self.k)], lb=0, ub=1,
                          integer=True, name=self.name + "-milp")

    def _key(self):
        return (self.shape, self.k)


def as_jax_oracle(space: Any) -> JaxOracle | None:
    """The JAX-native oracle for a feasible set, or None when there is none.

    A `JaxOracle` is returned as it is; a host `ShortestPathOracle` gives its `ShortestPath`
    twin (same graph and edge order); a solver that carries one (the ``mpax`` backend's
    ``.oracle``, an `MpaxLP`) gives it. Other solvers and `LinearSpec` s give None.
    """
    if isinstance(space, JaxOracle):
        return space
    if isinstance(space, ShortestPathOracle):
        return ShortestPath.from_oracle(space)
    carried = getattr(space, "oracle", None)
    if isinstance(carried, JaxOracle):
        return carried
    return None

