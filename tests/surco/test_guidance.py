"""`surco.guidance.check_solver_share`: the warning when solves dominate SurCo's steps."""
import warnings

import numpy as np
import pytest

from surco.guidance import (DEFAULT_SOLVE_SECONDS, SOLVER_SHARE_THRESHOLD,
                            SolverDominatesWarning, check_solver_share)


def test_share_above_the_threshold_warns_with_the_advice():
    with pytest.warns(SolverDominatesWarning) as rec:
        out = check_solver_share([0.5, 0.45, 0.4], [0.55, 0.5, 0.45])
    assert out.share == pytest.approx(1.35 / 1.5)
    assert out.solve_seconds == pytest.approx(1.35) and out.step_seconds == pytest.approx(1.5)
    msg = str(rec[0].message)
    assert "90 %" in msg and "1.35 s of 1.5 s" in msg
    for advice in ("time limit", f"{DEFAULT_SOLVE_SECONDS:g} s", "relax=True", "LANCER"):
        assert advice in msg
    assert str(out) == msg


def test_share_at_or_below_the_threshold_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_solver_share(0.8, 1.0) is None          # exactly 80 %: not above
        assert check_solver_share(np.zeros(4), np.ones(4)) is None
        assert check_solver_share(0.5, 1.0, threshold=0.6) is None
    assert SOLVER_SHARE_THRESHOLD == 0.8


def test_threshold_and_warn_flag():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = check_solver_share(0.7, 1.0, threshold=0.5, warn=False)
    assert out.share == pytest.approx(0.7)
    assert check_solver_share(3.0, 2.0, warn=False).share == 1.0   # timing noise: clipped


@pytest.mark.parametrize("args, kw, match", [
    ((-1.0, 1.0), {}, "solve_seconds must be finite seconds"),
    ((1.0, float("nan")), {}, "step_seconds must be finite seconds"),
    ((0.0, 0.0), {}, "step_seconds must sum to > 0"),
    ((1.0, []), {}, "step_seconds must be finite seconds"),
    ((1.0, 1.0), {"threshold": 1.0}, "threshold must lie in"),
])
def test_bad_input_names_the_argument(args, kw, match):
    with pytest.raises(ValueError, match=match):
        check_solver_share(*args, **kw)


def test_surco_zero_warns_when_its_solves_dominate_the_steps(monkeypatch):
    """`surco.zero` measures the solver's share over `SHARE_STEPS` steps after the first and
    warns once: here every solve of Ω takes 0.2 s more (a sleep inside the timed solve), and
    a step's other work (f, its gradient, the update on a 4 × 2 assignment) is far shorter."""
    import time

    import surco
    from surco import _engine
    from surco.driver import loop
    from surco.problems import assignment as A

    real = _engine.make_solver

    def slow_solver(*a, **kw):
        s = real(*a, **kw)
        inner = s.solve_flat

        def solve_flat(c):
            time.sleep(0.2)
            return inner(c)
        s.solve_flat = solve_flat
        return s

    monkeypatch.setattr(_engine, "make_solver", slow_solver)
    prob, y = A.make_problem(4, 2), A.generate(1, seed=0, n=4, m=2)[0]
    with pytest.warns(SolverDominatesWarning, match="LANCER") as rec:
        surco.zero(prob, y, steps=loop.SHARE_STEPS + 2, backend="highs", key=0, lr=0.1)
    assert sum(r.category is SolverDominatesWarning for r in rec) == 1


@pytest.mark.parametrize("options, limit", [(None, DEFAULT_SOLVE_SECONDS),
                                            ({"time_limit": 2.5}, 2.5),
                                            ({"time_limit": None}, None)])
def test_surco_steps_solve_under_the_default_time_limit(monkeypatch, options, limit):
    """Every solver a SurCo run builds for a `LinearSpec` Ω gets `DEFAULT_SOLVE_SECONDS`
    per solve, unless ``solver_options`` gives a ``time_limit`` (None: unlimited)."""
    import surco
    from surco import _engine
    from surco.problems import assignment as A

    real, built = _engine.make_solver, []

    def recording(*a, **kw):
        s = real(*a, **kw)
        built.append(s)
        return s

    monkeypatch.setattr(_engine, "make_solver", recording)
    prob, y = A.make_problem(4, 2), A.generate(1, seed=0, n=4, m=2)[0]
    res = surco.zero(prob, y, steps=3, backend="highs", key=0, lr=0.1, solver_options=options)
    assert built and all(s.time_limit == limit for s in built), [s.time_limit for s in built]
    assert prob.space_for(y).contains(res.x)


def test_the_default_limit_keeps_the_size_guard_a_chosen_limit_lifts_it():
    """With the default limit (none chosen) a model above ``max_size`` is refused before any
    solve, as `make_solver` refuses one without a time limit; a chosen limit lifts the guard."""
    import surco
    from surco.problems import assignment as A
    from surco.solvers import ModelTooLargeError

    prob, y = A.make_problem(4, 2), A.generate(1, seed=0, n=4, m=2)[0]   # size 8 + 16 = 24
    with pytest.raises(ModelTooLargeError, match="24"):
        surco.zero(prob, y, steps=2, backend="highs", key=0, solver_options={"max_size": 20})
    res = surco.zero(prob, y, steps=2, backend="highs", key=0,
                     solver_options={"max_size": 20, "time_limit": 2.0})
    assert prob.space_for(y).contains(res.x)
