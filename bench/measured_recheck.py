"""Re-measure the final plans of LANCER and annealing at 100 and 300 measurements from
bench/results/measured.runs.jsonl, in one session on an idle machine, with draws 21-25 (new
measurements, never those the report used), and print each mean and the ratio.

    python -m bench.measured_recheck

A check of bench/results/measured.json: there the fresh values of LANCER's plans at 300
measurements came from another process's session than annealing's (the bench ran as
several processes), while `bench.measured.fresh` is meant to measure all plans of a task in
one session.
"""
import os


def main() -> None:
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import json, numpy as np
    from bench import profiler as bp
    from surco.problems import sharding as S
    from surco.problems.sharding import measured as prof
    dev = prof.default_device()
    bp.compile_cache(prof.default_cache_path())
    cfg = bp.config_of("arena-B2048-r3", dev)
    tasks = S.FAMILY.generate(10, seed=1, n_tables=50, n_devices=4)
    rs = [json.loads(l) for l in open("bench/results/measured.runs.jsonl")]
    want = [("E=300", "lancer-learned"), ("E=300", "annealing"), ("E=100", "lancer-learned"), ("E=100", "annealing")]
    plans = {}
    for r in rs:
        k = (r["setting"], r["run"]["method"])
        if k in want:
            plans[k, r["run"]["instance"]] = np.array(r["run"]["x"]["__array__"], dtype=float)
    print(os.getloadavg())
    res = {k: [] for k in want}
    with prof.MeasurementCache(prof.default_cache_path()) as cache:
        for i, t in enumerate(tasks):
            X = np.stack([plans[k, i] for k in want])
            c = np.stack([prof.MeasuredCostModel(cfg, cache=cache, draw=d).plan_costs(X, t) for d in (21, 22, 23, 24, 25)])
            for k, v in zip(want, np.median(c, 0)):
                res[k].append(float(v))
    for k in want:
        print(k, np.mean(res[k]))
    print("E300 lancer/annealing", np.mean(res[want[0]]) / np.mean(res[want[1]]), "wins", sum(a < b for a, b in zip(res[want[0]], res[want[1]])))
    print("E100 lancer/annealing", np.mean(res[want[2]]) / np.mean(res[want[3]]), "wins", sum(a < b for a, b in zip(res[want[2]], res[want[3]])))
    print(os.getloadavg())


if __name__ == "__main__":
    main()
