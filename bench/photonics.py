"""Benchmark: inverse photonic design under brush fabrication constraints (SurCo §5.2),
through the comparison harness, at equal evaluations (simulations) and at equal wall time.

    python -m bench.photonics [--quick] [--devices D ...] [--n N] [--n-heavy N]
                              [--evals E] [--workers W] [--store PATH] [--resume]

One evaluation is one FDFD simulation (both wavelengths) of one distinct binary design
(`photonics.FAMILY`); every step of every method evaluates one design, so E evaluations are E
optimisation steps. The true cost is the window loss L (0 iff the spec is met); a design
*succeeds* when L = 0 and the independent brush checker accepts it (a design the checker
rejects is a failed run in the harness).

Per device, on its seeded test instances (SurCo's and the baselines' settings were chosen on
train instances only, see `photonics.ZERO_SETTINGS_NOTE` and `photonics.HYPER`):

1. equal evaluations: SurCo-zero (neg_identity estimator, the family's settings), SurCo-zero
   with the blackbox estimator (λ = 5, lr 0.1; full run only), pass-through (Schubert et al.
   2022), density optimisation made printable by the brush generator ("density-generator")
   and plain density + threshold (whose designs usually break the brush: failed runs), each
   under E evaluations (default `STEPS` = 150); pass-through and SurCo stop at their first
   design that meets the spec;
2. equal wall time: the three baselines given, instance by instance, the wall time each
   SurCo method spent in (1).

Also times the brush generator on an 80×80 design with the 3×3 cross (one core).

Targets: for every SurCo method and device, its mean loss / the best baseline's (among
those with a brush-feasible design on every instance) at equal evaluations and at equal
wall time (<= 1); SurCo's success rate >= pass-through's on the bend and the mode converter;
the generator's median time <= 100 ms.

--quick: the waveguide bend only, 2 test instances, E = 30 (the full run: all four devices,
25 test instances, E = 150; hours on a 2-core machine). Instances run in parallel processes
(``--workers``, default: the number of cores). Writes bench/results/photonics[-quick].json,
photonics[-quick].png (harness plot), photonics[-quick]-designs.png and, per device, the
success rate against simulations of every method (``success_vs_simulations`` in the JSON,
photonics[-quick]-success-DEVICE.png). A run of other devices, instance counts or
simulations than its mode's writes photonics-WHAT-DIFFERS[-quick].* instead
(`report_name`): ``--devices waveguide_bend mode_converter --resume`` reports those two
devices from the store without touching photonics.json.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from multiprocessing import get_context  # noqa: E402

import numpy as np  # noqa: E402

from bench._report import RESULTS, Report, compare, parse_args  # noqa: E402

HEAVY = ("beam_splitter", "wdm")
#: the family's baselines, and plain density + threshold beside them (its designs usually
#: break the brush: failed runs in the harness)
BASELINES = ("pass-through", "density-generator", "density-threshold")
#: SurCo-zero with the blackbox estimator (best of the train grid, see ZERO_SETTINGS_NOTE):
#: λ = 5, Adam with lr 0.1
BLACKBOX = dict(estimator="blackbox", lam=5.0, lr=0.1)
QUICK = dict(devices=["waveguide_bend"], n=2, evals=30)


def _methods(fam, blackbox: bool) -> dict:
    import surco
    methods = dict(surco.surco_methods(fam))
    if blackbox:
        import optax
        kw = dict(BLACKBOX)
        kw["optimizer"] = optax.adam(kw.pop("lr"))
        methods["surco-zero-blackbox"] = surco.surco_methods(fam, **kw)["surco-zero"]
    return methods


def _run_instance(task):
    """Worker: one test instance, every method at E evaluations, then the baselines at each
    SurCo method's wall time. Returns (device, idx, runs at E, {surco method: runs})."""
    device, idx, evals, blackbox, store = task
    import surco
    from surco.problems import photonics as ph
    fam = ph.FAMILY
    inst = fam.generate(1, seed=idx, device=device)[0]
    ph.simulator(inst)                   # build (and cache) the simulator outside the runs
    surco_m = _methods(fam, blackbox)
    base = {**fam.baselines, "density-threshold": ph.density_threshold_method}
    table = {**surco_m, **{b: base[b] for b in BASELINES}}
    ev = compare(fam, [inst], table, budget=surco.Budget(evaluations=evals),
                       progress=False, store=store, setting=f"{device}#{idx}")
    at_time = {}
    for m in surco_m:
        eq = compare(fam, [inst], {b: base[b] for b in BASELINES},
                           budget=ev.matched_budget(m), progress=False, store=store,
                           setting=f"{device}#{idx}")
        at_time[m] = eq.runs
    return device, idx, ev.runs, at_time


def _assemble(family: str, per_instance: list, methods: list[str]):
    """One `Comparison` from per-instance runs (instance index = position in the list)."""
    import surco
    runs = []
    for i, rs in enumerate(per_instance):
        for r in rs:
            r.instance = i
            runs.append(r)
    return surco.Comparison(family, runs, methods, len(per_instance), reference="pass-through")


def time_generator(repeats: int = 20) -> dict:
    """Median wall time (ms) of the generator on 80×80 N(0,1) rewards with the 3×3 cross,
    after the per-shape touch tables are built; and the first call (tables included)."""
    from surco.problems.photonics import brush_generate
    from surco.problems.photonics import generator as G
    G._tables.cache_clear()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    brush_generate(rng.normal(size=(80, 80)), "cross3")
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        r = rng.normal(size=(80, 80))
        t0 = time.perf_counter()
        brush_generate(r, "cross3")
        ts.append(time.perf_counter() - t0)
    return {"median_ms": 1000 * float(np.median(ts)), "max_ms": 1000 * float(np.max(ts)),
            "first_call_ms": 1000 * first}


def plot_designs(cmps: dict, path, per_device: int = 3) -> None:
    """The final design of each method on the first instances of each device."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    methods = list(dict.fromkeys(m for c in cmps.values() for m in c.methods))
    cols = [(d, i) for d, c in cmps.items() for i in range(min(per_device, c.n_instances))]
    fig, axes = plt.subplots(len(methods), len(cols), squeeze=False,
                             figsize=(1.9 * len(cols), 2.0 * len(methods)))
    for j, (d, i) in enumerate(cols):
        for k, m in enumerate(methods):
            ax = axes[k, j]
            ax.axis("off")
            try:
                r = cmps[d].run(m, i)
            except KeyError:
                continue
            if r.x is None:
                continue
            ok = r.ok and r.value == 0
            flag = "✓" if ok else ("✗ brush" if r.status == "failed" else "✗ spec")
            ax.imshow(np.asarray(r.x).T, origin="lower", cmap="gray_r")
            loss = "" if not np.isfinite(r.value) else f"L={r.value:.3g} "
            ax.set_title(f"{d[:10]}#{i}\n{m}\n{loss}{flag}", fontsize=6)
    fig.tight_layout()
    from surco.atomic import save_figure
    save_figure(fig, path, dpi=130)  # atomically
    plt.close(fig)


def _success_rate(cmp, m: str) -> float:
    return float(np.mean([r.ok and r.value == 0 for r in cmp.runs if r.method == m]))


def success_curves(cmp, evals: int):
    """Success rate against simulations: per method, the fraction of instances on which it
    has a brush-feasible design meeting the spec (L = 0) within k simulations, k = 0..evals
    (the data profile of the anytime traces with the absolute level 0,
    `surco.profiles.data_profile`)."""
    return cmp.data_profile(kappa=np.arange(evals + 1), level=np.zeros(cmp.n_instances))


def report_name(quick: bool, devices: list[str], n_of: dict[str, int], evals: int) -> str:
    """The report's name: ``photonics`` for the run its mode (full or --quick) defines, else
    ``photonics-`` + what differs from it (the devices, ``nN`` test instances of a device,
    ``eE`` simulations), so that a partial run (``--devices wdm``, ``--n 5``) never writes
    over the report of the whole run. Its results share the store either way."""
    from surco.problems import photonics as ph
    ref_devices = QUICK["devices"] if quick else list(ph.DEVICES)
    ref_n = QUICK["n"] if quick else ph.N_PER_SPLIT
    ref_e = QUICK["evals"] if quick else ph.STEPS
    parts = [] if sorted(devices) == sorted(ref_devices) else list(devices)
    parts += [f"{d}-n{n_of[d]}" for d in devices if n_of[d] != ref_n]
    parts += [f"e{evals}"] if evals != ref_e else []
    return "-".join(["photonics", *parts])


def main(argv=None) -> None:
    from surco.problems import photonics as ph

    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--devices", nargs="+", default=None, choices=ph.DEVICES)
        p.add_argument("--n", type=int, default=None, help="test instances per device")
        p.add_argument("--n-heavy", type=int, default=None,
                       help="test instances for the beam splitter and the wdm (default: --n)")
        p.add_argument("--evals", type=int, default=None,
                       help=f"evaluations (simulations) per design (default {ph.STEPS})")
        p.add_argument("--workers", type=int, default=None,
                       help="parallel processes (default: number of cores)")
    a = parse_args(__doc__, argv, extra=extra)
    quick = a.quick
    devices = a.devices or (QUICK["devices"] if quick else list(ph.DEVICES))
    n = a.n or (QUICK["n"] if quick else ph.N_PER_SPLIT)
    evals = a.evals or (QUICK["evals"] if quick else ph.STEPS)
    n_of = {d: (a.n_heavy if (a.n_heavy and d in HEAVY) else n) for d in devices}
    workers = a.workers or os.cpu_count() or 1
    blackbox = not quick

    name = report_name(quick, devices, n_of, evals)
    rep = Report(name, quick)
    gen = time_generator()
    rep.extra["generator_80x80_cross3"] = gen
    fam = ph.FAMILY
    surco_names = list(_methods(fam, blackbox))
    rep.extra["config"] = dict(devices=devices, n=n_of, evaluations=evals, workers=workers,
                               surco_methods=surco_names, blackbox=BLACKBOX,
                               zero_settings={k: v if isinstance(v, (int, float, str))
                                              else repr(v) for k, v in
                                              fam.zero_settings.items()},
                               baselines_hyper=ph.HYPER, init_scale=ph.INIT_SCALE,
                               brush="cross3", wavelengths_nm=list(ph.WAVELENGTHS_NM))
    rep.extra["settings_chosen_on"] = fam.zero_settings_note
    print(f"generator 80×80 cross3: median {gen['median_ms']:.1f} ms "
          f"(first call with table build {gen['first_call_ms']:.1f} ms)")

    tasks = [(d, i, evals, blackbox, a.store) for d in devices for i in range(n_of[d])]
    from tqdm.auto import tqdm
    results = {}
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=get_context("spawn")) as ex:
            futures = [ex.submit(_run_instance, t) for t in tasks]
            for fut in tqdm(as_completed(futures), total=len(tasks), desc="instances"):
                out = fut.result()
                results[out[:2]] = out
    else:
        for t in tqdm(tasks, desc="instances"):
            out = _run_instance(t)
            results[out[:2]] = out

    RESULTS.mkdir(parents=True, exist_ok=True)
    cmps = {}
    runs_of: dict = {}
    failed = 0
    for d in devices:
        outs = [results[(d, i)] for i in range(n_of[d])]
        ev = _assemble("photonics", [o[2] for o in outs], surco_names + list(BASELINES))
        cmps[d] = ev
        runs_of[d] = [(f"{evals} evaluations", ev.runs)]
        print(f"[{d}] {evals} evaluations\n{ev.table()}", flush=True)
        for r in ev.to_rows(setting=d, budget=f"{evals} evaluations"):
            rep.row(**r, success_rate=_success_rate(ev, r["method"]))
        rep.add_map(ev, f"{d}, {evals} evaluations")
        succ = success_curves(ev, evals)
        rep.extra.setdefault("success_vs_simulations", {})[d] = {
            "simulations": succ.x.astype(int).tolist(),
            **{m: succ.fractions[m].tolist() for m in ev.methods}}
        stem_d = f"{name}{'-quick' if quick else ''}-success-{d}.png"
        succ.plot(RESULTS / stem_d, title=f"{d}: success rate against simulations "
                                           f"({ev.n_instances} test instances)")
        rep.extra.setdefault("success_plots", {})[d] = f"bench/results/{stem_d}"
        failed_bl = {b: sum(r.status == "failed" for r in ev.runs if r.method == b)
                     for b in BASELINES}
        rep.extra.setdefault("brush_infeasible_runs", {})[d] = failed_bl
        failed += sum(r.status == "failed" for r in ev.runs if r.method in surco_names)
        usable = [b for b in BASELINES if failed_bl[b] == 0]
        for m in surco_names:
            eq = _assemble("photonics", [o[3][m] for o in outs], list(BASELINES))
            runs_of[d].append((f"time of {m}", eq.runs))
            print(f"[{d}] at the wall time of {m}\n{eq.table()}", flush=True)
            for r in eq.to_rows(setting=d, budget=f"time of {m}"):
                rep.row(**r, success_rate=_success_rate(eq, r["method"]))
            rep.add_map(eq, f"{d}, time of {m}")
            ok_t = [b for b in BASELINES
                    if not any(r.status == "failed" for r in eq.runs if r.method == b)]
            for what, cmp, cands in (("equal evaluations", ev, usable),
                                     ("equal wall time", eq, ok_t)):
                if cands:
                    best = min(cands, key=lambda b: float(np.mean(cmp.values(b))))
                    base = float(np.mean(cmp.values(best)))
                    val = float(np.mean(ev.values(m))) / base if base > 0 else (
                        0.0 if np.mean(ev.values(m)) == 0 else float("inf"))
                else:
                    best, val = "none brush-feasible on every instance", float("nan")
                rep.target(f"{d}: {m} mean loss / best baseline's ({best}) at {what}",
                           val, "<=", 1.0)
            if d in ("waveguide_bend", "mode_converter"):
                rep.target(f"{d}: {m} success rate >= pass-through's (at {evals} evaluations)",
                           _success_rate(ev, m), ">=", _success_rate(ev, "pass-through"))
    rep.target("generator 80x80 cross3 median ms (one core)", gen["median_ms"], "<=", 100.0)
    rep.target("SurCo runs that failed (a design outside Ω)", failed, "<=", 0)
    stem = f"{name}{'-quick' if quick else ''}"
    first = devices[0]
    cmps[first].plot(RESULTS / f"{stem}.png",
                     title=f"{first}: {evals} evaluations per design, "
                           f"{cmps[first].n_instances} test instances")
    plot_designs(cmps, RESULTS / f"{stem}-designs.png")
    rep.extra["runs"] = [dict(device=d, budget=b, method=r.method, instance=r.instance,
                              value=r.value, seconds=r.seconds, evaluations=r.evaluations,
                              status=r.status, error=r.error)
                         for d in devices for b, rs in runs_of[d] for r in rs]
    rep.extra["plot"] = f"bench/results/{stem}.png"
    rep.extra["figure_designs"] = f"bench/results/{stem}-designs.png"
    rep.finish(table_columns=["setting", "budget", "method", "value", "rel_reference",
                              "success_rate", "wins", "ties", "losses", "seconds",
                              "evaluations", "failed"])


if __name__ == "__main__":
    main()
