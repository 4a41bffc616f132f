"""A fast oracle for the sharding Ω: a generalised assignment problem (GAP).

Ω of a sharding task (`tasks.spec_for`) puts each table on exactly one device, keeps each
device's tables within its memory and uses every device. Minimising a linear cost c over
it is a GAP (Martello & Toth, "Knapsack Problems", 1990, ch. 7), NP-hard in general; a
MILP solver proves the optimum but its time grows with T·D (1.2 s per solve at T = 400,
D = 32 with HiGHS). `GapOracle` answers in milliseconds, optionally over Ω with extra
*balance rows* (``loads``, ``limits``: ``Σ_t loads[t, k] x[t, d] <= limits[k]`` on every
device), which `scale` uses to keep SurCo's linear surrogate from herding tables:

1. every table on its cheapest device, ``argmin_d c[t, d]`` (ties to the lowest index).
   When that satisfies every row it is *the* optimum (the optimum of the relaxation
   without those rows): `Status.OPTIMAL`;
2. otherwise, with ``repair="lp"`` (default): the LP relaxation (HiGHS, its model built
   once and warm-started from the previous basis), whose integral rows are kept; with
   ``repair="greedy"``: the argmin, with the tables of the least regret per unit of the
   resource most over taken off each device over a row. Either way the tables left are
   then inserted in Martello & Toth's regret order (the table whose best and second-best
   devices with room differ most first, to its best), and every empty device takes the
   table whose move costs least. Memory is hard, checked in exact bytes (as
   `tasks.plan_violations`); balance rows are soft here: a table that fits nowhere within
   them goes where it exceeds them least. Feasible for Ω, not proven optimal:
   `Status.FEASIBLE`;
3. when memory is stuck (rare: memory nearly full), the MILP of `spec` (HiGHS,
   ``fallback_time_limit`` seconds), re-checked in exact bytes.

Measured (random costs, memory-tight 12 × 4 tasks, tests/sharding/test_scale_gap.py):
within 0.2-1 % of HiGHS's optimum; at 400 × 32 a repaired answer takes 5-60 ms.
`stats["repaired"]` says whether step 2 ran, `stats["fallback"]` whether step 3 did.
"""
from __future__ import annotations

import functools

import numpy as np

from surco.solvers import LinearSpec, Solver, Status, make_solver

__all__ = ["GapOracle", "gap_oracle"]


class GapOracle(Solver):
    """``argmin c·x`` over the sharding Ω by argmin + repair (see the module docstring).

    Args:
      size_bytes: (T,) table sizes in bytes (compared in exact int64 bytes, as
        `tasks.plan_violations` does).
      capacity: (D,) device memory in bytes.
      name: used in messages.
      fallback_time_limit: seconds the exact MILP gets when the repair is stuck.
      loads, limits: optional balance rows, (T, k) non-negative loads and k positive
        limits per device (given together).
      repair: "lp" or "greedy" (step 2 of the module docstring).

    Raises:
      ValueError: sizes or capacities that are not positive and finite, T < D, a table
        larger than every device, loads without limits (or the reverse), bad loads or
        limits, an unknown repair.
    """

    def __init__(self, size_bytes, capacity, name: str = "sharding-gap",
                 fallback_time_limit: float = 10.0, loads=None, limits=None,
                 repair: str = "lp"):
        size = np.asarray(size_bytes, np.float64).reshape(-1)
        cap = np.asarray(capacity, np.float64).reshape(-1)
        if size.size == 0 or cap.size == 0:
            raise ValueError(f"{name}: size_bytes and capacity must be non-empty, got "
                             f"{size.size} tables and {cap.size} devices")
        for what, a in (("size_bytes", size), ("capacity", cap)):
            if not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise ValueError(f"{name}: {what} must be positive finite bytes")
        if size.size < cap.size:
            raise ValueError(f"{name}: {size.size} tables cannot use all {cap.size} devices")
        if size.max() > cap.max():
            raise ValueError(f"{name}: table {int(np.argmax(size))} ({size.max():.0f} bytes) "
                             f"fits on no device (largest {cap.max():.0f} bytes)")
        if not fallback_time_limit > 0:
            raise ValueError(f"{name}: fallback_time_limit must be positive, got "
                             f"{fallback_time_limit}")
        if repair not in ("lp", "greedy"):
            raise ValueError(f"{name}: repair must be 'lp' or 'greedy', got {repair!r}")
        if (loads is None) != (limits is None):
            raise ValueError(f"{name}: give loads and limits together")
        if loads is not None:
            loads = np.asarray(loads, np.float64).reshape(size.size, -1)
            limits = np.broadcast_to(np.asarray(limits, np.float64).reshape(-1),
                                     (loads.shape[1],)).copy()
            if not (np.all(np.isfinite(loads)) and np.all(loads >= 0)
                    and np.all(np.isfinite(limits)) and np.all(limits > 0)):
                raise ValueError(f"{name}: loads must be finite and >= 0, limits positive")
        super().__init__((size.size, cap.size), name)
        self.size = np.rint(size).astype(np.int64)
        self.capacity = cap
        self.fallback_time_limit = float(fallback_time_limit)
        self.loads, self.limits = loads, limits
        self.repair = repair
        self._lp = None
        # resources as columns, each scaled to its per-device limit: memory first
        res = [size[:, None] / cap[None, :].min()]
        lim = [cap / cap.min()]
        if loads is not None:
            res.append(loads / limits[None, :])
            lim.append(np.ones(cap.size))
        self._res = np.concatenate(res, axis=1)                      # (T, k)
        self._lim = np.column_stack([lim[0]] + [np.ones(cap.size)] *
                                    (self._res.shape[1] - 1))         # (D, k)
        self._exact = None

    def factory(self):
        return functools.partial(GapOracle, self.size, self.capacity, self.name,
                                 self.fallback_time_limit, self.loads, self.limits,
                                 self.repair)

    @functools.cached_property
    def omega_spec(self) -> LinearSpec:
        """The task's own Ω (`tasks.spec_for`: one device per table, memory, every device
        used), without the balance rows; what searches from the oracle's answers use."""
        from types import SimpleNamespace

        from .tasks import spec_for
        T, D = self.shape
        return spec_for(SimpleNamespace(n_tables=T, n_devices=D, size_bytes=self.size,
                                        capacity=self.capacity))

    @functools.cached_property
    def spec(self) -> LinearSpec:
        """The set this oracle minimises over, as a `LinearSpec`: `tasks.spec_for`'s rows
        (one device per table, memory, every device used) and, with ``loads``, one row per
        device and load, ``Σ_t loads[t, k] x[t, d] <= limits[k]`` (written relative to the
        limit)."""
        import scipy.sparse as sp

        T, D = self.shape
        base = self.omega_spec
        if self.loads is None:
            return base
        k = self.loads.shape[1]
        rel = self.loads / self.limits[None, :]                       # (T, k)
        idx = np.arange(T * D).reshape(T, D)
        rows = (np.arange(k)[:, None, None] * D + np.arange(D)[None, None, :]
                + np.zeros((1, T, 1), int))                           # (k, T, D)
        A = sp.csr_matrix((np.repeat(rel.T, D, axis=1).reshape(-1),
                           (rows.reshape(-1), np.tile(idx.reshape(-1), k))),
                          shape=(k * D, T * D))
        return LinearSpec(shape=(T, D), A_ub=sp.vstack([base.A_ub, A]).tocsr(),
                          b_ub=np.concatenate([base.b_ub, np.ones(k * D)]), A_eq=base.A_eq,
                          b_eq=base.b_eq, lb=0.0, ub=1.0, integer=True,
                          name=base.name + "+balance")

    def solve_flat(self, c):
        T, D = self.shape
        C = c.reshape(T, D)
        assign = np.argmin(C, axis=1)
        use = np.zeros((D, self._res.shape[1]))
        np.add.at(use, assign, self._res)
        count = np.bincount(assign, minlength=D)
        mem = np.bincount(assign, weights=self.size, minlength=D)
        repaired = bool(np.any(use > self._lim + 1e-12) or np.any(count == 0)
                        or np.any(mem > self.capacity))
        if repaired and self.repair == "lp":
            assign, use, count, ok = self._lp_round(c)
            if not ok:
                return self._fallback(c)
        elif repaired and not self._repair(C, assign, use, count):
            return self._fallback(c)
        x = np.zeros((T, D))
        x[np.arange(T), assign] = 1.0
        status = Status.FEASIBLE if repaired else Status.OPTIMAL
        return (x.reshape(-1), float(C[np.arange(T), assign].sum()), status,
                {"repaired": repaired, "fallback": False})

    def _lp_round(self, c):
        """The LP relaxation of `spec` (HiGHS, warm-started from the previous basis), its
        integral rows kept, its fractional rows placed by `_insert`."""
        T, D = self.shape
        if self._lp is None:
            self._lp = make_solver(self.spec, backend="highs", relax=True)
        sol = self._lp.solve(c, check=False)
        if sol.status not in (Status.OPTIMAL, Status.FEASIBLE):
            assign = np.argmin(c.reshape(T, D), axis=1)
            use = np.zeros((D, self._res.shape[1]))
            np.add.at(use, assign, self._res)
            count = np.bincount(assign, minlength=D)
            return assign, use, count, self._repair(c.reshape(T, D), assign, use, count)
        x = np.asarray(sol.x).reshape(T, D)
        whole = x.max(axis=1) >= 1.0 - 1e-6
        assign = np.where(whole, np.argmax(x, axis=1), -1)
        use = np.zeros((D, self._res.shape[1]))
        np.add.at(use, assign[whole], self._res[whole])
        count = np.bincount(assign[whole], minlength=D)
        # the LP's rows hold within its tolerance: memory is re-checked in exact bytes
        ok = self._repair(c.reshape(T, D), assign, use, count, soft=False)
        return assign, use, count, ok

    def _repair(self, C, assign, use, count, soft: bool = True) -> bool:
        """Step 2 of the module docstring, in place (``assign`` -1: not placed yet); with
        ``soft=False`` only devices over memory are unloaded. False when memory is stuck."""
        T, D = C.shape
        res, lim, size, cap = self._res, self._lim, self.size, self.capacity
        placed = assign >= 0
        mem = np.bincount(assign[placed], weights=size[placed], minlength=D).astype(np.int64)

        def over(d):
            return mem[d] > cap[d] or (soft and np.any(use[d] > lim[d] + 1e-12))
        # (a) unload: off each device over a limit, the tables with the least regret (the
        # cost of their cheapest other device minus their own) per unit of the resource
        # most over, until it is within every limit
        rows = np.arange(T)
        own = np.where(placed, C[rows, np.maximum(assign, 0)], 0.0)
        other = np.where(np.arange(D)[None, :] == assign[:, None], np.inf, C).min(axis=1) \
            if D > 1 else own
        regret = other - own
        pool = list(np.flatnonzero(~placed))
        for d in range(D):
            if not over(d):
                continue
            on = np.flatnonzero(assign == d)
            k = int(np.argmax(use[d] - lim[d])) if soft else 0
            for t in on[np.argsort(regret[on] / np.maximum(res[on, k], 1e-12), kind="stable")]:
                if not over(d):
                    break
                use[d] -= res[t]
                mem[d] -= size[t]
                count[d] -= 1
                assign[t] = -1
                pool.append(t)
        return self._insert(C, assign, use, count, mem, np.asarray(pool, dtype=np.int64))

    def _insert(self, C, assign, use, count, mem, pool) -> bool:
        """Place the tables of ``pool`` (unassigned: -1), then fill empty devices; in place.
        False when a table fits no device's memory."""
        T, D = C.shape
        res, lim, size, cap = self._res, self._lim, self.size, self.capacity
        # (b) insert (Martello & Toth's regret order): the table whose best and second-best
        # devices with room differ most goes first, to its best; limits other than memory
        # are soft: a table with no room within them goes where it exceeds them least
        while pool.size:
            fits_mem = mem[None, :] + size[pool, None] <= cap[None, :]          # (P, D)
            if not fits_mem.any(axis=1).all():
                return False
            after = use[None, :, :] + res[pool, None, :] - lim[None, :, :]       # (P, D, k)
            soft = np.all(after <= 1e-12, axis=2) & fits_mem
            cost = np.where(soft, C[pool], np.inf)
            none = ~soft.any(axis=1)
            if none.any():  # least excess, then cost, among devices with memory for it
                worst = np.where(fits_mem, after.max(axis=2), np.inf)
                cost[none] = np.where(worst[none] <= worst[none].min(axis=1, keepdims=True),
                                      C[pool][none], np.inf)
            srt = np.sort(cost, axis=1)
            second = srt[:, 1] if D > 1 else srt[:, 0]
            urgency = np.where(np.isfinite(second), second - srt[:, 0], np.inf)
            i = int(np.argmax(urgency))
            t, e = int(pool[i]), int(np.argmin(cost[i]))
            assign[t] = e
            use[e] += res[t]
            mem[e] += size[t]
            count[e] += 1
            pool = np.delete(pool, i)
        # (c) every device used: an empty device takes the table, from a device holding
        # two or more, whose move costs least
        rows = np.arange(T)
        for e in np.flatnonzero(count == 0):
            donor = count[assign] >= 2
            fits = mem[e] + size <= cap[e]
            move = np.where(donor & fits, C[:, e] - C[rows, assign], np.inf)
            t = int(np.argmin(move))
            if not np.isfinite(move[t]):
                return False
            d = int(assign[t])
            assign[t] = e
            use[d] -= res[t]
            use[e] += res[t]
            mem[d] -= size[t]
            mem[e] += size[t]
            count[d] -= 1
            count[e] += 1
        return True

    def _fallback(self, c):
        """Step 3: the MILP of `spec` (HiGHS, time-limited); its memory rows hold within
        the solver's tolerance (about a kilobyte), so exact bytes are re-checked and a
        device over them is unloaded as in step 2."""
        T, D = self.shape
        if self._exact is None:
            self._exact = make_solver(self.spec, backend="highs",
                                      time_limit=self.fallback_time_limit)
        sol = self._exact.solve(c, check=False)
        stats = {"repaired": True, "fallback": True}
        if sol.status not in (Status.OPTIMAL, Status.FEASIBLE):
            return None, float("nan"), sol.status, stats
        C = c.reshape(T, D)
        assign = np.argmax(np.asarray(sol.x).reshape(T, D), axis=1)
        use = np.zeros((D, self._res.shape[1]))
        np.add.at(use, assign, self._res)
        count = np.bincount(assign, minlength=D)
        if not self._repair(C, assign, use, count, soft=False):
            return None, float("nan"), Status.ERROR, dict(stats, detail="no packing found "
                                                          "within exact memory")
        x = np.zeros((T, D))
        x[np.arange(T), assign] = 1.0
        return x.reshape(-1), float(C[np.arange(T), assign].sum()), Status.FEASIBLE, stats


def gap_oracle(task) -> GapOracle:
    """The `GapOracle` of a `tasks.ShardingTask` (its sizes and capacities)."""
    return GapOracle(task.size_bytes, task.capacity,
                     name=f"sharding-gap[T={task.n_tables},D={task.n_devices}]")
