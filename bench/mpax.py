"""MPAX (PDHG in JAX, one vmapped XLA call per batch) against HiGHS one LP at a time: batch
throughput and exactness, on this machine's CPU.

    python -m bench.mpax [--quick]

LPs (float32 inside JAX, x64 off as for users; MPAX's r2HPDHG at eps_abs = eps_rel = 1e-4):

* ``sp5``: the s–t flow LP of bench.estimators' 5 × 5 grid (PyEPO's: 40 arcs, east and
  south, corner to corner), with PyEPO's cost recipe (`bench.estimators.make_instance`,
  seeds 0-7, 32 costs each);
* ``shard50``: the LP relaxation of a DLRM-50 sharding task (50 tables × 4 devices = 200
  variables, 50 + 8 rows; `surco.problems.sharding.spec_for`), costs uniform in [0, 1].

For each LP and batch size B in {1, 32, 256} (the same sizes with --quick): MPAX's
``solve_batch`` (one jit(vmap) call; B = 1 runs as a batch of two copies, see
`MpaxSolver._run`) and HiGHS (highspy, dual simplex, warm basis as `make_solver` sets it by
default) solving the same B costs one by one, timed side by side in this run; LPs/s is B over
the best of ``repeats`` timed calls, the two sides taking turns in each round (after one untimed call,
which is where MPAX compiles: ``compile_seconds``). ``speedup`` = MPAX LPs/s / HiGHS LPs/s. The same in CPU seconds (``lps_per_cpu_s``,
``speedup_cpu``; ``time.process_time``, every thread of the process: XLA may use both
cores, HiGHS uses one), which varies much less than wall time when the machine is loaded
(the JSON states the load average).

Exactness (`surco.solvers.mpax_backend.exactness`) on the B = 256 costs (32 with --quick):
the largest |c·x_pdhg − HiGHS optimum| (absolute and relative to max(1, |opt|)), the largest
violation of Ω by x_pdhg, and the largest gap of the vertex `polish` finds (an exact HiGHS
solve on the face of the bounds PDHG found active), with how many polishes fell back to a
full solve.

The issue states no numeric target for MPAX, so ``targets`` is empty. GPU: none on the
machine that wrote the committed results (``gpu`` in the JSON). Writes
bench/results/mpax[-quick].json.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from bench._report import Report, parse_args

BATCHES = (1, 32, 256)


def _lps():
    """``name -> (LP, costs (256, *shape))``."""
    from bench.estimators import GRID, grid_arcs, make_instance
    from surco.problems import sharding as S
    from surco.solvers import ShortestPathOracle
    nodes = GRID[0] * GRID[1]
    sp5 = ShortestPathOracle(nodes, grid_arcs(*GRID), 0, nodes - 1).spec
    C_sp = np.concatenate([make_instance(seed)["C"] for seed in range(8)]).astype(np.float64)
    _, test_pool = S.split_pool(S.generate_pool(0))
    task = S.generate_tasks(test_pool, n_tables=50, n_devices=4, n_tasks=1, seed=0)[0]
    shard = S.spec_for(task).relaxed()
    C_sh = np.random.default_rng(0).uniform(0.0, 1.0, (256,) + shard.shape)
    return {"sp5": (sp5, C_sp), "shard50": (shard, C_sh)}


def _side_by_side(fns, repeats: int) -> tuple[list[float], list[float]]:
    """Best-of-``repeats`` wall and CPU seconds (``time.process_time``: all threads of this
    process) of each function, the functions taking turns in every round (so that a change
    of load on the machine hits both alike)."""
    wall = [float("inf")] * len(fns)
    cpu = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[i] = min(wall[i], time.perf_counter() - t0)
            cpu[i] = min(cpu[i], time.process_time() - c0)
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import jax

    from surco.solvers import make_solver
    from surco.solvers.mpax_backend import exactness

    rep = Report("mpax", args.quick)
    rep.extra["load_average_at_start"] = os.getloadavg()
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    rep.extra["gpu"] = gpus[0].device_kind if gpus else "not available on this machine"
    rep.extra["dtype"] = "float64" if jax.config.jax_enable_x64 else "float32"
    repeats = 5 if args.quick else 9
    n_exact = 32 if args.quick else 256
    try:
        for name, (spec, C_all) in _lps().items():
            mp = make_solver(spec, "mpax")
            highs = make_solver(spec, "highs")
            for B in BATCHES:
                C = C_all[:B]
                t0 = time.perf_counter()
                first = mp.solve_batch(C)
                first_s = time.perf_counter() - t0
                (t_mp, t_hi), (c_mp, c_hi) = _side_by_side(
                    [lambda: mp.solve_batch(C), lambda: [highs.solve(c) for c in C]], repeats)
                iters = [s.stats["iterations"] for s in first]
                rep.row(setting=f"{name} n={spec.n}", B=B, method="mpax (vmap)",
                        lps_per_s=B / t_mp, lps_per_cpu_s=B / c_mp, seconds=t_mp,
                        compile_seconds=max(first_s - t_mp, 0.0),
                        mean_iterations=float(np.mean(iters)), max_iterations=int(max(iters)))
                rep.row(setting=f"{name} n={spec.n}", B=B, method="highs one by one",
                        lps_per_s=B / t_hi, lps_per_cpu_s=B / c_hi, seconds=t_hi)
                rep.row(setting=f"{name} n={spec.n}", B=B, method="mpax / highs",
                        speedup=t_hi / t_mp, speedup_cpu=c_hi / c_mp)
            ex = exactness(mp, C_all[:n_exact])
            rep.row(setting=f"{name} n={spec.n}", B=n_exact, method="exactness vs highs",
                    max_abs_gap=ex.max_abs_gap, max_rel_gap=ex.max_rel_gap,
                    max_violation=ex.max_violation, max_polished_gap=ex.max_polished_gap,
                    polish_fallbacks=int(ex.fallback.sum()),
                    not_optimal=int(np.sum(ex.status != 0)))
    except KeyboardInterrupt:
        rep.extra["interrupted"] = True
        print("interrupted: writing what was measured")
    rep.extra["load_average_at_end"] = os.getloadavg()
    rep.finish(["setting", "B", "method", "lps_per_s", "lps_per_cpu_s", "speedup",
                "speedup_cpu", "compile_seconds", "mean_iterations", "max_abs_gap", "max_rel_gap", "max_violation",
                "max_polished_gap", "polish_fallbacks"])


if __name__ == "__main__":
    main()
