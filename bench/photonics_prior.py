"""Benchmark: SurCo-prior for photonics against SurCo-zero (issue 16, item 5; Ferber et al.,
ICML 2023, §3.2 and §5.2, where the prior is about two orders of magnitude faster per design).

    python -m bench.photonics_prior [--quick] [--n-train N] [--n-test N] [--train-steps S]
                                    [--evals E] [--workers W]

Per device (the waveguide bend and the mode converter), in its own process:

1. training, on train-split instances only: SurCo-zero with the family's settings
   (`photonics.ZERO_SETTINGS`, stopped at the first design that meets the spec) on each of
   N train instances for at most S steps (`photonics.distill_targets`); the prior
   (`photonics.train_prior`: a `KernelCostNet` over those runs' costs θ*) is trained on them;
2. test, on N' test-split instances, through `surco.compare` at E evaluations (FDFD
   simulations) per design: SurCo-prior (one forward pass, one generator call, one
   simulation), SurCo-prior-robust (4 candidate costs, 4 simulations, the best kept),
   SurCo-zero (the family's settings, stops at the first design that meets the spec) and
   SurCo-hybrid (SurCo-zero started from the better, by f, of the prior's θ and zero's θ₀).

A design *succeeds* when its window loss is 0 (every transmission meets the spec) and the
independent brush checker accepts it. Seconds per design are the harness's wall time of the
method on the instance, measured side by side in one process, after the instance's simulator
and the generator's tables are built (the first-call JIT compilations count, for every
method). The speed-up is SurCo-zero's mean seconds per design over the prior's.

Targets (issue 16: "success rate and speed-up over SurCo-zero reported for both devices"),
per device, met or not: the prior's speed-up >= 100 (the paper's two orders of magnitude);
the prior's success rate >= SurCo-zero's; SurCo-hybrid's success rate >= SurCo-zero's.

--quick: 6 train instances at S = 40 steps, 3 test instances at E = 40 evaluations (the full
run: 25 train instances at S = 150, 25 test instances at E = 150). Writes
bench/results/photonics-prior[-quick].json.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from multiprocessing import get_context  # noqa: E402

import numpy as np  # noqa: E402

from bench._report import Report, compare, interruptible  # noqa: E402

DEVICES = ("waveguide_bend", "mode_converter")
METHODS = ("surco-prior", "surco-prior-robust", "surco-zero", "surco-hybrid")
QUICK = dict(n_train=6, n_test=3, train_steps=40, evals=40)
FULL = dict(n_train=25, n_test=25, train_steps=150, evals=150)
#: the paper's speed-up of the prior over SurCo-zero per design (two orders of magnitude)
PAPER_SPEEDUP = 100.0


def _run_device(task):
    """Worker: train the prior of one device on its train instances and compare the SurCo
    methods on its test instances. Returns (device, train info, test runs)."""
    device, n_train, n_test, train_steps, evals = task
    import surco
    from surco.problems import photonics as ph
    train = ph.generate(n_train, device=device, split="train")
    test = ph.generate(n_test, device=device, split="test")
    shape = train[0].design_shape
    ph.brush_generate(np.zeros(shape))            # the generator's tables, once per shape
    for y in train + test:
        ph.simulator(y)                           # built outside every timed run
    t0 = time.perf_counter()
    zero = ph.distill_targets(train, steps=train_steps)
    t_zero = time.perf_counter() - t0
    t0 = time.perf_counter()
    prior = ph.train_prior(train, zero)
    t_fit = time.perf_counter() - t0
    cmp = compare(ph.FAMILY, test, list(METHODS), prior=prior,
                        budget=surco.Budget(evaluations=evals), progress=False)
    info = dict(train_seeds=[y.seed for y in train],
                train_zero_success=[bool(z.true_cost == 0) for z in zero],
                train_zero_steps=[len(z.history["f"]) for z in zero],
                train_zero_seconds=t_zero, fit_seconds=t_fit,
                fit_loss=prior.history.train_f[-1], fit_loss_first=prior.history.train_f[0],
                test_seeds=[y.seed for y in test])
    return device, info, cmp.runs


def _success(runs, m: str) -> list[bool]:
    return [bool(r.ok and r.value == 0) for r in runs if r.method == m]


def main(argv=None) -> None:
    import surco
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['n_train']} train / {QUICK['n_test']} test instances, "
                        f"{QUICK['train_steps']} steps, {QUICK['evals']} evaluations")
    p.add_argument("--n-train", type=int, default=None, help="train instances per device")
    p.add_argument("--n-test", type=int, default=None, help="test instances per device")
    p.add_argument("--train-steps", type=int, default=None,
                   help="SurCo-zero steps per train instance (distillation targets)")
    p.add_argument("--evals", type=int, default=None,
                   help="evaluations (simulations) per test design for zero and hybrid")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel processes, one device each (default: min(2, cores))")
    a = p.parse_args(argv)
    interruptible()
    cfg = dict(QUICK if a.quick else FULL)
    for k in cfg:
        if getattr(a, k) is not None:
            cfg[k] = int(getattr(a, k))
    workers = a.workers or min(len(DEVICES), os.cpu_count() or 1)
    rep = Report("photonics-prior", a.quick)
    from surco.problems import photonics as ph
    rep.extra["config"] = dict(devices=list(DEVICES), workers=workers, methods=list(METHODS),
                               prior_network=dict(module="KernelCostNet",
                                                  temperature=ph.PRIOR_TEMPERATURE),
                               **cfg)
    rep.extra["settings_chosen_on"] = ph.ZERO_SETTINGS_NOTE
    tasks = [(d, cfg["n_train"], cfg["n_test"], cfg["train_steps"], cfg["evals"])
             for d in DEVICES]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
            outs = list(ex.map(_run_device, tasks))
    else:
        outs = [_run_device(t) for t in tasks]

    rep.extra["train"] = {}
    runs_json = []
    for device, info, runs in outs:
        rep.extra["train"][device] = info
        cmp = surco.Comparison("photonics", runs, list(METHODS), cfg["n_test"],
                               reference="surco-zero")
        print(f"[{device}] {cfg['n_test']} test instances, {cfg['evals']} evaluations\n"
              f"{cmp.table()}", flush=True)
        sr = {m: float(np.mean(_success(runs, m))) for m in METHODS}
        sec = {m: float(np.mean([r.seconds for r in runs if r.method == m])) for m in METHODS}
        for r in cmp.to_rows(setting=device, budget=f"{cfg['evals']} evaluations"):
            rep.row(**r, success_rate=sr[r["method"]],
                    successes=int(np.sum(_success(runs, r["method"]))),
                    seconds_per_design=sec[r["method"]],
                    speedup_vs_zero=sec["surco-zero"] / sec[r["method"]])
        n_zero_ok = int(np.sum(_success(runs, "surco-zero")))
        speedup = sec["surco-zero"] / sec["surco-prior"]
        rep.extra.setdefault("summary", {})[device] = dict(
            success_rate=sr, seconds_per_design=sec, prior_speedup=speedup,
            zero_seconds_per_successful_design=(
                float(np.sum([r.seconds for r in runs if r.method == "surco-zero"]))
                / n_zero_ok if n_zero_ok else None),
            mean_evaluations={m: float(np.mean([r.evaluations for r in runs
                                                if r.method == m])) for m in METHODS})
        rep.target(f"{device}: surco-prior speed-up over surco-zero, seconds per design "
                   f"(paper: ~{PAPER_SPEEDUP:.0f}x)", speedup, ">=", PAPER_SPEEDUP)
        rep.target(f"{device}: surco-prior success rate on test designs >= surco-zero's",
                   sr["surco-prior"], ">=", sr["surco-zero"])
        rep.target(f"{device}: surco-hybrid success rate >= surco-zero's (both at "
                   f"{cfg['evals']} evaluations)", sr["surco-hybrid"], ">=", sr["surco-zero"])
        runs_json += [dict(device=device, method=r.method, instance=r.instance, value=r.value,
                           seconds=r.seconds, evaluations=r.evaluations, status=r.status,
                           error=r.error) for r in runs]
    rep.extra["runs"] = runs_json
    rep.finish(table_columns=["setting", "method", "success_rate", "successes", "value",
                              "seconds_per_design", "speedup_vs_zero", "evaluations",
                              "wins", "ties", "losses", "failed"])


if __name__ == "__main__":
    main()
