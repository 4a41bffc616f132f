"""The profiling backend benchmarked: which timing setting, how fast and how steady, and the
learned cost model it trains (DreamShard-style; SurCo §5.1).

    python -m bench.profiler [--quick] [--cache PATH] [--subsets N]

On whatever device JAX sees (a CUDA GPU when there is one, else the CPU; the same code), on
*train*-pool tasks and tables only:

1. **settings**: random plans of DLRM-50 train tasks (50 tables, 4 devices) profiled with
   each setting tried — the old engine (``"fused"``: one compiled program per table set,
   batch 2048, as the previous bench) and the arena engine (`measured.programs`: programs
   shared by all sets, every new set of a plan timed in one session) at several
   batch sizes and run counts — each plan twice (two draws, no cache), side by side in one
   process at one load: throughput (plans per wall second, and per CPU second of this
   process, which the machine's load changes less), the spread (relative IQR of a
   device's timed runs of forward + backward), the repeatability (MAPE between the two
   measurements of the same plans and devices) and the compilations. The chosen setting is
   the most repeatable (lowest plan-level MAPE between the two draws) of those with spread
   <= 5 % and >= 1.35 plans per wall second (the issue's measure: plans per CPU second
   counts both of a 2-core machine's cores, and so penalises a setting that uses them):
   throughput beyond the target buys nothing, while the learned model can order plans no
   better than the profiler repeats itself. When none qualifies, the most repeatable of
   those with the throughput, else the fastest. Run it on an unloaded machine: the
   wall-clock figures move with the load, which the report records;
2. **dataset**: random table subsets of the train pool measured with the chosen setting
   through the SQLite cache (resumable); a fifth of the pool's tables is held out and every
   fifth subset drawn among them only (`build_dataset(held_out_tables=)`), so the test
   subsets hold tables the model never saw; the test subsets are measured a second time
   (draw 1): the profiler's own repeatability on them;
3. **learned model**: the DreamShard-style `LearnedCostModel` trained on the other subsets
   (`train_cost_model`), its held-out MAPE and Kendall tau next to the repeatability's.

Writes bench/results/profiler[-quick].json (machine load included: on a shared CPU the
wall-clock numbers move with it). `bench.measured` reuses the chosen setting and the model.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    # before JAX starts (spin-free CPU times; the value of `measured.CPU_XLA_FLAGS`,
    # recorded in the report): importing the sharding package below builds JAX arrays
    os.environ.setdefault("XLA_FLAGS",
                          "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import dataclasses  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench._report import Report, parse_args  # noqa: E402
from surco.problems.sharding import FAMILY, plan_violations  # noqa: E402
from surco.problems.sharding import measured as prof  # noqa: E402
from surco.problems.sharding.family import pools  # noqa: E402
from surco.problems.sharding.tasks import DEFAULT_CAPACITY  # noqa: E402

#: Settings tried: label -> ProfilerConfig keywords. The first is the old engine.
SETTINGS = {
    "fused-B2048-r5": dict(engine="fused", batch_size=2048, warmup=1, runs=5),
    "arena-B512-r5": dict(batch_size=512, warmup=1, runs=5),
    "arena-B1024-r5": dict(batch_size=1024, warmup=1, runs=5),
    "arena-B1024-r9": dict(batch_size=1024, warmup=1, runs=9),
    "arena-B2048-r5": dict(batch_size=2048, warmup=1, runs=5),
    # the batch that was steady enough, fewer runs: no warm-up (the median of 5 runs
    # drops a cold first run), or 3 runs after one warm-up
    "arena-B2048-w0-r5": dict(batch_size=2048, warmup=0, runs=5),
    "arena-B2048-r3": dict(batch_size=2048, warmup=1, runs=3),
}
TARGET_PLANS_PER_S = 1.35
TARGET_SPREAD = 0.05
#: The arena engine's fixed weight arena (`ProfilerConfig.arena_bytes`): the machine is
#: shared, so one device's 5 GB are not always free; larger table sets wrap around it.
ARENA_BYTES = 2 ** 30


def compile_cache(cache_path: str | os.PathLike) -> Path:
    """Use JAX's persistent compilation cache next to the measurement cache, so that the
    arena engine's few programs are compiled once across runs; returns its folder."""
    folder = Path(f"{cache_path}.xla")
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def config_of(label: str, device) -> prof.ProfilerConfig:
    """The `ProfilerConfig` of a setting label (the arena engine with the fixed
    `ARENA_BYTES` arena, filled once)."""
    kw = dict(SETTINGS[label])
    if kw.get("engine", "arena") == "arena":
        kw["arena_bytes"] = ARENA_BYTES
    return prof.ProfilerConfig(**kw)


def random_plans(tasks, per_task: int, seed: int) -> list:
    """``(task, plan)`` pairs: uniformly random feasible plans (rejection)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in tasks:
        for _ in range(per_task):
            while True:
                x = np.eye(t.n_devices)[rng.integers(0, t.n_devices, t.n_tables)]
                if not plan_violations(x, t):
                    break
            out.append((t, x))
    return out


def measure_setting(label: str, plans: list, warm: list, device) -> dict:
    """Profile ``plans`` twice (draws 0 and 1, no cache) with setting ``label`` after
    profiling ``warm`` (not counted); the row of the settings table."""
    cfg = config_of(label, device)
    for t, x in warm:
        prof.profile_plan(prof.task_pool(t), x, cfg, device=device, draw=2)
    out, seconds, cpu = {}, {}, {}
    c0 = prof.compile_count()
    for draw in (0, 1):
        w, c = time.perf_counter(), time.process_time()
        out[draw] = [prof.profile_plan(prof.task_pool(t), x, cfg, device=device, draw=draw)
                     for t, x in plans]
        seconds[draw], cpu[draw] = time.perf_counter() - w, time.process_time() - c
    p0 = np.array([m.cost_ms for m in out[0]])
    p1 = np.array([m.cost_ms for m in out[1]])
    d0 = np.concatenate([m.fwd_ms + m.bwd_ms for m in out[0]])
    d1 = np.concatenate([m.fwd_ms + m.bwd_ms for m in out[1]])
    live = d0 > 0
    spread = np.concatenate([m.rel_spread[m.fwd_ms > 0] for m in out[0] + out[1]])
    n = 2 * len(plans)
    prof.release_buffers(device)
    return {"setting": "profiler settings (train tasks)", "method": label,
            "engine": cfg.engine, "batch_size": cfg.batch_for(device), "runs": cfg.runs,
            "warmup": cfg.warmup, "plans": n, "plans_per_s": n / sum(seconds.values()),
            "plans_per_cpu_s": n / sum(cpu.values()), "rel_spread": float(np.median(spread)),
            "repeat_mape_plan": prof.mape(p1, p0),
            "repeat_mape_device": prof.mape(d1[live], d0[live]),
            "repeat_tau_device": prof.kendall_tau(d1[live], d0[live]),
            "compiles": prof.compile_count() - c0, "load_avg_1min": os.getloadavg()[0],
            "device_compute_ms": d0[live].tolist()}


def choose(rows: list[dict]) -> str:
    """The chosen setting among the arena engine's rows (see the module docstring): the most
    repeatable of those with the target spread and throughput (plans per wall second), else
    the most repeatable of those with the throughput, else the fastest."""
    arena = [r for r in rows if r["engine"] == "arena"]
    fast = [r for r in arena if r["plans_per_s"] >= TARGET_PLANS_PER_S]
    ok = [r for r in fast if r["rel_spread"] <= TARGET_SPREAD]
    if ok:
        return min(ok, key=lambda r: r["repeat_mape_plan"])["method"]
    if fast:
        return min(fast, key=lambda r: r["repeat_mape_plan"])["method"]
    return max(arena, key=lambda r: r["plans_per_s"])["method"]


def sweep(quick: bool, device, labels=None) -> tuple[list[dict], str]:
    """Step 1: every setting on the same random train-task plans; ``(rows, chosen)``."""
    tasks = FAMILY.generate(4, seed=11, n_tables=50, n_devices=4, split="train")
    plans = random_plans(tasks[1:], 2 if quick else 3, seed=0)[:4 if quick else 8]
    # the arena engine compiles one program per batch size and set-size bucket, once for any
    # number of plans: warmed up on the timed plans themselves (draw 2, not counted), so that
    # no setting pays, and none skips, compiles that a setting with its batch size made
    # before it (a warm-up on other plans only left 3-5 compiles inside the timing of the
    # first setting of each batch size and none in the later ones: the compiles column).
    # The fused engine compiles one program per table set, a cost of every new plan: it is
    # not warmed up.
    warm = random_plans(tasks[:1], 2, seed=1)
    rows = []
    for label in labels or SETTINGS:
        old = SETTINGS[label].get("engine") == "fused"
        print(f"setting {label} ...", flush=True)
        rows.append(measure_setting(label, plans[:2 if quick else 4] if old else plans,
                                    [] if old else warm + plans, device))
        print({k: v for k, v in rows[-1].items() if k != "device_compute_ms"}, flush=True)
    return rows, choose(rows)


def learned_model(label: str, quick: bool, cache: prof.MeasurementCache, device,
                  n_subsets: int | None = None):
    """Steps 2-3: the dataset (resumed from ``cache``), the repeat measurement of its test
    subsets and the trained model; ``(model, report_dict, dataset)``."""
    cfg = config_of(label, device)
    train_pool, _ = pools()
    held = np.sort(np.random.default_rng(7).choice(len(train_pool), len(train_pool) // 5,
                                                   replace=False))
    n = n_subsets or (480 if quick else 2000)
    t0 = time.perf_counter()
    ds = prof.build_dataset(train_pool, n, min_tables=1, max_tables=20,
                            max_bytes=DEFAULT_CAPACITY, seed=0, profiler=cfg, cache=cache,
                            num_devices=4, device=device, held_out_tables=held)
    data_s = time.perf_counter() - t0
    tr, te = prof.split_by_table(ds)
    t0 = time.perf_counter()
    again = prof.remeasure(ds, te, draw=1, config=cfg, cache=cache, device=device)
    remeasure_s = time.perf_counter() - t0
    model, rep = prof.train_cost_model(ds, train_index=tr, test_index=te, epochs=300,
                                       seed=0, val_fraction=0.1)
    first = ds.compute_ms[te]
    pred = rep.test_pred_ms
    out = {"setting": label, "subsets": len(ds), "n_train": int(tr.size),
           "n_test": int(te.size), "held_out_tables": int(held.size),
           "dataset_seconds": data_s, "measured_now": ds.meta["measured_now"],
           "from_cache": ds.meta["from_cache"], "remeasure_seconds": remeasure_s,
           "repeat_mape": prof.mape(again, first), "repeat_tau": prof.kendall_tau(again, first),
           "model_mape": rep.mape, "model_tau": rep.tau,
           "model_mape_vs_draw1": prof.mape(pred, again),
           "model_tau_vs_draw1": prof.kendall_tau(pred, again),
           "model_mape_vs_mean": prof.mape(pred, (first + again) / 2),
           "median_baseline_mape": rep.median_baseline_mape, "train": rep.summary(),
           "compute_ms_quantiles": np.percentile(ds.compute_ms, [5, 25, 50, 75, 95]).tolist()}
    return model, out, ds


def _extra(p):
    p.add_argument("--cache", default=None, help="measurement cache (default "
                   "$SURCO_PROFILER_CACHE or ~/.cache/surco/profiler.sqlite)")
    p.add_argument("--subsets", type=int, default=None, help="subsets to profile")
    p.add_argument("--settings", default=None,
                   help="comma-separated setting labels to try (default all)")


def main(argv=None) -> None:
    args = parse_args(__doc__.split("\n\n")[0], argv, extra=_extra)
    device = prof.default_device()
    cache_path = args.cache or prof.default_cache_path()
    xla_dir = compile_cache(cache_path)
    rep = Report("profiler", args.quick)
    rep.extra["device"] = {"kind": device.device_kind, "platform": device.platform,
                           "xla_flags": os.environ.get("XLA_FLAGS"),
                           "compile_cache": str(xla_dir), "measurement_cache": str(cache_path)}
    rep.extra["load_avg_start"] = os.getloadavg()[0]
    labels = args.settings.split(",") if args.settings else None
    rows, chosen = sweep(args.quick, device, labels)
    for r in rows:
        rep.row(**{k: v for k, v in r.items() if k != "device_compute_ms"})
    old = next((r for r in rows if r["engine"] == "fused"), None)
    best = next(r for r in rows if r["method"] == chosen)
    rep.extra["chosen_setting"] = chosen
    rep.extra["chosen_config"] = dataclasses.asdict(config_of(chosen, device))
    if old is not None:
        rep.extra["speedup_vs_old"] = {"wall": best["plans_per_s"] / old["plans_per_s"],
                                       "cpu": best["plans_per_cpu_s"] / old["plans_per_cpu_s"]}
        same = next((r for r in rows if r["engine"] == "arena" and r["batch_size"] ==
                     old["batch_size"] and r["runs"] == old["runs"]), None)
        if same is not None:     # like for like: same batch and runs, the engine changed
            rep.extra["speedup_same_batch_and_runs"] = {
                "setting": same["method"], "wall": same["plans_per_s"] / old["plans_per_s"],
                "cpu": same["plans_per_cpu_s"] / old["plans_per_cpu_s"]}
    rep.target(f"profiler plans per CPU second ({chosen})", best["plans_per_cpu_s"], ">=",
               TARGET_PLANS_PER_S)
    rep.target(f"profiler plans per wall second ({chosen}, at load "
               f"{best['load_avg_1min']:.1f} on {os.cpu_count()} cores)",
               best["plans_per_s"], ">=", TARGET_PLANS_PER_S)
    rep.target(f"profiler relative spread ({chosen})", best["rel_spread"], "<=",
               TARGET_SPREAD)
    with prof.MeasurementCache(cache_path) as cache:
        model, lm, _ = learned_model(chosen, args.quick, cache, device, args.subsets)
    rep.row(setting="learned model (held-out tables)", method="learned (DreamShard)",
            mape=lm["model_mape"], kendall_tau=lm["model_tau"], n_test=lm["n_test"],
            n_train=lm["n_train"], subsets=lm["subsets"])
    rep.row(setting="learned model (held-out tables)", method="profiler repeatability",
            mape=lm["repeat_mape"], kendall_tau=lm["repeat_tau"], n_test=lm["n_test"])
    rep.extra["learned_model"] = lm
    rep.target("learned model held-out MAPE / profiler repeatability MAPE",
               lm["model_mape"] / lm["repeat_mape"], "<=", 2.0)
    rep.target("learned model held-out Kendall tau", lm["model_tau"], ">=", 0.8)
    rep.finish(table_columns=["setting", "method", "plans_per_s", "plans_per_cpu_s",
                              "rel_spread", "repeat_mape_plan", "compiles", "mape",
                              "kendall_tau", "n_test"])


if __name__ == "__main__":
    main()
