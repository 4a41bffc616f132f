"""Benchmark: inverse photonic design under brush fabrication constraints (SurCo §5.2).

    python -m bench.photonics [--quick] [--devices D ...] [--n N] [--n-heavy N]
                              [--steps S] [--workers W] [--records FILE] [--fresh]

Per device type and method: success rate (spec met and brush-feasible by the independent
checker), spec-met rate, brush-feasible rate, mean/median window loss, seconds per design.
Also times the brush generator on an 80×80 design with the 3×3 cross (one core).

Methods (see `surco.problems.photonics.methods`): SurCo-zero with the blackbox and the
straight-through estimators, the pass-through method of Schubert et al. (2022), and
unconstrained density optimisation followed by thresholding.

Every method gets at most `STEPS` optimisation steps (one simulation and its adjoint each);
the generator-based methods stop at their first design that meets the spec.

--quick: the waveguide bend only, 5 test instances; same sizes, steps and hyperparameters as
the full run. Writes bench/results/photonics[-quick].json and
photonics[-quick]-designs.png. Each finished design is appended to a JSON-lines file
(``--records``), so a stopped run resumes where it stopped when started again with the
same settings. A budget other than ``STEPS`` (``--steps S``) is a separate study, written
to photonics-stepsS[-quick].json and its own figures.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench._report import RESULTS, Report  # noqa: E402

#: Hyperparameters shared by all devices, each method's best of a small grid on *train*
#: instances (never test ones), selected by success rate then mean log(1 + loss):
#: blackbox: lr ∈ {0.05, 0.1}, λ ∈ {2, 5, 10, 20, 50, 100, 200, 1000} (2 bend instances at
#: 50-80 steps; 3 more at 80 steps for λ ∈ {5, 100, 1000}: no success anywhere; with the
#: "norm" cost projection, λ ∈ {0.05, 0.2, 1} × lr ∈ {0.05, 0.1} on train bend 0 at 60 steps:
#: best log(1 + L) 8.4 from 9.8, no success, where straight-through reaches 4.2 in 40 steps);
#: straight-through: lr ∈ {0.02, 0.05, 0.1} × cost projection ∈ {none, "norm"} (Sahoo et
#: al. 2023), then lr ∈ {0.05, 0.1} with no projection on 6 bend + 6 mode-converter
#: instances at 150 steps; pass-through: lr ∈ {0.05, 0.1}, τ ∈ {0.03, 0.1, 0.3, 1}, then
#: lr ∈ {0.05, 0.1} at τ = 1 on the same 12 instances at 150 steps; density: lr = 0.1.
#: On those 12 train instances at 150 steps: straight-through (lr 0.05) 5/6 bend, 3/6 mode
#: converter; pass-through (lr 0.05, τ = 1) 5/6 and 3/6.
HYPER = {
    "surco-zero-blackbox": dict(lr=0.1, lam=5.0),
    "surco-zero-st": dict(lr=0.05),
    "pass-through": dict(lr=0.05, temperature=1.0),
    "density-threshold": dict(lr=0.1, beta_max=8.0),
}
#: maximum optimisation steps; the generator-based methods stop at the first design that
#: meets the spec (its loss is 0), density-threshold always runs them all
STEPS = 150
HEAVY = ("beam_splitter", "wdm")
INIT_SCALE = 0.1


def _run_one(task):
    """Worker: one (device, method, test-instance index) design run."""
    device, method, idx, steps, n = task
    from surco.problems import photonics as ph
    inst = ph.instances(device, "test", n)[idx]
    ph.simulator(inst)          # build (and cache) the simulator outside the timed run
    r = ph.run_method(method, inst, steps=steps, key=idx, init_scale=INIT_SCALE,
                      **HYPER[method])
    return dict(device=device, method=method, idx=idx, seed=inst.seed, steps=steps,
                hyper=HYPER[method], init_scale=INIT_SCALE, steps_run=len(r.history),
                loss=float(r.report.loss), spec_met=bool(r.report.spec_met),
                feasible=bool(r.report.feasible), n_violations=int(r.report.n_violations),
                success=bool(r.success), seconds=float(r.seconds),
                simulations=int(r.simulations), x=r.x.tolist(),
                T=np.asarray(r.report.T).tolist())


def _key(device: str, method: str, idx: int, steps: int, hyper: dict,
         init_scale: float) -> str:
    """Identity of one design run: everything its result depends on."""
    return json.dumps([device, method, idx, steps, hyper, init_scale], sort_keys=True)


def _task_key(task) -> str:
    device, method, idx, steps, _n = task
    return _key(device, method, idx, steps, HYPER[method], INIT_SCALE)


def _record_key(r: dict) -> str:
    return _key(r["device"], r["method"], r["idx"], r["steps"], r["hyper"], r["init_scale"])


def load_records(path: Path) -> dict[str, dict]:
    """Finished designs of earlier runs, by `_key` (missing file: none). A last line cut
    short by a killed run is reported and skipped; a damaged line elsewhere is an error."""
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    out = {}
    for k, line in enumerate(lines):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            if k == len(lines) - 1:
                print(f"{path}: last line is incomplete (a run was stopped mid-write); "
                      "that design will be run again")
                continue
            raise ValueError(f"{path}: line {k + 1} is not valid JSON; move the file away "
                             "or pass --fresh") from None
        out[_record_key(r)] = r
    return out


def time_generator(repeats: int = 20) -> dict:
    """Median wall time (ms) of the generator on 80×80 N(0,1) rewards with the 3×3 cross,
    after the per-shape touch tables are built; and the first call (tables included)."""
    from surco.problems.photonics import generate
    from surco.problems.photonics import generator as G
    G._tables.cache_clear()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    generate(rng.normal(size=(80, 80)), "cross3")
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        r = rng.normal(size=(80, 80))
        t0 = time.perf_counter()
        generate(r, "cross3")
        ts.append(time.perf_counter() - t0)
    return {"median_ms": 1000 * float(np.median(ts)), "max_ms": 1000 * float(np.max(ts)),
            "first_call_ms": 1000 * first}


def plot_designs(records, path, per_device: int = 3) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    devices = list(dict.fromkeys(r["device"] for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    cols = [(d, i) for d in devices for i in sorted({r["idx"] for r in records
                                                      if r["device"] == d})[:per_device]]
    fig, axes = plt.subplots(len(methods), len(cols), squeeze=False,
                             figsize=(1.9 * len(cols), 2.0 * len(methods)))
    by = {(r["device"], r["idx"], r["method"]): r for r in records}
    for i, m in enumerate(methods):
        for j, (d, idx) in enumerate(cols):
            ax = axes[i, j]
            ax.axis("off")
            r = by.get((d, idx, m))
            if r is None:
                continue
            ax.imshow(np.asarray(r["x"]).T, origin="lower", cmap="gray_r")
            flag = "✓" if r["success"] else ("✗ brush" if not r["feasible"] else "✗ spec")
            ax.set_title(f"{d[:10]}#{idx}\n{m}\nL={r['loss']:.3g} {flag}", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def success_by_step(records, steps: int) -> dict[str, dict[str, list[float]]]:
    """Per device and method, the fraction of instances whose design met the spec (and the
    brush) within k steps, k = 0..steps: the anytime success rate at equal simulation
    budget. Generator-based methods stop at success, so a success took ``steps_run - 1``
    steps; density-threshold only has its final design (success at ``steps`` or never)."""
    out: dict[str, dict[str, list[float]]] = {}
    for d in dict.fromkeys(r["device"] for r in records):
        out[d] = {}
        for m in dict.fromkeys(r["method"] for r in records if r["device"] == d):
            rs = [r for r in records if r["device"] == d and r["method"] == m]
            at = np.array([(r["steps_run"] - 1 if m != "density-threshold" else steps)
                           if r["success"] else np.inf for r in rs])
            out[d][m] = [float(np.mean(at <= k)) for k in range(steps + 1)]
    return out


def plot_success_by_step(records, steps: int, path) -> dict:
    """Plot `success_by_step` (one panel per device) to ``path``; return the curves sampled
    every 10 steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = success_by_step(records, steps)
    fig, axes = plt.subplots(1, len(curves), squeeze=False, figsize=(4 * len(curves), 3.2))
    for ax, (d, per) in zip(axes[0], curves.items()):
        n = sum(1 for r in records if r["device"] == d) // max(len(per), 1)
        for m, ys in per.items():
            ax.step(range(steps + 1), ys, where="post", label=m)
        ax.set_title(f"{d} ({n} test instances)", fontsize=9)
        ax.set_xlabel("optimisation steps (simulations)")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel("success rate within k steps")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return {d: {m: ys[::10] for m, ys in per.items()} for d, per in curves.items()}


def paired_vs_baseline(records, device: str, method: str,
                       baseline: str = "pass-through") -> dict | None:
    """Per-instance comparison of two methods' success on the same test instances.

    Counts the instances solved by both, by ``method`` only and by ``baseline`` only, and
    gives McNemar's exact two-sided p-value (binomial on the discordant pairs, p = 1/2):
    how surprising the split of the discordant instances would be if the two methods had
    the same success probability. None if either method has no records for ``device``.
    """
    a = {r["idx"]: r["success"] for r in records if r["device"] == device and r["method"] == method}
    b = {r["idx"]: r["success"] for r in records
         if r["device"] == device and r["method"] == baseline}
    common = sorted(set(a) & set(b))
    if not common:
        return None
    only_m = sum(a[i] and not b[i] for i in common)
    only_b = sum(b[i] and not a[i] for i in common)
    both = sum(a[i] and b[i] for i in common)
    n = only_m + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_m, only_b) + 1)) / 2 ** n if n else 0.5
    return dict(method=method, baseline=baseline, n=len(common), both=both,
                method_only=only_m, baseline_only=only_b,
                mcnemar_exact_p=float(min(1.0, 2 * tail)))


def main(argv=None) -> None:
    from surco.problems import photonics as ph
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="bend only, 5 instances")
    p.add_argument("--devices", nargs="+", default=None, choices=ph.DEVICES)
    p.add_argument("--methods", nargs="+", default=list(ph.METHODS), choices=ph.METHODS)
    p.add_argument("--n", type=int, default=None, help="test instances per device")
    p.add_argument("--n-heavy", type=int, default=None,
                   help="test instances for the beam splitter and the wdm (default: --n)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"optimisation steps per design (default {STEPS}; another budget "
                        "writes photonics-steps<S>.json)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel processes (default: number of cores)")
    p.add_argument("--records", default=None,
                   help="JSON-lines file of finished designs, appended to as they finish and "
                        "reused by a later run with the same settings (default: "
                        "out/photonics[-quick]-designs.jsonl)")
    p.add_argument("--fresh", action="store_true",
                   help="ignore designs already in --records (they are kept in the file)")
    a = p.parse_args(argv)
    quick = a.quick
    devices = a.devices or (["waveguide_bend"] if quick else list(ph.DEVICES))
    n = a.n or (5 if quick else ph.N_PER_SPLIT)
    steps = a.steps or STEPS
    n_of = {d: (a.n_heavy if (a.n_heavy and d in HEAVY) else n) for d in devices}
    workers = a.workers or os.cpu_count() or 1

    # a run at another step budget is a separate study: it must not overwrite the headline
    name = "photonics" if steps == STEPS else f"photonics-steps{steps}"
    rep = Report(name, quick)
    gen = time_generator()
    rep.extra["generator_80x80_cross3"] = gen
    rep.extra["config"] = dict(devices=devices, methods=a.methods, n=n_of, steps=steps,
                               workers=workers, hyper=HYPER, init_scale=INIT_SCALE,
                               brush="cross3", wavelengths_nm=list(ph.WAVELENGTHS_NM))
    print(f"generator 80×80 cross3: median {gen['median_ms']:.1f} ms "
          f"(first call with table build {gen['first_call_ms']:.1f} ms)")

    tasks = [(d, m, i, steps, n_of[d]) for d in devices for i in range(n_of[d])
             for m in a.methods]
    rec_path = Path(a.records) if a.records else (
        Path("out") / f"photonics{'-quick' if quick else ''}-designs.jsonl")
    done = {} if a.fresh else load_records(rec_path)
    done = {_task_key(t): done[_task_key(t)] for t in tasks if _task_key(t) in done}
    todo = [t for t in tasks if _task_key(t) not in done]
    n_reused = len(done)
    print(f"{len(tasks)} designs: {n_reused} reused from {rec_path}, {len(todo)} to run")
    from tqdm.auto import tqdm
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    with open(rec_path, "a") as fh:
        def keep(r):
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            done[_record_key(r)] = r
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
                for r in tqdm(ex.map(_run_one, todo), total=len(todo), desc="designs"):
                    keep(r)
        else:
            for t in tqdm(todo, desc="designs"):
                keep(_run_one(t))
    records = [done[_task_key(t)] for t in tasks]

    summary = {}
    for d in devices:
        for m in a.methods:
            rs = [r for r in records if r["device"] == d and r["method"] == m]
            losses = np.array([r["loss"] for r in rs])
            row = rep.row(
                setting=d, method=m, n=len(rs),
                success_rate=float(np.mean([r["success"] for r in rs])),
                spec_met_rate=float(np.mean([r["spec_met"] for r in rs])),
                brush_feasible_rate=float(np.mean([r["feasible"] for r in rs])),
                brush_violation_rate=float(np.mean([not r["feasible"] for r in rs])),
                mean_loss=float(losses.mean()), median_loss=float(np.median(losses)),
                seconds_per_design=float(np.mean([r["seconds"] for r in rs])),
                mean_steps_run=float(np.mean([r["steps_run"] for r in rs])),
                max_steps=steps)
            summary[(d, m)] = row
    rep.extra["designs"] = [{k: v for k, v in r.items() if k != "x"} for r in records]

    rep.target("generator 80x80 cross3 median ms (one core)", gen["median_ms"], "<=", 100.0)
    for d in ("waveguide_bend", "mode_converter"):
        if d not in devices or "pass-through" not in a.methods:
            continue
        base = summary[(d, "pass-through")]["success_rate"]
        for m in ("surco-zero-blackbox", "surco-zero-st"):
            if m in a.methods:
                rep.target(f"{d}: {m} success rate >= pass-through's",
                           summary[(d, m)]["success_rate"], ">=", base)
    rep.extra["paired_vs_pass_through"] = [
        dict(device=d, **pv) for d in devices for m in a.methods if m != "pass-through"
        if (pv := paired_vs_baseline(records, d, m)) is not None]
    for pv in rep.extra["paired_vs_pass_through"]:
        print(f"{pv['device']:16s} {pv['method']:20s} vs pass-through: both {pv['both']}, "
              f"only it {pv['method_only']}, only pass-through {pv['baseline_only']}, "
              f"McNemar exact p = {pv['mcnemar_exact_p']:.3g}")
    fig_path = RESULTS / f"{rep.path.stem}-designs.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_designs(records, fig_path)
    curve_path = RESULTS / f"{rep.path.stem}-success.png"
    rep.extra["success_by_step"] = plot_success_by_step(records, steps, curve_path)
    rep.extra["figure"] = str(fig_path.relative_to(RESULTS.parent.parent))
    rep.extra["figure_success_by_step"] = str(curve_path.relative_to(RESULTS.parent.parent))
    rep.extra["designs_reused_from_records"] = n_reused
    rep.extra["design_seconds_sum"] = float(sum(r["seconds"] for r in records))
    rep.finish(table_columns=["setting", "method", "n", "success_rate", "spec_met_rate",
                              "brush_violation_rate", "mean_loss", "median_loss",
                              "seconds_per_design", "mean_steps_run"])


if __name__ == "__main__":
    main()
