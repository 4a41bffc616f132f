"""Solver-layer benchmark: incremental re-solves, batch scaling, GIL release; the default
backend and warm starts.

    python -m bench.solvers [--quick] [--part batch|backends|all] [--problems sharding,grid-sp]

``--part batch`` (the tables below) writes bench/results/solvers[-quick].json (``--problems``
narrows it to some problems);
``--part backends`` (see `backends_part`) writes bench/results/solvers-backends[-quick].json.

Problems:
  * sharding: the table-sharding assignment MILP, 50 tables x 4 devices, x[t, d] binary,
    sum_d x[t, d] = 1, sum_t size_t x[t, d] <= cap (cap = 1.2 x mean load), random costs;
  * grid-sp: shortest path on a 10 x 10 grid (edges right and down) as the flow LP of
    ``ShortestPathOracle(...).spec``, random nonnegative costs (CP-SAT, which needs integer
    variables, gets the same polytope with x integer: it is totally unimodular, so the
    optimum is the same). Dijkstra (``ShortestPathOracle``) is a reference row.

Per backend and problem:
  * ``inc_wall_ms`` / ``solver_ms``: median wall time of one incremental ``solve(c)`` (one
    model, only the objective changes) and the median time the solver itself reports;
  * ``overhead`` = inc_wall_ms / solver_ms (the target); ``overhead_best`` = fastest wall /
    fastest solver time, which a loaded machine disturbs less (pre-emptions hit medians);
  * ``rebuild_ms``: median time of ``make_solver(spec, backend).solve(c)`` (model rebuilt),
    for information: building a model takes under a millisecond and the solve dominates,
    so "rebuild >= 3 x slower than incremental" is no longer a target (issue 18);
  * ``gil_released``: fraction of solve calls during which another Python thread ran (see
    `gil_probe`; 1: the solve releases the GIL, 0: it holds it), measured on the row's
    problem, except that LP backends are probed on a 30 x 30 grid LP (10 x 10 solves can
    be shorter than thread wake-up latencies; ``gil_probe_on`` in the JSON);
  * ``cpu_per_wall``: CPU seconds of this process (all its threads) per wall second over the
    incremental solves: about 1 for a single-threaded solver, > 1 if the solver ran
    threads of its own (which k workers would multiply beyond k cores);
  * ``thr1``/``thr2``/``proc1``/``proc2``: ``solve_batch`` throughput (solves/s) with a
    ThreadPoolExecutor / ProcessPoolExecutor (spawn) of 1 and 2 workers, best of R runs,
    interleaved; ``best_kind`` the executor with the higher 2-worker throughput,
    ``scale_2v1`` its 2-worker / 1-worker throughput;
  * ``ctrl_2v1``: the same ratio, interleaved with those runs on the same thread pools, for a
    control workload that needs no GIL and no solver (``zlib.compress`` of a block sized to
    the row's median solve time): what two workers can get from the machine at that moment;
    ``scale_vs_ctrl`` = scale_2v1 / ctrl_2v1 (about 1: the solvers scale as far as the
    machine lets anything scale); ``load_1min``: the load average when the row was measured;
  * ``thr_cpu_2v1``: process CPU seconds per solve with 2 threads / with 1 (about 1: the
    second worker adds no work: no spinning, no oversubscription), ``thr_cores1`` /
    ``thr_cores2``: CPU seconds per wall second of the 1- / 2-thread batch, i.e. the cores
    it got; the thread ratio is about thr_cores2 / thr_cores1 / thr_cpu_2v1;
  * ``balance_1chunk`` / ``balance``: the 2-worker speed-up that the spread of solve times
    leaves with one chunk per worker / with the chunks `solve_batch` makes (see `balance`;
    from CPU seconds, so a loaded machine does not change it).

Batch scaling needs free cores: on a machine shared with other jobs (the JSON records the
load average, the CPU seconds this process got and whether the kernel's autogroup
scheduling, which gives a whole session one fair share, is on) 2 workers cannot beat 1, and
the control shows it. ``gil_released`` does not depend on free cores and says whether threads
*can* overlap.

Targets (one per backend per problem): incremental wall <= 1.5 x solver time; 2 workers
>= 1.6x the throughput of one (best kind).
"""
from __future__ import annotations

import dataclasses
import functools
import multiprocessing as mp
import os
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from bench._report import Report, parse_args
from surco.solvers import LinearSpec, ShortestPathOracle, make_solver
from surco.solvers.base import chunk_sizes


# -- problems --------------------------------------------------------------------------------
def sharding_spec(T: int = 50, D: int = 4, seed: int = 0) -> LinearSpec:
    """Ω of table sharding: each of T tables on exactly one of D devices, memory capacity."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(1.0, 20.0, T)
    return LinearSpec(shape=(T, D),
                      A_eq=sp.kron(sp.eye(T), np.ones((1, D))), b_eq=np.ones(T),
                      A_ub=sp.kron(size[None, :], sp.eye(D)),
                      b_ub=np.full(D, 1.2 * size.sum() / D),
                      lb=0, ub=1, integer=True, name=f"sharding-T{T}-D{D}")


def grid_oracle(k: int = 10) -> ShortestPathOracle:
    """Shortest path from the top-left to the bottom-right corner of a k x k grid."""
    edges = [(r * k + c, r * k + c + 1) for r in range(k) for c in range(k - 1)]
    edges += [(r * k + c, (r + 1) * k + c) for r in range(k - 1) for c in range(k)]
    return ShortestPathOracle(k * k, np.array(edges), 0, k * k - 1, name=f"grid{k}x{k}")


# -- measurements ----------------------------------------------------------------------------
def incremental(solver, C):
    """(median wall s, median solver-reported s, fastest wall / fastest solver time,
    process CPU s per wall s) of one incremental ``solve(c)`` over ``C``."""
    solver.solve(C[-1])  # warm: first solve pays one-off setup
    wall, own = [], []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for c in C:
        s = solver.solve(c)
        wall.append(s.stats["wall_time"])
        own.append(s.stats["solve_time"])
    cpu_per_wall = (time.process_time() - cpu0) / (time.perf_counter() - t0)
    return (float(np.median(wall)), float(np.median(own)),
            float(np.min(wall)) / max(float(np.min(own)), 1e-9), cpu_per_wall)


def balance(solver, C, workers: int = 2) -> tuple[float, float]:
    """Speed-up of ``workers`` workers over one that load imbalance alone allows, from the
    CPU seconds of each solve of ``C`` (process CPU time, which other jobs on the machine do
    not inflate): chunks handed in order to the first free worker, with one contiguous chunk
    per worker and with the chunks of `chunk_sizes` (what `solve_batch` does). Ignores the
    GIL-bound glue (see ``gil_released``) and assumes a free core per worker."""
    solver.solve(C[-1])
    cpu = []
    for c in C:
        t0 = time.process_time()
        solver.solve(c)
        cpu.append(time.process_time() - t0)
    cpu = np.array(cpu)

    def makespan(chunks):
        free = np.zeros(workers)
        for ch in chunks:
            free[np.argmin(free)] += ch.sum()
        return free.max()

    guided = np.split(cpu, np.cumsum(chunk_sizes(len(cpu), workers))[:-1])
    return (float(cpu.sum() / makespan(np.array_split(cpu, workers))),
            float(cpu.sum() / makespan(guided)))


def rebuild(build, C):
    """Median time of ``build().solve(c)``: the model is built anew for every cost."""
    times = []
    for c in C:
        t0 = time.perf_counter()
        build().solve(c)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def gil_probe(solver, C, n: int) -> tuple[float, float]:
    """Fraction of ``solve`` calls during which another Python thread got to run.

    For each call a probe thread sleeps (GIL released) for 30% of the median solve time and,
    on waking, takes the GIL to record the time. If the solver releases the GIL while it
    works, the probe records a time before ``solve`` returns; if it holds the GIL, the probe
    can only record after. The answer is per call and does not depend on how many cores
    are free (scheduling delays are far below the solve times used: >= a few ms), unlike a
    throughput ratio. Returns (fraction, median solve wall time in s).
    """
    walls = [solver.solve(C[k % len(C)]).stats["wall_time"] for k in range(5)]
    delay = 0.3 * float(np.median(walls))
    hits = 0
    for k in range(n):
        woke = []
        th = threading.Thread(target=lambda: (time.sleep(delay), woke.append(time.perf_counter())))
        th.start()
        solver.solve(C[k % len(C)])
        done = time.perf_counter()
        th.join()
        hits += woke[0] < done
    return hits / n, float(np.median(walls))


class Control:
    """A CPU-bound task that needs neither the GIL (``zlib.compress`` releases it) nor a
    solver, sized to take about ``seconds``: how far two threads can scale right now."""

    def __init__(self, seconds: float):
        block = np.random.default_rng(1).integers(0, 4, size=1 << 16, dtype=np.uint8).tobytes()
        t0 = time.perf_counter()
        for _ in range(5):
            zlib.compress(block, 6)
        per_block = (time.perf_counter() - t0) / 5
        self.data = block * max(1, round(seconds / per_block))

    def task(self, _=None) -> None:
        zlib.compress(self.data, 6)

    def throughput(self, executor, n: int) -> float:
        t0 = time.perf_counter()
        list(executor.map(self.task, range(n)))
        return n / (time.perf_counter() - t0)


def batch_scaling(solver, C, pools, reps: int, control: Control):
    """Throughput with each executor of ``pools`` ({(kind, workers): executor}) and of the
    control on the thread pools (keys ("ctrl", workers)), interleaved; for the thread pools
    also the process CPU seconds per solve (keys ("cpu", workers)) and the CPU seconds per
    wall second, i.e. the cores the batch got (keys ("cores", workers)), of the fastest run.
    """
    for ex in pools.values():  # warm: every worker builds (and caches) its model
        solver.solve_batch(C[: 4 * max(1, getattr(ex, "_max_workers", 1))], executor=ex)
    out = {k: 0.0 for k in pools}
    for _ in range(reps):
        for (kind, k), ex in pools.items():
            t0, cpu0 = time.perf_counter(), time.process_time()
            solver.solve_batch(C, executor=ex)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if len(C) / wall > out[kind, k]:
                out[kind, k] = len(C) / wall
                if kind == "thread":
                    out["cpu", k], out["cores", k] = cpu / len(C), cpu / wall
            if kind == "thread":
                out["ctrl", k] = max(out.get(("ctrl", k), 0.0), control.throughput(ex, len(C)))
    return out


# -- the default backend and warm starts ----------------------------------------------------
def surco_costs(n_var: int, steps: int, rng, step: float = 0.05) -> np.ndarray:
    """A SurCo-like cost sequence: consecutive costs differ by a small step."""
    C = [rng.normal(size=n_var)]
    for _ in range(steps - 1):
        C.append(C[-1] + step * rng.normal(size=n_var))
    return np.array(C)


def warm_cold(spec, backend: str, C: np.ndarray, reps: int) -> dict:
    """Per-solve wall time over the sequence ``C`` with and without warm starts (best of
    ``reps`` interleaved runs, each on a fresh solver), and whether every optimum value is
    the same (relative 1e-6)."""
    best = {True: np.inf, False: np.inf}
    objs = {}
    for _ in range(reps):
        for warm in (False, True):
            s = make_solver(spec, backend=backend, warm_start=warm)
            s.solve(C[0])
            t0 = time.perf_counter()
            objs[warm] = np.array([s.solve(c).objective for c in C[1:]])
            best[warm] = min(best[warm], (time.perf_counter() - t0) / (len(C) - 1))
    same = bool(np.allclose(objs[True], objs[False], rtol=1e-6, atol=1e-6))
    return {"cold_ms": 1e3 * best[False], "warm_ms": 1e3 * best[True],
            "warm_speedup": best[False] / best[True], "same_optima": same}


def lp_basis(spec, C: np.ndarray) -> dict:
    """HiGHS on an LP: simplex iterations and wall time per solve with the basis kept
    (warm) and cleared before each solve (cold)."""
    out = {}
    for warm in (False, True):
        s = make_solver(spec, backend="highs", warm_start=warm)
        s.solve(C[0])
        it, t0 = 0, time.perf_counter()
        for c in C[1:]:
            s.solve(c)
            it += s._run.h.getInfo().simplex_iteration_count
        out[warm] = ((time.perf_counter() - t0) / (len(C) - 1), it / (len(C) - 1))
    return {"cold_ms": 1e3 * out[False][0], "warm_ms": 1e3 * out[True][0],
            "warm_speedup": out[False][0] / out[True][0], "cold_iters": out[False][1],
            "warm_iters": out[True][1], "same_optima": True}


def sharding_zero(problem, backend: str, warm: bool, tasks, steps: int) -> tuple[float, float]:
    """bench.sharding's SurCo-zero (`settings.run_zero`'s start and settings) on ``tasks``:
    (seconds per task, mean true cost) with ``warm_start=warm``. The step is compiled once
    per problem and shapes (`surco.zero`'s cache), before the timed calls."""
    import surco
    from surco.problems.sharding import settings as S
    secs, cost = [], []
    for task in tasks:
        t0 = time.perf_counter()
        res = surco.zero(problem, task, init=S.zero_start(task), key=0, backend=backend,
                         solver_options={"warm_start": warm}, **S.zero_kwargs(steps))
        secs.append(time.perf_counter() - t0)
        cost.append(res.true_cost)
    return float(np.mean(secs)), float(np.mean(cost))


def backends_part(quick: bool) -> None:
    """Which backend is the default, and what warm starts save.

    * per backend (highs, scip, cpsat, pyscipopt) on the benches' MILPs (sharding 50 x 4
      `sharding_spec`, nonlinear assignment 40 x 5 and 8 x 3 from `surco.problems.assignment`):
      wall ms per solve over a SurCo-like cost sequence (`surco_costs`), cold and warm
      (`warm_cold`), with a check that every optimum value is the same;
    * HiGHS LP basis reuse on the 30 x 30 grid shortest-path LP (`lp_basis`);
    * SurCo-zero on sharding tasks as bench.sharding runs it, seconds per task and mean true
      cost, warm starts on vs off, side by side and interleaved (cold, warm, warm, cold)
      (target: >= 1.5 x at equal or lower cost);
    * the default backend: the fastest warm backend summed over the MILPs.
    """
    from surco.problems import assignment as A
    from surco.problems.sharding import generate as sharding_tasks
    rep = Report("solvers-backends", quick)
    rep.extra["load_average_at_start"] = os.getloadavg()
    rng = np.random.default_rng(0)
    n_seq, reps = (40, 2) if quick else (150, 3)
    milps = {"sharding 50x4": sharding_spec(50, 4), "assignment 40x5": A.make_problem(40, 5).space,
             "assignment 8x3": A.make_problem(8, 3).space}
    total = {}
    for pname, spec in milps.items():
        C = surco_costs(spec.n, n_seq, rng)
        for backend in ("highs", "scip", "cpsat", "pyscipopt"):
            r = warm_cold(spec, backend, C, reps)
            total[backend] = total.get(backend, 0.0) + r["warm_ms"]
            rep.row(setting=pname, method=backend, **r)
            rep.target(f"{pname}/{backend}: warm start keeps every optimum value",
                       float(r["same_optima"]), ">=", 1.0)
    lp = grid_oracle(30).spec
    r = lp_basis(lp, surco_costs(lp.n, n_seq, rng) ** 2)
    rep.row(setting="grid-sp 30x30 LP", method="highs (basis)", **r)
    default = min(total, key=total.get)
    rep.extra["sum_warm_ms_per_backend"] = total
    rep.extra["fastest_backend"] = default
    from surco.solvers import DEFAULT_BACKEND
    rep.target("DEFAULT_BACKEND is the fastest measured here", float(default == DEFAULT_BACKEND),
               ">=", 1.0)
    tasks = sharding_tasks(2 if quick else 5, seed=1, n_tables=50, n_devices=4, split="test")
    steps = 30 if quick else None
    from surco.problems.sharding import settings as S
    problem = S.default_problem()
    sharding_zero(problem, DEFAULT_BACKEND, True, tasks[:1], 2)    # compile outside timings
    for backend in (DEFAULT_BACKEND, "scip", "cpsat"):
        runs = {False: [], True: []}
        for w in (False, True, True, False):     # interleaved: both see the same load
            runs[w].append(sharding_zero(problem, backend, w, tasks, steps))
        (tc, cc), (tw, cw) = (np.mean(runs[w], axis=0) for w in (False, True))
        rep.row(setting="sharding SurCo-zero T=50 D=4", method=backend, cold_s_per_task=tc,
                warm_s_per_task=tw, warm_speedup=tc / tw, cold_cost=cc, warm_cost=cw)
        rep.target(f"sharding SurCo-zero/{backend}: cold s / warm s per task", tc / tw, ">=", 1.5)
        rep.target(f"sharding SurCo-zero/{backend}: warm cost / cold cost", cw / cc, "<=", 1.0)
    rep.extra["load_average_at_end"] = os.getloadavg()
    rep.finish(table_columns=["setting", "method", "cold_ms", "warm_ms", "warm_speedup",
                              "cold_iters", "warm_iters", "same_optima", "cold_s_per_task",
                              "warm_s_per_task", "cold_cost", "warm_cost"])


# -- main ------------------------------------------------------------------------------------
def main(argv=None):
    def extra(p):
        p.add_argument("--part", choices=["batch", "backends", "all"], default="all",
                       help="batch: incremental / batch tables; backends: default backend and "
                            "warm starts")
        p.add_argument("--problems", default="sharding,grid-sp",
                       help="comma-separated problems of the batch part (sharding, grid-sp)")

    args = parse_args(__doc__.splitlines()[0], argv, extra=extra)
    wanted = [p for p in args.problems.split(",") if p]
    if unknown := set(wanted) - {"sharding", "grid-sp"}:
        raise SystemExit(f"--problems: unknown {sorted(unknown)}; expected sharding, grid-sp")
    if args.part in ("backends", "all"):
        backends_part(args.quick)
    if args.part == "backends":
        return
    quick = args.quick
    n_inc, n_reb, n_batch, reps, n_probe = (30, 10, 32, 2, 10) if quick else (200, 40, 96, 3, 30)
    rep = Report("solvers", quick)
    rep.extra["load_average_at_start"] = os.getloadavg()
    rng = np.random.default_rng(0)
    orc = grid_oracle(10)
    sp_spec = orc.spec
    big_lp = grid_oracle(30).spec  # GIL probe for backends whose grid-sp solves are < 3 ms
    problems = {
        "sharding": (sharding_spec(), ["scip", "highs", "cpsat", "pyscipopt"],
                     lambda n: rng.normal(size=(n, 50, 4))),
        "grid-sp": (sp_spec, ["scip", "highs", "cpsat", "glop", "pdlp", "pyscipopt"],
                    lambda n: rng.uniform(0.0, 1.0, size=(n, sp_spec.n))),
    }
    ctx = mp.get_context("spawn")
    pools = {("thread", 1): ThreadPoolExecutor(1), ("thread", 2): ThreadPoolExecutor(2),
             ("process", 1): ProcessPoolExecutor(1, mp_context=ctx),
             ("process", 2): ProcessPoolExecutor(2, mp_context=ctx)}
    problems = {p: v for p, v in problems.items() if p in wanted}
    jobs = [(p, b) for p, (_, bs, _) in problems.items() for b in bs]
    jobs += [("grid-sp", "dijkstra")] if "grid-sp" in problems else []
    for pname, backend in tqdm(jobs, desc="solvers bench", disable=None):
        spec, _, costs = problems[pname]
        C = costs(max(n_inc, n_batch))
        label = backend
        if backend == "dijkstra":  # reference: the oracle on the same graph
            label, solver = "oracle (dijkstra)", orc
            build = lambda: grid_oracle(10)  # noqa: E731
        else:
            if backend == "cpsat" and not spec.is_mip:
                spec = dataclasses.replace(spec, integer=True, name=spec.name + "-int")
                label = "cpsat (x integer)"
            solver = make_solver(spec, backend=backend)
            build = functools.partial(make_solver, spec, backend=backend)
        inc_wall, own, best_ratio, cpu_per_wall = incremental(solver, C[:n_inc])
        reb = rebuild(build, C[:n_reb])
        probe_on, probe_solver, probe_C = pname, solver, C
        if pname == "grid-sp" and backend not in ("cpsat", "dijkstra"):
            probe_on, probe_solver = "grid30-lp", make_solver(big_lp, backend=backend)
            probe_C = rng.uniform(0.0, 1.0, size=(8, big_lp.n))
        gil, _ = gil_probe(probe_solver, probe_C, n_probe)
        bal_static, bal = balance(solver, C[:n_batch])
        tp = batch_scaling(solver, C[:n_batch], pools, reps, Control(inc_wall))
        kind = max(("thread", "process"), key=lambda k: tp[k, 2])
        scale = tp[kind, 2] / tp[kind, 1]
        ctrl = tp["ctrl", 2] / tp["ctrl", 1]
        rep.row(setting=pname, method=label, inc_wall_ms=1e3 * inc_wall, solver_ms=1e3 * own,
                overhead=inc_wall / own, overhead_best=best_ratio, rebuild_ms=1e3 * reb, rebuild_x=reb / inc_wall,
                cpu_per_wall=cpu_per_wall, gil_released=gil, gil_probe_on=probe_on,
                thr1=tp["thread", 1], thr2=tp["thread", 2], proc1=tp["process", 1],
                proc2=tp["process", 2], best_kind=kind, scale_2v1=scale, ctrl_2v1=ctrl,
                scale_vs_ctrl=scale / ctrl, load_1min=os.getloadavg()[0],
                thr_cpu_2v1=tp["cpu", 2] / tp["cpu", 1], thr_cores1=tp["cores", 1],
                thr_cores2=tp["cores", 2],
                balance_1chunk=bal_static, balance=bal)
        if backend == "dijkstra":
            continue
        rep.target(f"{pname}/{label}: incremental wall / solver time", inc_wall / own, "<=", 1.5)
        rep.target(f"{pname}/{label}: solve_batch 2 workers / 1 ({kind})", scale, ">=", 1.6)
    for ex in pools.values():
        ex.shutdown()
    rep.extra["load_average_at_end"] = os.getloadavg()
    # CPU this process got (main + its threads; pool processes not counted) vs wall seconds:
    # on a machine shared with other jobs, timings and scaling are only as good as this.
    rep.extra["main_process_cpu_s"] = time.process_time()
    try:  # with autogroup, all threads and child processes of this session share one
        # fair share of the CPUs: 2 workers can only beat 1 if other sessions leave room.
        rep.extra["sched_autogroup"] = int(open("/proc/sys/kernel/sched_autogroup_enabled").read())
    except OSError:
        rep.extra["sched_autogroup"] = None
    rep.finish(table_columns=["setting", "method", "inc_wall_ms", "solver_ms", "overhead",
                              "rebuild_ms", "cpu_per_wall", "gil_released", "thr1", "thr2",
                              "proc1", "proc2", "best_kind", "scale_2v1", "ctrl_2v1",
                              "scale_vs_ctrl", "load_1min", "thr_cpu_2v1", "thr_cores1",
                              "thr_cores2", "balance_1chunk", "balance"])


if __name__ == "__main__":
    main()
