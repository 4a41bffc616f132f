"""bench.scale_room: the rows say what each method found relative to the start plan, from
values that the returned plans really cost (recomputed from the run store), and a method
never ends above the start it was given."""
import numpy as np
import pytest

from bench.scale_room import relative_to_start, run_room, whole_neighbourhood


def test_relative_to_start_closed_form():
    out = relative_to_start([10.0, 9.0, float("nan"), 4.0], [10.0, 10.0, 3.0, 5.0])
    assert out == {"rel_start": pytest.approx((1.0 + 0.9 + 0.8) / 3), "at_start": 1, "n": 3}
    with pytest.raises(ValueError, match="2 values for 3 start costs"):
        relative_to_start([1.0, 2.0], [1.0, 2.0, 3.0])


def test_rows_match_the_stored_plans_costs(tmp_path):
    from surco.problems import sharding as S
    from surco.problems.sharding import scale
    from surco.store import RunStore

    store = tmp_path / "room.jsonl"
    rows = run_room(30, 4, 2, "train", budgets=(20, 60), store=str(store), progress=False)
    assert [(r["budget"], r["method"]) for r in rows] == [
        ("whole neighbourhood", "best-neighbour"),
        ("own", "surco-zero"), ("20 evaluations", "annealing"),
        ("20 evaluations", "local-search-first"), ("60 evaluations", "annealing"),
        ("60 evaluations", "local-search-first")]
    model = S.DEFAULT_COST_MODEL
    tasks = S.generate(2, seed=11, split="train", n_tables=30, n_devices=4)
    starts = np.array([model.evaluate(scale.start_plan(t, model), t) for t in tasks])
    runs = [RunStore.to_run(rec) for rec in RunStore(store).records()]
    nbhd = rows[0]
    assert len(nbhd["improving"]) == len(nbhd["moves"]) == len(nbhd["swaps"]) == 2
    assert nbhd["rel_start"] <= 1.0 and nbhd["at_start"] == sum(
        k == 0 for k in nbhd["improving"])
    for r in rows[1:]:
        evals = None if r["budget"] == "own" else int(r["budget"].split()[0])
        mine = sorted((run for run in runs if run.method == r["method"]
                       and run.budget.evaluations == evals), key=lambda run: run.instance)
        assert len(mine) == 2
        cost = np.array([model.evaluate(run.x, tasks[run.instance]) for run in mine])
        assert r["value"] == pytest.approx(cost.mean(), rel=1e-5)
        assert r["rel_start"] == pytest.approx(np.mean(cost / starts), rel=1e-5)
        assert r["rel_start"] <= 1.0 + 1e-9 and r["n"] == 2
        assert r["at_start"] == int(np.sum(np.abs(cost / starts - 1) <= 1e-6))


def test_whole_neighbourhood_equals_brute_force():
    """Every feasible one-table move and two-table swap, costed one by one with the family's
    scalar cost, on a task small enough to enumerate; memory-infeasible ones left out."""
    import itertools

    from surco.problems import sharding as S
    from surco.problems.sharding import scale
    from surco.problems.sharding.tasks import plan_violations

    model = S.DEFAULT_COST_MODEL
    fam = scale.scale_family(model, torchrec=False)
    task = S.generate(1, seed=3, split="train", n_tables=9, n_devices=3)[0]
    x = np.zeros((9, 3))
    x[np.arange(9), np.arange(9) % 3] = 1.0
    assert plan_violations(x, task) == []
    base = fam.evaluate(x, task)
    moves, swaps = [], []
    for t, d in itertools.product(range(9), range(3)):
        if not x[t, d]:
            y = x.copy()
            y[t] = 0.0
            y[t, d] = 1.0
            if not plan_violations(y, task):
                moves.append(fam.evaluate(y, task))
    for t, u in itertools.combinations(range(9), 2):
        if x[t].argmax() != x[u].argmax():
            y = x.copy()
            y[[t, u]] = x[[u, t]]
            if not plan_violations(y, task):
                swaps.append(fam.evaluate(y, task))
    got = whole_neighbourhood(fam, task, x, chunk=5)          # chunks of 5: a partial last one
    assert (got["moves"], got["swaps"]) == (len(moves), len(swaps)) and len(moves) > 5
    assert 0 < got["improving_moves"] < got["improving"]     # both kinds improve here
    assert got["best"] == pytest.approx(min(moves + swaps), rel=1e-6)
    assert got["improving"] == sum(c < base * (1 - 1e-9) for c in moves + swaps)
    assert got["improving_moves"] == sum(c < base * (1 - 1e-9) for c in moves)
    y = x.copy()
    y[0] = 1.0
    with pytest.raises(ValueError, match=r"row 0 of x is \[1.0, 1.0, 1.0\], expected one 1"):
        whole_neighbourhood(fam, task, y)
