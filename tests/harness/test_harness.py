"""The comparison harness and budgets (surco.budget, surco.harness) on a tiny family whose
optimum is known by enumeration."""
import itertools
import json
import math
import time

import numpy as np
import pytest
import scipy.sparse as sp

import surco
from surco.budget import Budget, BudgetExhausted
from surco.family import Family, spec_violations
from surco.solvers import LinearSpec

N, M = 4, 2


def _spec():
    return LinearSpec(shape=(N, M), A_eq=sp.kron(sp.eye(N), np.ones((1, M))), b_eq=np.ones(N),
                      A_ub=sp.kron(np.ones((1, N)), sp.eye(M)), b_ub=np.full(M, 3.0),
                      lb=0, ub=1, integer=True, name="tiny")


def _objective(x, y):
    import jax.numpy as jnp
    load = jnp.sum(x * y["w"], axis=0)
    return jnp.sum(load ** 2)


def _evaluate(x, y):
    load = (np.asarray(x) * np.asarray(y["w"])).sum(0)
    return float((load ** 2).sum())


def _all_plans():
    for a in itertools.product(range(M), repeat=N):
        x = np.zeros((N, M))
        x[np.arange(N), a] = 1
        if x.sum(0).max() <= 3:
            yield x


def _first_row_plan(y, meter):
    x = np.zeros((N, M))
    x[:, 0] = 1
    x[3] = [0, 1]
    return x


def _enumerate(y, meter):           # evaluates every plan through the meter until cut off
    for x in _all_plans():
        meter(x)
    return meter.best_x


def _broken(y, meter):
    raise RuntimeError("boom")


def _infeasible(y, meter):
    return np.ones((N, M))


def _family(**kw):
    spec = _spec()
    return Family(name="tiny", problem=lambda y: surco.Problem("tiny", spec, _objective),
                  evaluate=_evaluate,
                  baselines={"first": _first_row_plan, "enumerate": _enumerate, **kw})


def _instances(k=3):
    rng = np.random.default_rng(0)
    return [{"w": rng.uniform(0.5, 1.5, (N, M))} for _ in range(k)]


def test_meter_counts_distinct_evaluations_and_enforces_budget():
    calls = []
    m = Budget(evaluations=3).start(lambda x: calls.append(1) or float(x.sum()))
    assert m(np.array([1.0])) == 1.0 and m(np.array([1.0])) == 1.0
    assert m.evaluations == 1 and m.calls == 2 and len(calls) == 1
    m(np.array([0.5])), m(np.array([2.0]))
    assert m.evaluations == 3 and m.best_value == 0.5
    with pytest.raises(BudgetExhausted):
        m(np.array([7.0]))
    assert m.evaluations == 3 and m(np.array([2.0])) == 2.0  # cached: free even when spent
    assert [p[0] for p in m.curve] == [1, 2] and [p[2] for p in m.curve] == [1.0, 0.5]


def test_meter_batch_stops_exactly_at_the_budget():
    m = Budget(evaluations=4).start(lambda x: float(x.sum()),
                                    evaluate_batch=lambda X: X.sum(axis=1))
    v = m.batch(np.array([[3.0], [1.0], [3.0]]))
    np.testing.assert_array_equal(v, [3.0, 1.0, 3.0])
    assert m.evaluations == 2
    with pytest.raises(BudgetExhausted):
        m.batch(np.array([[5.0], [0.25], [9.0], [-1.0]]))
    assert m.evaluations == 4 and m.best_value == 0.25  # the first two new ones, in order


def test_meter_time_budget():
    m = Budget(seconds=0.05).start(lambda x: 0.0)
    m(np.array([1.0]))
    time.sleep(0.06)
    assert m.exhausted
    with pytest.raises(BudgetExhausted, match="time budget"):
        m(np.array([2.0]))


@pytest.mark.parametrize("kw, msg", [({"seconds": 0}, "seconds must be a positive"),
                                     ({"seconds": math.inf}, "seconds must be a positive"),
                                     ({"evaluations": 0}, "evaluations must be a positive"),
                                     ({"evaluations": 2.5}, "evaluations must be a positive")])
def test_budget_rejects_bad_limits(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Budget(**kw)


def test_meter_rejects_non_finite_costs():
    m = Budget().start(lambda x: math.nan)
    with pytest.raises(ValueError, match="finite"):
        m(np.array([1.0]))


def test_spec_violations_names_what_is_wrong():
    spec = _spec()
    good = next(_all_plans())
    assert spec_violations(good, spec) == []
    assert "shape" in spec_violations(np.zeros((3, 2)), spec)[0]
    assert "violates" in spec_violations(np.ones((N, M)), spec)[0]
    half = good.copy()
    half[0] = [0.5, 0.5]
    assert "violates" in spec_violations(half, spec)[0]


def test_compare_pairs_results_and_records_failures():
    fam = _family(broken=_broken, infeasible=_infeasible)
    ys = _instances(3)
    cmp = surco.compare(fam, ys, ["first", "enumerate", "broken", "infeasible"],
                        reference="first", progress=False)
    assert len(cmp.runs) == 12
    opt = [min(_evaluate(x, y) for x in _all_plans()) for y in ys]
    np.testing.assert_allclose(cmp.values("enumerate"), opt)
    assert all(r.status == "failed" and "boom" in r.error
               for r in cmp.runs if r.method == "broken")
    assert all(r.status == "failed" and "outside Ω" in r.error
               for r in cmp.runs if r.method == "infeasible")
    rows = {r["method"]: r for r in cmp.summary()}
    first = cmp.values("first")
    wins = int(np.sum(np.asarray(opt) < first - 1e-9))
    assert rows["enumerate"]["wins"] == wins and rows["enumerate"]["losses"] == 0
    assert rows["enumerate"]["ties"] == 3 - wins
    assert rows["enumerate"]["p_sign"] == pytest.approx(surco.harness.sign_test(wins, 0))
    assert rows["broken"]["failed"] == 3
    assert "enumerate" in cmp.table() and "boom" in cmp.table()


def test_compare_honours_evaluation_budgets():
    cmp = surco.compare(_family(), _instances(2), ["enumerate"], budget=Budget(evaluations=2),
                        progress=False)
    for r in cmp.runs:
        assert r.evaluations == 2 and r.status == "budget"
        assert r.value == min(p[2] for p in r.curve)


def test_sign_test_values():
    assert surco.harness.sign_test(0, 0) == 1.0
    assert surco.harness.sign_test(10, 0) == pytest.approx(2 * 0.5 ** 10)
    assert surco.harness.sign_test(5, 5) == pytest.approx(1.0)


def test_matched_budget_and_merge():
    fam = _family()
    ys = _instances(2)
    a = surco.compare(fam, ys, ["enumerate"], progress=False)
    b = surco.compare(fam, ys, ["first"], budget=a.matched_budget("enumerate", evaluations=True),
                      progress=False)
    assert all(r.budget.evaluations == a.run("enumerate", r.instance).evaluations for r in b.runs)
    both = a.merge(b)
    assert both.methods == ["enumerate", "first"] and len(both.runs) == 4
    with pytest.raises(KeyError, match="no run"):
        both.run("nope", 0)


def test_compare_rejects_bad_arguments():
    fam = _family()
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        surco.compare(fam, _instances(1), ["nope"], progress=False)
    with pytest.raises(ValueError, match="need prior"):
        surco.compare(fam, _instances(1), ["surco-prior"], progress=False)
    with pytest.raises(TypeError, match="instances must be a list or tuple"):
        surco.compare(fam, _instances(1)[0], progress=False)
    with pytest.raises(TypeError, match="family must be a surco.Family"):
        surco.compare(object(), _instances(1), progress=False)


def test_compare_keeps_runs_on_ctrl_c():
    def interrupt(y, meter):
        raise KeyboardInterrupt

    cmp = surco.compare(_family(stop=interrupt), _instances(2), ["first", "stop"],
                        progress=False)
    assert cmp.interrupted and [r.method for r in cmp.runs] == ["first", "first"]


def _sigint_then_wait():
    """Ctrl-C as a user sends it: SIGINT to this process; the handler raises
    KeyboardInterrupt in the main thread at its next bytecode, within the wait."""
    import os
    import signal
    os.kill(os.getpid(), signal.SIGINT)
    t_end = time.perf_counter() + 5.0
    while time.perf_counter() < t_end:
        pass
    raise AssertionError("SIGINT did not interrupt within 5 s")


def test_ctrl_c_inside_a_jax_host_callback_stops_the_comparison(tmp_path):
    """Ctrl-C that lands inside a `jax.pure_callback` (as during an FDFD simulation)
    reaches the method as JAX's own error, not as KeyboardInterrupt; the harness sees the
    signal's mark and stops the comparison: no failed run is recorded, nor stored, and the
    finished runs are kept (seen in bench.photonics, which had gone on to its next run)."""
    import jax
    import jax.numpy as jnp

    def host(v):
        _sigint_then_wait()
        return np.asarray(v, np.float32)

    def simulate(y, meter):
        f = jax.jit(lambda v: jax.pure_callback(
            host, jax.ShapeDtypeStruct((2,), jnp.float32), v))
        jax.block_until_ready(f(jnp.ones(2, jnp.float32)))
        return _first_row_plan(y, meter)

    store = tmp_path / "runs.jsonl"
    cmp = surco.compare(_family(simulate=simulate), _instances(2), ["first", "simulate"],
                        progress=False, store=store)
    assert cmp.interrupted
    assert [r.method for r in cmp.runs] == ["first", "first"]
    stored = [json.loads(line)["run"]["method"] for line in store.read_text().splitlines()]
    assert stored == ["first", "first"]


def test_ctrl_c_that_a_method_swallows_still_stops_the_comparison():
    def swallow(y, meter):
        try:
            _sigint_then_wait()
        except KeyboardInterrupt:
            pass
        return _first_row_plan(y, meter)

    cmp = surco.compare(_family(swallow=swallow), _instances(2), ["swallow", "first"],
                        progress=False)
    assert cmp.interrupted and cmp.runs == []


def test_plot_and_json(tmp_path):
    cmp = surco.compare(_family(), _instances(2), ["first", "enumerate"],
                        budget=Budget(evaluations=5), progress=False)
    cmp.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
    p = cmp.write_json(tmp_path / "b.json", bench="tiny", quick=True,
                       targets=[{"name": "t", "value": 1.0, "op": "<=", "target": 2.0}])
    out = json.loads(p.read_text())
    assert out["bench"] == "tiny" and out["quick"] is True and out["machine"]["cores"]
    assert {r["method"] for r in out["rows"]} == {"first", "enumerate"}
    assert out["targets"][0]["value"] == 1.0 and len(out["runs"]) == 4


def test_anytime_mean_starts_when_every_run_has_a_value():
    b = Budget()
    runs = [surco.Run("m", 0, np.zeros(1), 1.0, 1.0, 3, "ok", None,
                      [(1, 0.1, 5.0), (3, 0.3, 1.0)], b),
            surco.Run("m", 1, np.zeros(1), 2.0, 1.0, 2, "ok", None,
                      [(2, 0.2, 4.0)], b)]
    cmp = surco.Comparison("tiny", runs, ["m"], 2)
    g, v = cmp.anytime("m", "evaluations", grid=np.array([0, 1, 2, 3, 4]))
    np.testing.assert_array_equal(np.isnan(v), [True, True, False, False, False])
    np.testing.assert_allclose(v[2:], [4.5, 2.5, 2.5])


def _negative_comparison():
    """Maximisation written as minimising −value: the reference averages −100, "better" −104
    (4 % better), "worse" −98 (2 % worse)."""
    b = Budget()
    means = {"ref": [-90.0, -110.0], "better": [-94.0, -114.0], "worse": [-88.0, -108.0]}
    runs = [surco.Run(m, i, np.zeros(1), v[i], 1.0, 1, "ok", None, [(1, 0.5, v[i])], b)
            for m, v in means.items() for i in range(2)]
    return surco.Comparison("neg", runs, list(means), 2, reference="ref")


def test_negative_costs_get_a_relative_gap_in_table_and_plot(tmp_path):
    cmp = _negative_comparison()
    rows = {r["method"]: r for r in cmp.summary()}
    assert rows["better"]["rel_gap"] == pytest.approx(-0.04)
    assert rows["worse"]["rel_gap"] == pytest.approx(0.02)
    assert rows["ref"]["rel_gap"] == 0.0 and rows["better"]["rel_reference"] is None
    table = cmp.table()
    assert "vs ref" in table.splitlines()[0]
    line = {ln.split()[0]: ln for ln in table.splitlines()[2:]}
    assert "-4.00%" in line["better"] and "+2.00%" in line["worse"] and "+0.00%" in line["ref"]
    fig = cmp.plot(tmp_path / "neg.png")
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [0.0, -4.0, 2.0])      # bars from the reference, in %
    assert (tmp_path / "neg.png").stat().st_size > 1000


def test_plot_of_a_zero_reference_shows_dots_over_the_range():
    b = Budget()
    runs = [surco.Run(m, 0, np.zeros(1), v, 1.0, 1, "ok", None, [], b)
            for m, v in (("ref", 0.0), ("a", -0.04), ("c", 0.01))]
    cmp = surco.Comparison("zero", runs, ["ref", "a", "c"], 1, reference="ref")
    assert cmp.summary()[1]["rel_gap"] is None
    fig = cmp.plot()
    lo, hi = fig.axes[0].get_ylim()
    assert -0.04 > lo > -0.04 - 0.1 * 0.05 and 0.01 < hi < 0.01 + 0.1 * 0.05
    import matplotlib.pyplot as plt
    plt.close(fig)
