"""`Comparison.save` / `Comparison.load`: a comparison read back is the one written (values,
seconds, evaluations, budgets, curves, solutions), merged comparisons keep each run's
seconds, and the file's "seconds" is what the runs took, not the time to write it."""
import itertools
import json
import time

import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.methods import heuristic, search_from
from surco.report import Report
from surco.search import Cardinality
from surco.solvers import LinearSpec

SPEC = LinearSpec(shape=(5,), A_eq=[[1, 1, 1, 1, 1]], b_eq=[2], lb=0, ub=1, integer=True)
PAIRS = [np.isin(np.arange(5), p).astype(float) for p in itertools.combinations(range(5), 2)]


def f(x, y):
    return jnp.dot(y, x) + 2.0 * x[0] * x[1] - 1.0      # negative costs on purpose


def _slow_first_two(y):
    time.sleep(0.2)                                      # a run that takes measurable time
    return np.array([1.0, 1.0, 0.0, 0.0, 0.0])


FAMILY = surco.Family(
    "pick-two", problem=lambda y: surco.Problem("pick-two", SPEC, f),
    evaluate=lambda x, y: float(f(jnp.asarray(x, jnp.float32), y)),
    baselines={"first-two": heuristic(_slow_first_two, score=True),
               "search": search_from(heuristic(_slow_first_two), Cardinality(5, 2, 2))},
    exact=lambda y, meter: min(PAIRS, key=meter))
YS = [jnp.array([0.0, 0.1, 0.5, 0.6, 0.3]), jnp.array([0.2, 0.0, 0.1, 0.9, 0.4])]


def _same_runs(a, b, with_x=True):
    assert a.family == b.family and a.methods == b.methods and a.n_instances == b.n_instances
    assert a.reference == b.reference and a.interrupted == b.interrupted
    assert len(a.runs) == len(b.runs)
    for r, s in zip(a.runs, b.runs):
        assert (r.method, r.instance, r.status, r.error, r.evaluations) == \
               (s.method, s.instance, s.status, s.error, s.evaluations)
        assert r.value == s.value and r.seconds == s.seconds
        assert r.wall_seconds == s.wall_seconds and r.cut_off == s.cut_off
        assert r.budget == s.budget and [tuple(p) for p in r.curve] == s.curve
        if with_x:
            np.testing.assert_array_equal(np.asarray(r.x, np.float64), s.x)
        else:
            assert s.x is None


def test_save_load_round_trip(tmp_path):
    cmp = surco.compare(FAMILY, YS, ["first-two", "search", "exact"],
                        budget=Budget(evaluations=10, eval_cost=0.01), progress=False)
    back = surco.Comparison.load(cmp.save(tmp_path / "cmp.json"))
    _same_runs(cmp, back)
    assert back.table() == cmp.table() and back.summary() == cmp.summary()
    # exact's answer is the brute-force optimum (values negative: f − 1)
    assert back.values("exact") == pytest.approx(
        [min(float(f(jnp.asarray(p, jnp.float32), y)) for p in PAIRS) for y in YS], abs=1e-6)
    assert (back.values("exact") < 0).all()
    g, v = back.anytime("search")
    g0, v0 = cmp.anytime("search")
    np.testing.assert_array_equal(g, g0)
    np.testing.assert_array_equal(v, v0)
    # write_json's file loads too, without the solutions
    _same_runs(cmp, surco.Comparison.load(cmp.write_json(tmp_path / "b.json", bench="b",
                                                         quick=True)), with_x=False)


def test_merge_keeps_each_runs_seconds_and_the_file_the_runs_total(tmp_path):
    a = surco.compare(FAMILY, YS, ["first-two"], budget=Budget(evaluations=10), progress=False)
    b = surco.compare(FAMILY, YS, ["search"], budget=Budget(evaluations=10), progress=False)
    a2 = surco.Comparison.load(a.save(tmp_path / "a.json"))
    b2 = surco.Comparison.load(b.save(tmp_path / "b.json"))
    merged = a2.merge(b2)
    assert [r.seconds for r in merged.runs] == [r.seconds for r in a.runs + b.runs]
    assert all(r.seconds >= 0.2 for r in merged.runs)          # each slept 0.2 s
    path = merged.save(tmp_path / "merged.json")
    data = json.loads(path.read_text())
    total = sum(r.wall_seconds for r in a.runs + b.runs)
    assert data["seconds"] == pytest.approx(total) and data["seconds"] >= 0.8
    assert [r["seconds"] for r in data["runs"]] == [r.seconds for r in merged.runs]
    _same_runs(merged, surco.Comparison.load(path))


def test_load_refuses_a_report_that_is_not_a_comparison(tmp_path):
    rep = Report("other", True, path=tmp_path / "r.json")
    rep.row(a=1)
    path = rep.finish(quiet=True)
    with pytest.raises(ValueError, match=r"r\.json: not a saved comparison"):
        surco.Comparison.load(path)
    with pytest.raises(FileNotFoundError):
        surco.Comparison.load(tmp_path / "missing.json")
