"""`Problem(..., sense="max")`: SurCo, the searches, SCIP and the harness minimise −f; the
comparison's summary, table and plot show the user's f. Bars show relative gaps, so small
differences of large (or negative) costs are visible."""
import dataclasses
import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.runs import Run
from surco.solvers import LinearSpec

SPEC = LinearSpec(shape=(5,), A_eq=[[1, 1, 1, 1, 1]], b_eq=[2], lb=0, ub=1, integer=True)
PAIRS = [np.isin(np.arange(5), p).astype(float) for p in itertools.combinations(range(5), 2)]


def profit(z, y):
    """To maximise: value of the pair, less a penalty when items 0 and 1 go together."""
    return jnp.dot(y["v"], z) - 3.0 * z[0] * z[1]


def generate(count, seed=0):
    r = np.random.default_rng(seed)
    return [{"v": jnp.asarray(r.uniform(1, 2, 5), jnp.float32).at[:2].add(1.0)}
            for _ in range(count)]


def test_problem_sense_max_negates_and_converts_back():
    p = surco.Problem("profit", SPEC, profit, evaluate=lambda x, y: float(profit(x, y)),
                      sense="max")
    y = generate(1)[0]
    x = jnp.asarray(PAIRS[3])
    want = float(profit(x, y))
    assert float(p.f(x, y)) == pytest.approx(-want)
    assert p.evaluate(np.asarray(x), y) == pytest.approx(-want)
    assert float(p.user_objective(x, y)) == pytest.approx(want)
    assert p.to_user(-2.5) == 2.5 and surco.Problem("m", SPEC, profit).to_user(-2.5) == -2.5
    q = dataclasses.replace(p, features=lambda y: y["v"][:, None])   # no second negation
    assert float(q.f(x, y)) == pytest.approx(-want) and q.sense == "max"
    with pytest.raises(ValueError, match="sense must be 'min' or 'max', got 'maximise'"):
        surco.Problem("bad", SPEC, profit, sense="maximise")


def test_a_maximised_family_reports_the_users_objective():
    problem = surco.Problem("profit", SPEC, profit, sense="max")
    fam = surco.family_for(problem, generate)
    assert fam.sense == "max"
    ys = generate(2, seed=1)
    cmp = surco.compare(fam, ys, ["start", "scip"], budget=Budget(seconds=30.0, evaluations=20),
                        progress=False)
    assert cmp.sense == "max"
    best = [max(float(profit(jnp.asarray(z), y)) for z in PAIRS) for y in ys]
    # the runs hold the minimised costs; the summary the user's f
    np.testing.assert_allclose(cmp.values("scip"), -np.array(best), rtol=1e-5)
    rows = {r["method"]: r for r in cmp.summary("start")}
    assert rows["scip"]["value"] == pytest.approx(np.mean(best), rel=1e-5)
    start = -cmp.values("start")
    assert rows["start"]["value"] == pytest.approx(start.mean(), rel=1e-6)
    assert rows["scip"]["rel_gap"] == pytest.approx(
        (np.mean(best) - start.mean()) / abs(start.mean()), rel=1e-5)
    assert rows["scip"]["rel_gap"] >= 0 and rows["scip"]["losses"] == 0
    assert rows["scip"]["wins"] == int(np.sum(np.array(best) > start + 1e-6 * np.abs(start)))
    table = cmp.table("start")
    assert "mean f" in table and "higher mean f and a positive gap are better" in table


def test_a_hand_written_maximised_family_declares_its_sense():
    problem = surco.Problem("profit", SPEC, profit, sense="max")
    brute = surco.methods.heuristic(
        lambda y: min(PAIRS, key=lambda z: float(problem.f(jnp.asarray(z), y))), name="brute")
    fam = surco.Family("profit", problem=lambda y: problem,
                       evaluate=lambda x, y: -float(profit(jnp.asarray(x), y)),
                       baselines={"brute": brute}, sense="max")
    ys = generate(2, seed=3)
    cmp = surco.compare(fam, ys, ["brute"], budget=Budget(evaluations=5), progress=False)
    best = [max(float(profit(jnp.asarray(z), y)) for z in PAIRS) for y in ys]
    assert cmp.sense == "max"
    assert cmp.summary("brute")[0]["value"] == pytest.approx(np.mean(best), rel=1e-5)
    with pytest.raises(ValueError, match="Family 'profit': sense must be 'min' or 'max', got "
                                         "'maximise'"):
        dataclasses.replace(fam, sense="maximise")


def _run(method, i, value):
    return Run(method, i, None, value, 1.0, 1, "ok", None, [(1, 1.0, value)], Budget())


def test_bars_show_small_differences_and_the_sense():
    pytest.importorskip("matplotlib")
    runs = [_run("ref", i, v) for i, v in enumerate([100.0, 100.0])] + \
           [_run("other", i, v) for i, v in enumerate([104.0, 104.0])]
    cmp = surco.Comparison("toy", runs, ["ref", "other"], 2, "ref")
    fig = cmp.plot()
    heights = [b.get_height() for b in fig.axes[0].patches]
    assert heights == pytest.approx([0.0, 4.0])              # +4 %, not bars of 100 and 104
    assert "lower is better" in fig.axes[0].get_ylabel()
    neg = [dataclasses.replace(r, value=-r.value) for r in runs]
    up = surco.Comparison("toy", neg, ["ref", "other"], 2, "ref", sense="max")
    rows = {r["method"]: r for r in up.summary()}
    assert rows["other"]["value"] == 104.0 and rows["other"]["rel_gap"] == pytest.approx(0.04)
    assert rows["other"]["rel_reference"] == pytest.approx(1.04)   # ratio of positive f
    assert rows["other"]["wins"] == 2 and rows["other"]["losses"] == 0   # f 104 > 100
    fig = up.plot()
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx([0.0, 4.0])
    assert "higher is better" in fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="senses 'min' and 'max' differ"):
        cmp.merge(up)
