"""The pieces of `bench.profiler` and `bench.measured` on tiny inputs: the setting choice,
the measured family (one evaluation = one profiled plan) and the fresh re-measurement of
final plans."""

import numpy as np
import pytest

import surco
from bench import measured as BM
from bench import profiler as BP
from surco.problems import sharding as S
from surco.problems.sharding import measured as P
from surco.problems.sharding.tables import TablePool
from surco.problems.sharding.tasks import make_task, plan_violations

CFG = P.ProfilerConfig(batch_size=64, warmup=1, runs=3, arena_bytes=2 ** 20)
POOL = TablePool(rows=np.array([300, 50, 900, 70, 1200, 40]),
                 dim=np.array([16, 4, 32, 8, 16, 4]),
                 pooling=np.array([2.0, 1.0, 3.0, 1.0, 1.5, 4.0]),
                 skew=np.array([0.5, 1.0, 1.2, 0.2, 0.8, 0.9]))
TASK = make_task(POOL, np.arange(6), 2, capacity=1e12, check=False)


def _row(name, wall, spread, mape, engine="arena"):
    # plans per CPU second is reported, not chosen by: here it would pick "c"
    return {"method": name, "engine": engine, "plans_per_s": wall, "plans_per_cpu_s": 9 - wall,
            "rel_spread": spread, "repeat_mape_plan": mape}


def test_choose_the_setting():
    old = _row("fused", 9.0, 0.01, 0.01, engine="fused")      # never chosen
    a, b, c = _row("a", 2.0, 0.04, 0.10), _row("b", 3.0, 0.06, 0.05), _row("c", 1.0, 0.01, 0.01)
    assert BP.choose([old, a, b, c]) == "a"        # fast enough and steady enough
    # of those fast and steady enough, the most repeatable, not the fastest
    assert BP.choose([old, a, _row("d", 1.5, 0.03, 0.04), _row("e", 5.0, 0.02, 0.3)]) == "d"
    a2 = dict(a, rel_spread=0.08)
    assert BP.choose([old, a2, b, c]) == "b"       # none steady: the most repeatable fast one
    assert BP.choose([old, dict(a2, plans_per_s=1.0), dict(b, plans_per_s=1.2),
                      c]) == "b"                   # none fast: the fastest
    cfg = BP.config_of("arena-B512-r5", P.default_device())
    assert cfg.batch_size == 512 and cfg.arena_bytes == BP.ARENA_BYTES
    assert BP.config_of("fused-B2048-r5", P.default_device()).engine == "fused"


def test_random_plans_are_feasible_and_seeded():
    tasks = S.FAMILY.generate(2, seed=11, n_tables=12, n_devices=3, split="train")
    a = BP.random_plans(tasks, 3, seed=4)
    b = BP.random_plans(tasks, 3, seed=4)
    assert len(a) == 6 and all(not plan_violations(x, t) for t, x in a)
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))


def test_measured_family_evaluates_by_profiling(tmp_path):
    x1 = np.eye(2)[[0, 1, 0, 1, 0, 1]]
    x2 = np.eye(2)[[0, 0, 0, 1, 1, 1]]
    with P.MeasurementCache(tmp_path / "c.sqlite") as cache:
        truth = P.MeasuredCostModel(CFG, cache=cache)
        fam = BM.measured_family(S.DEFAULT_COST_MODEL, truth)
        assert fam.name == "sharding-measured" and fam.reference == "annealing"
        # the store key's family name (bench.measured appends the profiler setting)
        assert BM.measured_family(S.DEFAULT_COST_MODEL, truth, name="m/s").name == "m/s"
        v = fam.evaluate_batch(np.stack([x1, x2]), TASK)
        assert len(cache) == 4                                  # 4 device sets, draw 0
        assert fam.evaluate(x1, TASK) == v[0] == P.profile_plan(POOL, x1, CFG,
                                                                 cache=cache).cost_ms
        prob = fam.problem(TASK)
        assert prob.evaluate(x2, TASK) == v[1]                 # SurCo judged by the profiler
        # one evaluation = one profiled plan, through the meter
        meter = surco.Budget(evaluations=1).start(lambda x: fam.evaluate(x, TASK))
        assert meter(x1) == v[0] and meter.evaluations == 1
        assert BM.surco_family("surco-zero-learned") and BM.surco_family("lancer-learned")
        assert not BM.surco_family("annealing")


def test_fresh_remeasures_final_plans_apart_from_the_search(tmp_path):
    x1 = np.eye(2)[[0, 1, 0, 1, 0, 1]]
    x2 = np.eye(2)[[1, 1, 0, 0, 0, 1]]
    b = surco.Budget(evaluations=3)
    runs = [surco.Run("surco-zero-x", 0, x1, 1.0, 0.5, 3, "ok", None, [], b),
            surco.Run("annealing", 0, x2, 2.0, 0.4, 3, "budget", None, [], b),
            surco.Run("broken", 0, None, float("nan"), 0.1, 0, "failed", "boom", [], b)]
    cmp = surco.Comparison("sharding-measured", runs, ["surco-zero-x", "annealing", "broken"],
                           1)
    with P.MeasurementCache(tmp_path / "c.sqlite") as cache:
        new, info = BM.fresh({"E=3": cmp}, [TASK], CFG, cache)["E=3"]
        assert len(cache) == 4 * len(BM.FRESH_DRAWS)       # 4 distinct sets x 5 draws
        for x, m in ((x1, "surco-zero-x"), (x2, "annealing")):
            draws = [P.MeasuredCostModel(CFG, cache=cache, draw=k).plan_cost(x, TASK)
                     for k in BM.FRESH_DRAWS]
            assert new.run(m, 0).value == np.median(draws)
            spread, searched = info[m, 0]
            assert spread == pytest.approx((max(draws) - min(draws)) / np.median(draws))
            assert searched == cmp.run(m, 0).value
        assert len(cache) == 4 * len(BM.FRESH_DRAWS)       # read back, nothing new
        assert new.run("broken", 0).status == "failed"
    rows = BM.rows_of(new, info, "E=3")
    by = {r["method"]: r for r in rows}
    assert by["annealing"]["reference"] == "annealing" and by["annealing"]["setting"] == "E=3"
    assert by["surco-zero-x"]["searched_value"] == 1.0
    assert by["surco-zero-x"]["fresh_spread"] == pytest.approx(info["surco-zero-x", 0][0])
    assert by["broken"]["failed"] == 1 and by["broken"]["fresh_spread"] is None


def test_each_method_pays_for_its_own_measurements(tmp_path):
    """`compare_each`: a method evaluates through its own draw, so a device set another
    method measured is measured again for it (and stored apart); the runs merge."""
    x = np.eye(2)[[0, 1, 0, 1, 0, 1]]

    def one(task, meter):
        meter(x)
        return x

    assert BM.search_draw("E=3", "a") != BM.search_draw("E=3", "b") >= 10
    assert BM.search_draw("E=3", "a") == BM.search_draw("E=3", "a")
    with P.MeasurementCache(tmp_path / "c.sqlite") as cache:
        truth = P.MeasuredCostModel(CFG, cache=cache)
        fam = BM.measured_family(S.DEFAULT_COST_MODEL, truth)
        cmp = BM.compare_each(fam, [TASK], {"a": one, "b": one}, setting="E=3",
                              budget=surco.Budget(evaluations=3), store=None, truth=truth)
        assert cmp.methods == ["a", "b"] and len(cache) == 4     # 2 sets x 2 draws
        for m in ("a", "b"):
            model = P.MeasuredCostModel(CFG, cache=cache, draw=BM.search_draw("E=3", m))
            assert cmp.run(m, 0).value == model.plan_cost(x, TASK)
            assert cmp.run(m, 0).evaluations == 1
        assert len(cache) == 4                                   # read back


def test_skip_names_one_method_at_one_budget():
    pairs = BM.parse_skips(["lancer-learned@E=300", "annealing@E=30"],
                           BM.SURCO_FAMILY + BM.SEARCHES, [30, 100, 300])
    assert pairs == {("lancer-learned", 300), ("annealing", 30)}
    assert BM.parse_skips([], BM.SURCO_FAMILY, [30]) == set()
    with pytest.raises(ValueError, match=r"'lancer-learned@300': expected METHOD@E=N"):
        BM.parse_skips(["lancer-learned@300"], BM.SURCO_FAMILY, [300])
    with pytest.raises(ValueError, match=r"no method 'lancer' in this bench"):
        BM.parse_skips(["lancer@E=300"], BM.SURCO_FAMILY, [300])
    with pytest.raises(ValueError, match=r"1000 is not one of the budgets 30, 100"):
        BM.parse_skips(["annealing@E=1000"], BM.SEARCHES, [30, 100])


def test_fresh_draws_are_distinct_and_apart_from_the_dataset_and_the_searches():
    assert BM.parse_draws("6,7,8,9") == (6, 7, 8, 9)
    assert BM.parse_draws(",".join(map(str, BM.FRESH_DRAWS))) == BM.FRESH_DRAWS
    for bad in ("0,1", "6,6", "10", "a,b", ""):
        with pytest.raises(ValueError, match="--fresh-draws"):
            BM.parse_draws(bad)
