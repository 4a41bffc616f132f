"""SurCo-zero compiled over the JAX shortest-path oracle against `surco.zero` through GLOP and
through Dijkstra: seconds per routing instance, same answers, and the second call's
compilation.

    python -m bench.compiled [--quick]

Problem: on-time routing on 5×5 grids, risk-sensitive regime, q ∈ {−1, 1, 2}, test seeds
0, 1, … (25 instances per q; 6 with --quick). Settings: the routing family's SurCo-zero
settings (`routing.ZERO_SETTINGS`: blackbox λ = 100, Adam 0.1, 30 steps, patience 8, the
mean–risk start). `surco.zero` solves the flow LP with GLOP (blackbox re-solves at costs of
any sign); `surco.zero` with ``backend="jax"`` solves the same polytope exactly with
`surco.solvers.jax_oracles.ShortestPath` inside one XLA program. A second comparison uses
the negative-identity estimator, whose solves all have c > 0, against the Dijkstra oracle.

Two ways of calling, both timed side by side in this run:

* one instance per call, as the comparison harness does (``seconds`` per instance over the
  calls; the compiled side pays its compilation on its first call only: the cold call is
  reported on its own row, and the mean excludes it);
* all instances of a q in one call (one batched solve per step on the host side; one
  program over the batch on the compiled side), seconds per instance including compilation;
  the compiled side is called twice (the first call compiles unless an earlier q did).

``compile_seconds`` is JAX's own compilation time inside the call, measured with
`surco.driver.compile_seconds`. Both sides cache their compiled programs across calls
(`surco.zero`'s step by problem, estimator, optimiser, shapes and dtype), so only a first
call on new shapes compiles.

Answers: best x, f and true cost must be identical instance by instance. Targets: compiled
>= 5× faster than GLOP per instance (one per call, warm), and a second call on the same
shapes compiles <= 50 ms, on both sides (`surco.driver.compile_seconds`). Writes
bench/results/compiled[-quick].json.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from bench._report import Report, parse_args

Q_VALUES = (-1.0, 1.0, 2.0)


def _settings():
    from surco.problems import routing as R
    kw = dict(R.ZERO_SETTINGS)
    init = kw.pop("init")
    kw.pop("backend")
    return kw, init


def _same(a, b) -> bool:
    return (np.array_equal(a.x, b.x) and a.f == b.f and a.true_cost == b.true_cost
            and a.history["f"] == b.history["f"])


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import surco
    from surco import driver as compiled
    from surco.problems import routing as R
    from surco.solvers.jax_oracles import ShortestPath

    rep = Report("compiled", args.quick)
    rep.extra["load_average_at_start"] = os.getloadavg()
    per = 6 if args.quick else 25
    kw, init = _settings()
    spec_problem, dijkstra_problem = R.make_problem(5, omega="spec"), R.make_problem(5)
    oracle = ShortestPath.from_oracle(R.oracle(5))
    compiled.clear_cache()
    ratios, second_compile, host_second_compile, all_same = [], [], [], True
    for q in Q_VALUES:
        ys = [R.make_instance(s, n=5, regime="risk", q=q) for s in range(per)]
        inits = [init(y) for y in ys]
        # -- one instance per call --------------------------------------------------------
        host_s, host_c, comp_s, same = [], [], [], []
        for y, th in zip(ys, inits):
            with compiled.compile_seconds() as ca:
                a, ta = _timed(lambda: surco.zero(spec_problem, y, init=th, backend="glop", **kw))
            cold = compiled.cache_info()["entries"] == 0
            with compiled.compile_seconds() as ct:
                b, tb = _timed(lambda: surco.zero(spec_problem, y, init=th, oracle=oracle, **kw))
            same.append(_same(a, b))
            host_s.append(ta)
            host_c.append(ca.seconds)
            if not cold:   # surco.zero's step is cached too after the first call
                host_second_compile.append(ca.seconds)
            if cold:
                rep.row(setting=f"q={q:g} one per call", method="compiled (cold: compiles)",
                        instances=1, seconds=tb, compile_seconds=ct.seconds)
            else:
                comp_s.append(tb)
                second_compile.append(ct.seconds)
        all_same &= all(same)
        ratio = float(np.mean(host_s) / np.mean(comp_s))
        ratios.append(ratio)
        rep.row(setting=f"q={q:g} one per call", method="surco.zero glop", instances=per,
                seconds=float(np.mean(host_s)), compile_seconds=float(np.mean(host_c)))
        rep.row(setting=f"q={q:g} one per call", method="compiled (warm)", instances=len(comp_s),
                seconds=float(np.mean(comp_s)), speedup=ratio,
                speedup_host_without_compile=float(
                    (np.mean(host_s) - np.mean(host_c)) / np.mean(comp_s)),
                max_compile_seconds=float(max(second_compile[-len(comp_s):])),
                same_answers=float(np.mean(same)))
        # -- all instances of q in one call (compiled: twice, cold then warm) ---------------
        th = np.stack(inits)
        for method, problem, extra, host_kw in (
                ("blackbox", spec_problem, {"oracle": oracle}, dict(kw, backend="glop")),
                ("neg_identity", dijkstra_problem, {},
                 dict(estimator="neg_identity", steps=30, key=0, no_progress_steps=None))):
            with compiled.compile_seconds() as ca:
                a, ta = _timed(lambda: surco.zero(problem, ys, init=th, **host_kw))
            host = "glop" if method == "blackbox" else "dijkstra"
            rep.row(setting=f"q={q:g} batch", method=f"surco.zero {host} ({method})",
                    instances=per, seconds=ta / per, compile_seconds=ca.seconds)
            ckw = {k: v for k, v in host_kw.items() if k != "backend"}
            for run in ("first call", "second call"):
                with compiled.compile_seconds() as ct:
                    b, tb = _timed(lambda: surco.zero(problem, ys, init=th, backend="jax", **extra, **ckw))
                same = [_same(u, v) for u, v in zip(a, b)]
                all_same &= all(same)
                rep.row(setting=f"q={q:g} batch", method=f"compiled ({method}, {run})",
                        instances=per, seconds=tb / per, speedup=ta / tb,
                        compile_seconds=ct.seconds, same_answers=float(np.mean(same)),
                        mean_late_probability=float(np.mean([1 + r.true_cost for r in b])))
    rep.extra["cache"] = compiled.cache_info()
    rep.extra["load_average_at_end"] = os.getloadavg()
    rep.target("one per call: compiled speed-up over GLOP per instance (worst q, warm)",
               min(ratios), ">=", 5.0)
    rep.target("second call on the same shapes: compile seconds (worst call)",
               max(second_compile), "<=", 0.05)
    rep.target("second call on the same shapes: surco.zero (glop) compile seconds (worst call)",
               max(host_second_compile), "<=", 0.05)
    rep.target("answers identical to surco.zero (share of all comparisons)", float(all_same),
               ">=", 1.0)
    rep.finish(table_columns=["setting", "method", "instances", "seconds", "speedup",
                              "speedup_host_without_compile", "compile_seconds",
                              "max_compile_seconds", "same_answers", "mean_late_probability"])


if __name__ == "__main__":
    main()
