"""`surco.methods`: the combinators every family's baselines are built from, and the one time
policy of every time-limited method, checked across the families."""
import importlib
import inspect
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

import surco.methods as M
import surco.problems
from surco.budget import Budget
from surco.search import Cardinality

REPO = Path(__file__).resolve().parents[2]
W = np.array([3.0, 1.0, 2.0, 0.5, 4.0, 0.7])


def _frozen(seconds=None, evaluations=None, eval_cost=0.0, f=lambda z: float(W @ z)):
    """A meter whose real clock stands still: remaining seconds are exact."""
    return Budget(seconds=seconds, evaluations=evaluations,
                  eval_cost=eval_cost).start(f, clock=lambda: 0.0)


def _brute_min(k):
    return min(float(W[list(c)].sum()) for c in itertools.combinations(range(6), k))


# -- the time policy -------------------------------------------------------------------------

def test_solver_time_limit_values():
    assert M.solver_time_limit(_frozen()) == M.SOLVER_DEFAULT_SECONDS == 60.0
    assert M.solver_time_limit(_frozen(), 7.0) == 7.0
    assert M.solver_time_limit(_frozen(seconds=10.0)) == pytest.approx(0.95 * 10 - 0.05)
    assert M.solver_time_limit(_frozen(seconds=0.02)) == M.SOLVER_MIN_SECONDS
    # charged evaluations shorten what is left: 2 × 1.5 s of 10 s
    m = _frozen(seconds=10.0, eval_cost=1.5)
    m(np.array([1.0, 1, 0, 0, 0, 0]))
    m(np.array([0.0, 1, 1, 0, 0, 0]))
    assert M.solver_time_limit(m) == pytest.approx(0.95 * 7.0 - 0.05)
    with pytest.raises(ValueError, match="default_seconds"):
        M.solver_time_limit(_frozen(), 0)


def test_iterations_for():
    assert M.iterations_for(_frozen(evaluations=7), 150) == 7
    assert M.iterations_for(_frozen(), 150) == 150
    assert M.iterations_for(_frozen(seconds=3.0), 150) == 10 ** 9


# -- combinators -----------------------------------------------------------------------------

def test_heuristic_scores_only_when_asked():
    z = np.array([1.0, 1, 0, 0, 0, 0])
    m = _frozen(evaluations=5)
    assert np.array_equal(M.heuristic(lambda y: z)(None, m), z) and m.evaluations == 0
    assert M.heuristic(lambda y: z, score=True)(None, m) is z and m.evaluations == 1
    assert m.best_value == 4.0
    with pytest.raises(TypeError, match="heuristic: fn must be callable"):
        M.heuristic(3)


@pytest.mark.parametrize("kind", M.SEARCH_KINDS)
def test_search_from_reaches_a_local_optimum_and_with_restarts_the_optimum(kind):
    nb = Cardinality(6, 3, 3)
    start = M.heuristic(lambda y: np.array([1.0, 1, 1, 0, 0, 0]), name="first-three")
    m = _frozen()
    x = M.search_from(start, nb, kind=kind)(None, m)
    # swaps on a linear cost: the local optimum is the global one (the 3 lightest)
    assert float(W @ x) == pytest.approx(_brute_min(3)) == m.best_value
    assert all(float(W @ n) >= m.best_value for n in nb.neighbours(x))

    def restart(y, rng):
        z = np.zeros(6)
        z[rng.choice(6, 3, replace=False)] = 1.0
        return z

    # restarts while the budget lasts; they stop once RESTART_IDLE restarts in a row found
    # nothing new: here all 20 supports are evaluated, then the search stops
    m = _frozen(evaluations=40)
    x = M.search_from(start, lambda y, x0: nb, kind=kind, restart=restart, seed=3)(None, m)
    assert m.evaluations == math.comb(6, 3) and float(W @ x) == pytest.approx(_brute_min(3))


def test_search_from_falls_back_when_the_budget_ends_first():
    ticks = itertools.count()
    m = Budget(seconds=1.0).start(lambda z: float(W @ z), clock=lambda: float(next(ticks)))
    z = np.array([1.0, 1, 1, 0, 0, 0])
    out = M.search_from(M.heuristic(lambda y: z), Cardinality(6, 3, 3))(None, m)
    assert out is not None and np.array_equal(out, z) and m.evaluations == 0
    fb = np.array([0.0, 0, 0, 1, 1, 1])
    out = M.search_from(M.heuristic(lambda y: z), Cardinality(6, 3, 3),
                        fallback=lambda y: fb)(None, m)
    assert np.array_equal(out, fb)


def test_search_from_rejects_bad_arguments():
    start = M.heuristic(lambda y: np.ones(6))
    with pytest.raises(ValueError, match=r"kind must be one of \('steepest', 'first'\)"):
        M.search_from(start, Cardinality(6, 3, 3), kind="best")
    with pytest.raises(TypeError, match="start must be callable"):
        M.search_from(None, Cardinality(6, 3, 3))
    with pytest.raises(TypeError, match="neighbourhood must be callable"):
        M.search_from(start, 5)
    with pytest.raises(TypeError, match="restart must be callable"):
        M.search_from(start, Cardinality(6, 3, 3), restart=1)


def test_annealing_from_bounds_an_unlimited_meter_and_uses_a_finite_one():
    start = M.heuristic(lambda y: np.array([1.0, 1, 1, 0, 0, 0]))
    m = _frozen()
    x = M.annealing_from(start, Cardinality(6, 3, 3), evaluations=12, seed=1)(None, m)
    assert 1 < m.evaluations <= 12 and float(W @ x) == m.best_value <= 6.0
    m = _frozen(evaluations=15)
    M.annealing_from(start, Cardinality(6, 3, 3), evaluations=lambda y: 1000)(None, m)
    assert m.evaluations <= 15
    with pytest.raises(ValueError, match="evaluations must be an int >= 1"):
        M.annealing_from(start, Cardinality(6, 3, 3), evaluations=0)


def test_time_limited_passes_the_policy_and_scores_once():
    seen = []

    def solve(y, seconds):
        seen.append(seconds)
        return np.array([0.0, 1, 0, 1, 0, 1])

    method = M.time_limited(solve, default_seconds=9.0, name="stub")
    m = _frozen(seconds=4.0, evaluations=3)
    x = method(None, m)
    assert seen == [pytest.approx(0.95 * 4 - 0.05)] and m.evaluations == 1
    assert m.best_value == float(W @ x) and method.__name__ == "stub"
    method(None, _frozen())
    assert seen[-1] == 9.0
    quiet = M.time_limited(solve, score=False)
    m = _frozen()
    quiet(None, m)
    assert m.evaluations == 0 and seen[-1] == M.SOLVER_DEFAULT_SECONDS
    with pytest.raises(ValueError, match="default_seconds"):
        M.time_limited(solve, default_seconds=-1)


# -- the families ----------------------------------------------------------------------------

class _Stop(Exception):
    pass


def _family(name):
    """The family module's FAMILY (`make test` installs every extra a family needs, so an
    import error is a failure, not a skip)."""
    return importlib.import_module(f"surco.problems.{name}").FAMILY


@pytest.mark.parametrize("name", surco.problems.FAMILIES)
def test_every_time_limited_method_uses_the_one_policy(name, monkeypatch):
    """The remaining-time arithmetic is the same in every family: each method that hands a
    solver a time limit is a `TimeLimited`, whose solver gets exactly
    `solver_time_limit(meter, default)`, computed by that one function."""
    fam = _family(name)
    methods = {**fam.baselines, **({"exact": fam.exact} if fam.exact else {})}
    limited = {k: v for k, v in methods.items() if isinstance(v, M.TimeLimited)}
    assert {k for k in methods if k.startswith("scip")} <= set(limited), name
    calls = []
    real = M.solver_time_limit

    def spy(meter, default_seconds=M.SOLVER_DEFAULT_SECONDS):
        calls.append(default_seconds)
        return real(meter, default_seconds)

    monkeypatch.setattr(M, "solver_time_limit", spy)
    for key, method in limited.items():
        got = []

        def stub(y, seconds):
            got.append(seconds)
            raise _Stop

        stubbed = M.TimeLimited(stub, method.default_seconds, method.score, method.name)
        for budget, want in ((Budget(seconds=5.0), 0.95 * 5 - 0.05),
                             (Budget(), method.default_seconds)):
            with pytest.raises(_Stop):
                stubbed(None, budget.start(len, clock=lambda: 0.0))
            assert got[-1] == pytest.approx(want), (name, key)
            assert calls[-1] == method.default_seconds
    assert len(calls) == 2 * len(limited)


def test_family_files_are_short_and_read_no_clock():
    """Each family.py assembles its family (<= 150 lines) and never reads the meter's clock
    itself: time limits come from `surco.methods`."""
    paths = sorted((REPO / "problems").glob("*/family.py"))
    assert len(paths) >= 5
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 150, f"{path}: {len(text.splitlines())} lines"
        assert "remaining_seconds" not in text, f"{path} reads the meter's clock"


@pytest.mark.parametrize("name", surco.problems.FAMILIES)
def test_generators_share_one_signature(name):
    gen = _family(name).generate
    params = list(inspect.signature(gen).parameters.values())
    assert params[0].name == "count" and params[1].name == "seed" and params[1].default == 0
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[2:]), name


def test_derived_scip_uses_the_one_policy(monkeypatch):
    import jax.numpy as jnp

    import surco
    from surco.solvers import LinearSpec
    spec = LinearSpec((4,), A_eq=np.ones((1, 4)), b_eq=[2], lb=0, ub=1, integer=True)
    problem = surco.Problem("pick", spec, lambda z, y: (y["v"] @ z - 1.0) ** 2)
    y = {"v": jnp.asarray([0.2, 0.9, 0.4, 0.7], jnp.float32)}
    calls = []
    real = M.solver_time_limit
    monkeypatch.setattr(M, "solver_time_limit",
                        lambda meter, d=60.0: calls.append(d) or real(meter, d))
    meter = Budget(seconds=30.0).start(lambda z: float((np.asarray(y["v"]) @ z - 1.0) ** 2))
    x = surco.derive.scip_method(problem, default_seconds=42.0)(y, meter)
    assert calls == [42.0] and meter.evaluations == 1
    assert meter.best_value == pytest.approx(min(
        (float(y["v"][i] + y["v"][j]) - 1.0) ** 2 for i in range(4) for j in range(i + 1, 4)),
        abs=1e-6)
    assert spec.contains(x)
