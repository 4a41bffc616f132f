"""Budgets that charge a simulated cost per evaluation (``Budget(eval_cost=s)``): the meter's
clock reads real seconds + s × evaluations, exactly, for every method alike."""
import math

import numpy as np
import pytest

import surco
from surco.budget import Budget, BudgetExhausted
from surco.family import Family


def _still():
    """A clock that stands still: only the charges move the meter's time."""
    return 0.0


def _family(**methods):
    # x = [k] names plan k of instance y (a list of values); every plan is feasible
    return Family(name="plans", problem=lambda y: None, evaluate=lambda x, y: float(y[int(x[0])]),
                  baselines=methods, violations_fn=lambda x, y: [])


def _enumerate(y, meter):
    for k in range(len(y)):
        meter(np.array([k]))
    return meter.best_x


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True, "1", None])
def test_budget_rejects_bad_eval_cost(bad):
    with pytest.raises(ValueError, match="eval_cost must be a finite number"):
        Budget(seconds=1.0, eval_cost=bad)


def test_describe_mentions_the_charge():
    assert Budget(seconds=10, evaluations=300, eval_cost=0.1).describe() == \
        "10 s and 300 evaluations, 0.1 s charged per evaluation"
    assert Budget(eval_cost=2).describe() == "unlimited, 2 s charged per evaluation"
    assert Budget(seconds=1).describe() == "1 s"
    assert Budget(eval_cost=np.float32(0.5)).eval_cost == 0.5


def test_one_second_at_a_tenth_per_evaluation_allows_exactly_ten():
    m = Budget(seconds=1.0, eval_cost=0.1).start(lambda x: -float(x[0]), clock=_still)
    for k in range(10):
        assert not m.exhausted
        m(np.array([float(k)]))
    assert m.evaluations == 10 and m.elapsed() == 0.1 * 10 and m.exhausted
    with pytest.raises(BudgetExhausted, match=r"time budget of 1 s spent \(0.1 s charged"):
        m(np.array([99.0]))
    assert m.evaluations == 10
    # the curve's seconds are the charged ones, each point after its own evaluation
    assert [p[1] for p in m.curve] == [0.1 * k for k in range(1, 11)]
    assert m.remaining_seconds() == 1.0 - 0.1 * 10


def test_charged_time_is_real_plus_cost_times_evaluations_exactly():
    s = 0.37
    m = Budget(eval_cost=s).start(lambda x: float(x.sum()))
    for k in range(7):
        m(np.array([float(k)]))
        m(np.array([float(k)]))           # cache hit: free
    real, elapsed = m.times()
    assert m.evaluations == 7 and elapsed == real + s * 7
    assert 0 < real < elapsed


def test_cache_hits_are_free_until_the_charged_deadline_then_raise():
    m = Budget(seconds=1.0, eval_cost=0.5).start(lambda x: float(x[0]), clock=_still)
    m(np.array([1.0]))
    assert m(np.array([1.0])) == 1.0 and m.elapsed() == 0.5 and m.evaluations == 1
    m(np.array([2.0]))
    with pytest.raises(BudgetExhausted, match="time budget"):
        m(np.array([1.0]))                # cached, but past the deadline
    with pytest.raises(BudgetExhausted, match="time budget"):
        m.batch(np.array([[1.0], [2.0]]))
    # an evaluation budget alone leaves cache hits free after it is spent
    e = Budget(evaluations=1, eval_cost=0.5).start(lambda x: float(x[0]), clock=_still)
    e(np.array([3.0]))
    assert e(np.array([3.0])) == 3.0


def test_batch_takes_the_evaluations_that_start_before_the_charged_deadline():
    m = Budget(seconds=1.0, eval_cost=0.3).start(lambda x: float(x[0]), clock=_still,
                                                  evaluate_batch=lambda X: X[:, 0])
    with pytest.raises(BudgetExhausted, match="time budget"):
        m.batch(np.array([[5.0], [4.0], [3.0], [2.0], [1.0]]))
    # started at 0, 0.3, 0.6, 0.9 s: four, in order, as one by one
    assert m.evaluations == 4 and m.best_value == 2.0
    one = Budget(seconds=1.0, eval_cost=0.3).start(lambda x: float(x[0]), clock=_still)
    n = 0
    with pytest.raises(BudgetExhausted):
        for v in (5.0, 4.0, 3.0, 2.0, 1.0):
            one(np.array([v]))
            n += 1
    assert n == 4


def test_a_meter_over_a_meter_reads_the_parents_charged_clock():
    parent = Budget(eval_cost=0.25).start(lambda x: float(x[0]), clock=_still)
    child = Budget(seconds=0.6).start(parent, evaluate_batch=parent.batch)
    child(np.array([1.0])), child(np.array([2.0])), child(np.array([3.0]))
    assert child.elapsed() == parent.elapsed() == 0.75
    with pytest.raises(BudgetExhausted):
        child(np.array([4.0]))
    assert parent.evaluations == 3
    with pytest.raises(ValueError, match="eval_cost must be 0"):
        Budget(eval_cost=0.1).start(parent)
    with pytest.raises(TypeError, match="clock must be callable"):
        Budget().start(lambda x: 0.0, clock=1.0)


def test_compare_reports_charged_and_wall_seconds():
    s = 0.01
    cmp = surco.compare(_family(enumerate=_enumerate), [[5.0, 3.0, 4.0, 1.0]], ["enumerate"],
                        budget=Budget(eval_cost=s), progress=False)
    r = cmp.run("enumerate", 0)
    assert r.status == "ok" and r.evaluations == 4 and r.value == 1.0 and not r.cut_off
    assert r.seconds == r.wall_seconds + s * 4          # one reading of the meter's clock
    assert [p[0] for p in r.curve] == [1, 2, 4]
    assert all(p[1] >= s * p[0] for p in r.curve)         # charged, after each evaluation
    row = cmp.summary()[0]
    assert row["seconds"] == r.seconds and row["wall_seconds"] == r.wall_seconds


def test_compare_stops_every_method_at_the_charged_deadline():
    y = [float(v) for v in range(20, 0, -1)]
    cmp = surco.compare(_family(enumerate=_enumerate), [y], ["enumerate"],
                        budget=Budget(seconds=1.0, eval_cost=0.1), progress=False)
    r = cmp.run("enumerate", 0)
    assert r.status == "budget" and r.cut_off and 1 <= r.evaluations <= 10
    assert r.seconds >= 1.0 and r.value == y[r.evaluations - 1]


def test_a_method_with_its_own_wall_limit_and_repeated_x_is_stopped_at_the_charged_one():
    # the pattern of SurCo-zero in the harness: a wall-time limit taken from
    # meter.remaining_seconds() (charged seconds left), steps that repeat x for free
    def repeater(y, meter):
        limit = meter.remaining_seconds()           # 100 s: far beyond the charged deadline
        meter(np.array([0])), meter(np.array([1]))  # 2 × 50 s charged: the deadline is met
        for _ in range(10_000):
            if meter.real_seconds() > limit:
                break
            meter(np.array([1]))                    # cached: free, but past the deadline
        return np.array([1])

    cmp = surco.compare(_family(repeat=repeater), [[2.0, 1.0]], ["repeat"],
                        budget=Budget(seconds=100.0, eval_cost=50.0), progress=False)
    r = cmp.run("repeat", 0)
    assert r.status == "budget" and r.evaluations == 2 and r.value == 1.0
    assert r.wall_seconds < 100.0 and r.seconds == r.wall_seconds + 100.0


def test_matched_budget_carries_eval_cost():
    fam = _family(enumerate=_enumerate, first=lambda y, meter: np.array([0]))
    a = surco.compare(fam, [[3.0, 2.0, 1.0]], ["enumerate"], budget=Budget(eval_cost=0.2),
                      progress=False)
    b = a.matched_budget("enumerate", evaluations=True)("first", 0)
    r = a.run("enumerate", 0)
    assert b.eval_cost == 0.2 and b.evaluations == 3 and b.seconds == max(r.seconds, 1e-3)
    assert b.seconds >= 0.6


def test_the_cache_keeps_a_digest_per_plan_not_the_plan():
    # 800 tables x 128 devices: 800 KB of float64 per plan. The meter keeps one small key
    # per distinct plan (a run of tens of thousands of evaluations once filled 16 GB), and
    # still tells plans apart and hits on a repeat, whatever the dtype it is given.
    calls = []
    m = Budget(evaluations=50).start(lambda x: calls.append(1) or float(np.argmax(x[0])))
    base = np.zeros((800, 128), np.float32)
    base[:, 0] = 1
    for d in range(40):
        x = base.copy()
        x[0] = 0
        x[0, d] = 1
        assert m(x) == d
    assert m(base.astype(np.float64)) == 0 and m(base) == 0 and len(calls) == 40
    assert max(len(k) for k in m._cache) <= 64
    assert sum(len(k) for k in m._cache) < 40 * 64
