"""The profiling backend end to end: measure, learn a cost model, run SurCo on it, and
judge every plan by measurement (DreamShard-style; SurCo §5.1).

    python -m bench.profiler [--quick] [--cache PATH] [--subsets N] [--tasks N]
                             [--max-minutes M]

On whatever device JAX sees (a CUDA GPU when there is one, else the CPU; the same code):

1. profile random table subsets of the train pool (fused embedding-bag forward and
   backward, `problems/sharding/measured/`), through the SQLite measurement cache (a run
   that stops resumes where it stopped);
2. train the DreamShard-style learned cost model on them and report its held-out error
   (MAPE and Kendall's tau of device compute, next to predicting the mean);
3. on DLRM-50 test tasks (50 tables of the test pool, 4 devices of 5 GB), place the
   tables with SurCo-zero and SurCo-hybrid on the learned model and with every baseline of
   `problems/sharding/baselines.py`, and profile every plan: each device's tables measured
   in turn on the one device, plus the all-to-all, which is *modelled, not measured*
   (bytes over the link bandwidth of `ProfilerConfig`), maximum over devices.

GPU: 2,000 subsets at batch 65536, 10 test tasks; writes bench/results/profiler_gpu.json.
Where commands are time-limited, pass ``--max-minutes M --cache <a path that survives>``
and run again until the dataset is complete: measured subsets are read back from the cache.
CPU: batch 2048 (600 subsets, 10 tasks; --quick: 100 subsets, 2 tasks, fewer SurCo steps),
writes bench/results/profiler[-quick].json and says it ran on a CPU. A full run commits its
dataset to problems/sharding/data/profiled_<cpu|gpu>.npz.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

import surco
from bench._report import RESULTS, Report, parse_args
from surco.problems.sharding import (BASELINES, PROXY_HEURISTICS, evaluate_plan,
                                     generate_pool, generate_tasks, plan_violations,
                                     sharding_problem, split_pool)
from surco.problems.sharding import measured as prof
from surco.problems.sharding.measured import (DATA_DIR, MeasurementCache, build_dataset,
                                              default_cache_path, kendall_tau, mape,
                                              task_inputs, task_pool, train_cost_model)


@dataclasses.dataclass(frozen=True)
class Settings:
    subsets: int
    max_tables: int
    batch: int
    warmup: int
    runs: int
    tasks: int
    prior_tasks: int
    prior_epochs: int
    zero_steps: int
    hybrid_steps: int
    epochs: int


def settings(gpu: bool, quick: bool) -> Settings:
    if gpu:
        return Settings(subsets=300 if quick else 2000, max_tables=15, batch=65536, warmup=3,
                        runs=10, tasks=2 if quick else 10, prior_tasks=16 if quick else 40,
                        prior_epochs=10 if quick else 30, zero_steps=40 if quick else 100,
                        hybrid_steps=20 if quick else 50, epochs=300 if quick else 400)
    return Settings(subsets=100 if quick else 600, max_tables=15, batch=2048, warmup=1,
                    runs=5, tasks=2 if quick else 10, prior_tasks=12 if quick else 40,
                    prior_epochs=6 if quick else 30, zero_steps=30 if quick else 100,
                    hybrid_steps=15 if quick else 50, epochs=200 if quick else 300)


ZERO_KW = dict(estimator="blackbox", lam=10.0, lr=0.1, key=0, backend="highs")


def _extra(p):
    p.add_argument("--cache", default=None, help="measurement cache (default "
                   "$SURCO_PROFILER_CACHE or ~/.cache/surco/profiler.sqlite)")
    p.add_argument("--subsets", type=int, default=None, help="subsets to profile")
    p.add_argument("--tasks", type=int, default=None, help="DLRM-50 test tasks")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop profiling subsets after this long (resume by running again)")


def main(argv=None) -> None:
    args = parse_args(__doc__.split("\n\n")[0], argv, extra=_extra)
    device = prof.default_device()
    gpu = device.platform == "gpu"
    S = settings(gpu, args.quick)
    if args.subsets:
        S = dataclasses.replace(S, subsets=args.subsets)
    if args.tasks:
        S = dataclasses.replace(S, tasks=args.tasks)
    rep = Report("profiler_gpu" if gpu else "profiler", args.quick)
    cfg = prof.ProfilerConfig(batch_size=S.batch, warmup=S.warmup, runs=S.runs)
    cache_path = args.cache or default_cache_path()
    print(f"device: {device.device_kind} ({device.platform}); batch {S.batch}; cache "
          f"{cache_path}", flush=True)
    rep.extra["device"] = {"kind": device.device_kind, "platform": device.platform,
                           "batch_size": S.batch, "dtype": cfg.dtype,
                           "note": None if gpu else "no CUDA GPU: measured on the CPU at "
                           "small batch; CPU timings, not GPU timings"}
    rep.extra["communication"] = (f"modelled, not measured: all-to-all of pooled outputs "
                                  f"over a {cfg.link_gbps:g} GB/s link per device "
                                  f"(sharding.comm.alltoall_ms), forward and backward")
    pool = generate_pool(0)
    train_pool, test_pool = split_pool(pool, 0.5, seed=0)

    with MeasurementCache(cache_path) as cache:
        # 1. measured dataset ---------------------------------------------------------
        t0 = time.perf_counter()
        ds = build_dataset(train_pool, S.subsets, max_tables=S.max_tables, config=cfg,
                           cache=cache, num_devices=4, device=device,
                           max_seconds=None if args.max_minutes is None
                           else 60 * args.max_minutes)
        recs = [cache.get(prof.CacheKey(device.device_kind, prof.table_signature(
            train_pool.subset(s[s >= 0])), S.batch, cfg.dtype, prof.PROFILER_VERSION))
            for s in ds.subsets]
        wall = float(sum(r["total_s"] for r in recs))
        rep.row(setting="dataset", method="profiler", subsets=len(ds),
                measured_now=ds.meta["measured_now"], from_cache=ds.meta["from_cache"],
                measurements_per_s=len(ds) / wall,
                compile_s=float(np.median([r["compile_s"] for r in recs])),
                fwd_ms=float(np.median(ds.fwd_ms)), bwd_ms=float(np.median(ds.bwd_ms)),
                rel_iqr=float(np.median((ds.fwd_iqr_ms + ds.bwd_iqr_ms) / ds.compute_ms)),
                seconds=time.perf_counter() - t0)
        rep.target("subsets profiled", len(ds), ">=", 2000)
        if not ds.meta["complete"]:
            print(f"stopped after {len(ds)} of {S.subsets} subsets (--max-minutes); they are "
                  f"in the cache {cache_path}: run again (same --cache) to continue. No "
                  "results written.", flush=True)
            return
        if not args.quick and ds.meta["complete"]:
            out = ds.save(DATA_DIR / f"profiled_{'gpu' if gpu else 'cpu'}.npz")
            print(f"dataset written to {out} ({out.stat().st_size / 1e6:.2f} MB)", flush=True)

        # 2. learned cost model -----------------------------------------------------------
        model, tr = train_cost_model(ds, epochs=S.epochs, seed=0, progress=True)
        rep.row(setting="cost model (held-out subsets)", method="learned (DreamShard)",
                mape=tr.mape, kendall_tau=tr.tau, mape_total=tr.mape_total,
                mean_baseline_mape=tr.mean_baseline_mape,
                median_baseline_mape=tr.median_baseline_mape, n_train=tr.n_train,
                n_test=tr.n_test, seconds=tr.seconds)
        rep.extra["cost_model"] = tr.summary()
        rep.target("cost model held-out MAPE (device compute)", tr.mape, "<=", 0.10)
        prof.release_buffers(device)

        # 3. SurCo on the learned model, every plan profiled -------------------------------
        test = generate_tasks(test_pool, 50, 4, n_tasks=S.tasks, seed=1)
        train = generate_tasks(train_pool, 50, 4, n_tasks=S.prior_tasks, seed=2)
        val = generate_tasks(train_pool, 50, 4, n_tasks=max(2, S.prior_tasks // 8), seed=3)
        problem = sharding_problem(model, temperature=0.01)
        plans: dict[str, list[np.ndarray]] = {}
        seconds: dict[str, float] = {}
        for name, fn in BASELINES.items():
            t0 = time.perf_counter()
            plans[name] = [fn(t) for t in test]
            seconds[name] = (time.perf_counter() - t0) / len(test)
        print(f"SurCo-zero on {len(test)} tasks ({S.zero_steps} steps)", flush=True)
        t0 = time.perf_counter()
        res = surco.zero(problem, test, steps=S.zero_steps, progress=True, **ZERO_KW)
        seconds["surco-zero"] = (time.perf_counter() - t0) / len(test)
        plans["surco-zero"] = [r.x for r in res]
        print(f"SurCo-prior on {len(train)} tasks ({S.prior_epochs} epochs)", flush=True)
        t0 = time.perf_counter()
        prior = surco.prior.train(problem, train, val_instances=val, estimator="blackbox",
                                  lam=10.0, epochs=S.prior_epochs, batch_size=4, lr=3e-3,
                                  key=0, backend="highs", progress=True)
        prior_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = surco.hybrid(problem, test, prior, steps=S.hybrid_steps, progress=True,
                           **ZERO_KW)
        seconds["surco-hybrid"] = (time.perf_counter() - t0) / len(test)
        plans["surco-hybrid"] = [r.x for r in res]
        rep.extra["prior_training_s"] = prior_s

        methods = list(plans)
        per_task: dict[str, list[dict]] = {m: [] for m in methods}
        dev_pred, dev_meas = [], []
        for m in methods:
            for x, task in zip(plans[m], test):
                bad = plan_violations(x, task)
                if bad:
                    raise RuntimeError(f"{m} returned an infeasible plan: {bad[:3]}")
        from tqdm.auto import tqdm
        bar = tqdm(total=len(methods) * len(test), desc="profiling plans", unit="plan")
        for m in methods:
            for i, (x, task) in enumerate(zip(plans[m], test)):
                pm = prof.profile_plan(task_pool(task), x, cfg, cache=cache, device=device)
                feats = task_inputs(task)
                xj = jnp.asarray(x, jnp.float32)
                pc = model.head_costs(xj, feats)
                dev_pred += list(np.asarray(pc["compute"]))
                dev_meas += list(pm.fwd_ms + pm.bwd_ms)
                per_task[m].append({
                    "task": i, "profiled_ms": pm.cost_ms,
                    "predicted_ms": float(model.plan_cost(xj, task)),
                    "analytic_ms": evaluate_plan(x, task),
                    "device_compute_ms": (pm.fwd_ms + pm.bwd_ms).tolist(),
                    "comm_ms": pm.comm_ms.tolist()})
                bar.update()
        bar.close()
        # 4. repeatability: some subsets measured again, now (no cache) --------------------
        rng = np.random.default_rng(0)
        again = rng.choice(len(ds), size=min(len(ds), 10 if args.quick else 30), replace=False)
        first, second = [], []
        for i in again:
            s = ds.subsets[i]
            m = prof.profile_tables(train_pool.subset(s[s >= 0]), cfg, device=device)
            first.append(ds.compute_ms[i])
            second.append(m.compute_ms)
        first, second = np.array(first), np.array(second)
        rep.row(setting="repeatability (same subsets measured again later)",
                method="profiler", n_test=int(first.size),
                mape=float(np.mean(np.abs(second - first) / first)),
                kendall_tau=kendall_tau(second, first))
        prof.release_buffers(device)

    prof_cost = {m: np.array([r["profiled_ms"] for r in per_task[m]]) for m in methods}
    best_base = min((b for b in BASELINES), key=lambda b: prof_cost[b].mean())
    best_proxy = min(PROXY_HEURISTICS, key=lambda b: prof_cost[b].mean())
    for m in methods:
        rep.row(setting=f"DLRM-50, 4 devices, {len(test)} tasks", method=m,
                profiled_ms=float(prof_cost[m].mean()),
                predicted_ms=float(np.mean([r["predicted_ms"] for r in per_task[m]])),
                analytic_ms=float(np.mean([r["analytic_ms"] for r in per_task[m]])),
                vs_best_proxy=float(np.mean(prof_cost[m] / prof_cost[best_proxy])),
                seconds=seconds[m])
    dp, dm = np.array(dev_pred), np.array(dev_meas)
    rep.row(setting="cost model (devices of profiled test plans)", method="learned (DreamShard)",
            mape=mape(dp, dm), kendall_tau=kendall_tau(dp, dm), n_test=int(dm.size))
    rep.extra["per_task"] = per_task
    rep.extra["best_baseline"] = best_base
    rep.extra["best_proxy_heuristic"] = best_proxy
    for m in ("surco-zero", "surco-hybrid"):
        rep.target(f"{m} profiled cost / best baseline's ({best_base})",
                   prof_cost[m].mean() / prof_cost[best_base].mean(), "<=", 1.0)
        rep.target(f"{m} profiled cost / best DreamShard proxy heuristic's ({best_proxy})",
                   prof_cost[m].mean() / prof_cost[best_proxy].mean(), "<=", 0.90)
    rep.finish(table_columns=["setting", "method", "subsets", "measurements_per_s", "mape",
                              "kendall_tau", "mean_baseline_mape", "profiled_ms",
                              "predicted_ms", "analytic_ms", "vs_best_proxy", "seconds"])


if __name__ == "__main__":
    main()
