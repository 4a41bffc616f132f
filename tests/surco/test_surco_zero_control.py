"""SurCo-zero under stress: Ctrl-C, time and evaluation budgets, failing solvers, bad input,
stuck estimators. Each test checks the message text and the best-so-far that is kept."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import surco
from surco.budget import Budget, BudgetExhausted
from surco.problems import assignment as A
from surco.solvers import (InfeasibleError, LinearSpec, Solver, SolverTimeout,
                           Status, make_solver)
from surco import NoProgressWarning

N, M = 8, 3
PROB = A.make_problem(N, M)
Y = A.generate(2, seed=5, n=N, m=M)


def _is_best_so_far(r: surco.ZeroResult, y) -> None:
    """r's x is feasible, its f is f(x) and the minimum of the recorded history."""
    assert PROB.space.contains(r.x)
    assert r.f == pytest.approx(float(A.objective(jnp.asarray(r.x, jnp.float32), y)), abs=1e-5)
    assert r.f == pytest.approx(min(r.history["f"]), abs=1e-6)
    assert len(r.history["f"]) == len(r.history["best_f"]) == len(r.history["seconds"])


# -- Ctrl-C ---------------------------------------------------------------------------------
def _sigint_after_solves(monkeypatch, solves: int) -> dict:
    """Send one SIGINT to this process once ``solves`` more solver calls have started (each
    solve of the main thread goes through `surco.solvers.blocking`), whatever the machine's
    speed: the run has then made some steps. Returns a dict that gets the sending time
    ("t")."""
    from surco.solvers import blocking
    sent, count = {}, {"n": 0}
    submit = blocking._submit

    def counting(job):
        count["n"] += 1
        if count["n"] == solves:
            threading.Timer(0.05, fire).start()   # from another thread, as a terminal would
        submit(job)

    def fire():
        sent["t"] = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(blocking, "_submit", counting)
    return sent


@pytest.mark.parametrize("backend", ["scip", "highs"])
def test_one_sigint_stops_zero_within_a_second_and_keeps_the_best(backend, monkeypatch):
    surco.zero(PROB, Y[0], steps=1, backend=backend)  # compile outside the timed part
    sent = _sigint_after_solves(monkeypatch, 40)
    with pytest.raises(KeyboardInterrupt) as info:
        surco.zero(PROB, Y[0], steps=100_000, backend=backend, key=0, time_limit=600)
    waited = time.perf_counter() - sent["t"]
    assert waited < 1.0, f"stopped {waited:.2f} s after SIGINT"
    assert "interrupted after" in str(info.value) and ".partial" in str(info.value)
    r = info.value.partial
    assert isinstance(r, surco.ZeroResult) and r.stopped == "interrupted" and r.interrupted
    assert len(r.history["f"]) > 5
    _is_best_so_far(r, Y[0])
    # the process's own handler is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_on_a_batch_of_instances_keeps_every_instance(monkeypatch):
    surco.zero(PROB, list(Y), steps=1, backend="highs")
    _sigint_after_solves(monkeypatch, 40)
    with pytest.raises(KeyboardInterrupt) as info:
        surco.zero(PROB, list(Y), steps=100_000, backend="highs", key=1, time_limit=600)
    part = info.value.partial
    assert isinstance(part, list) and len(part) == 2
    for r, y in zip(part, Y):
        assert r.stopped == "interrupted"
        _is_best_so_far(r, y)


class MeanCostPrior:
    """Stands in for a trained PriorModel: ``theta(y)`` is the mean-cost heuristic."""

    def theta(self, y):
        return A.mean_cost_heuristic(y)


def test_sigint_during_hybrid_keeps_the_best(monkeypatch):
    surco.hybrid(PROB, tuple(Y), MeanCostPrior(), steps=1)
    _sigint_after_solves(monkeypatch, 40)
    with pytest.raises(KeyboardInterrupt) as info:
        surco.hybrid(PROB, tuple(Y), MeanCostPrior(), steps=100_000, time_limit=600)
    part = info.value.partial
    assert len(part) == 2 and all(r.stopped == "interrupted" for r in part)
    for r, y in zip(part, Y):
        _is_best_so_far(r, y)
        # step 0 is the prior's cost: the best is never worse than the heuristic's x
        assert r.f <= r.history["f"][0] + 1e-9


# -- time limit and evaluation budget ---------------------------------------------------------
def test_time_limit_returns_the_best_so_far():
    surco.zero(PROB, Y[0], steps=1, key=0)  # first-call set-up outside the timed part
    t0 = time.perf_counter()
    r = surco.zero(PROB, Y[0], steps=100_000, time_limit=6.0, key=0)
    took = time.perf_counter() - t0
    assert r.stopped == "time_limit"
    # stops within a step of the limit (the longest step, whatever the machine's speed)
    step = float(np.max(np.diff(np.r_[0.0, r.history["seconds"]])))
    assert 6.0 <= took < 6.0 + 2 * step + 0.25, (took, step)
    assert 1 < len(r.history["f"]) < 100_000
    assert r.history["seconds"][-1] <= 6.0
    _is_best_so_far(r, Y[0])
    with pytest.raises(ValueError, match=r"zero: time_limit \(or None\) must be a finite number > 0, got 0"):
        surco.zero(PROB, Y[0], time_limit=0)


def test_a_step_is_stamped_when_its_work_ended(monkeypatch):
    """The time a step is recorded at is when its solves and evaluation ended, not when the
    driver got round to recording it: slow checks between the two (here 1 s each) neither
    push a step that ended before the deadline past it nor keep it from being recorded."""
    from surco.driver import loop
    check = loop.check_step

    def slow_check(*args, **kwargs):
        time.sleep(1.0)
        return check(*args, **kwargs)

    surco.zero(PROB, Y[0], steps=1, key=0)  # first-call set-up outside the timed part
    monkeypatch.setattr(loop, "check_step", slow_check)
    r = surco.zero(PROB, Y[0], steps=100, time_limit=2.5, key=0)
    assert r.stopped == "time_limit"
    s = np.asarray(r.history["seconds"])
    assert len(s) >= 2, s          # steps end about 1 s apart: at ~0, ~1 and ~2 s
    assert s[-1] <= 2.5, s         # recorded after its 1 s check, it would be at ~3 s
    assert np.all(np.diff(s) >= 1.0), s


def test_evaluation_budget_in_evaluate_stops_cleanly():
    meter = Budget(evaluations=4).start(lambda x: float(A.objective(jnp.asarray(x), Y[0])))
    prob = surco.Problem(PROB.name, PROB.space, PROB.objective, PROB.features,
                         evaluate=lambda x, y: meter(x))
    r = surco.zero(prob, Y[0], steps=200, select="evaluate", backend="highs", key=0)
    assert r.stopped == "budget" and meter.evaluations == 4
    # the best x is the meter's best: the lowest true cost among the 4 evaluated
    assert r.true_cost == pytest.approx(meter.best_value)
    np.testing.assert_array_equal(r.x, meter.best_x)


def test_budget_exhausted_inside_the_objective_stops_cleanly():
    """An objective that counts its evaluations through a host callback (as the harness's
    meters do) and raises BudgetExhausted: zero returns what it had."""
    calls = {"n": 0}

    def count(v):
        calls["n"] += 1
        if calls["n"] > 6:
            raise BudgetExhausted("evaluation budget of 6 spent")
        return v

    def f(x, y):
        v = A.objective(x, y)
        counted = jax.pure_callback(count, jax.ShapeDtypeStruct(v.shape, v.dtype),
                                    jax.lax.stop_gradient(v), vmap_method="sequential")
        return v + 0.0 * counted

    prob = surco.Problem("metered", PROB.space, f)
    r = surco.zero(prob, Y[0], steps=200, backend="highs", key=0)
    assert r.stopped == "budget" and 1 <= len(r.history["f"]) <= 6


def test_stop_reasons_of_normal_runs():
    assert surco.zero(PROB, Y[0], steps=3, backend="highs").stopped == "steps"
    assert surco.zero(PROB, Y[0], steps=500, patience=3, backend="highs").stopped == "patience"
    assert surco.zero(PROB, Y[0], steps=50, target=1e9, backend="highs").stopped == "target"


# -- solver failures mid-run ------------------------------------------------------------------
class FailingAt(Solver):
    """The assignment MILP, failing from its k-th solve on: a time limit without a point
    (``how="timeout"``) or an exception (``how="crash"``)."""

    def __init__(self, k: int, how: str):
        inner = make_solver(PROB.space, backend="highs")
        super().__init__(inner.shape, "flaky-assign")
        self.inner, self.k, self.how, self.count = inner, k, how, 0

    def factory(self):
        raise NotImplementedError

    @property
    def spec(self):
        return PROB.space

    def solve_flat(self, c):
        self.count += 1
        if self.count >= self.k:
            if self.how == "crash":
                raise RuntimeError("the solver process died")
            return None, float("nan"), Status.ERROR, {"timeout": True, "time_limit": 0.5}
        return self.inner.solve_flat(c)


@pytest.mark.parametrize("how,exc,match", [
    ("timeout", SolverTimeout, r"'flaky-assign': time limit of 0.5 s reached without a feasible "
                               r"point: Problem 'nonlinear-assignment-8x3', step \d+"),
    ("crash", RuntimeError, "the solver process died"),
])
def test_solver_failure_mid_run_raises_once_with_the_partial_result(how, exc, match, caplog):
    prob = surco.Problem(PROB.name, FailingAt(12, how), PROB.objective)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(exc, match=match) as info:
            surco.zero(prob, Y[0], steps=100, key=0)
    assert info.value.__context__ is None or how == "crash"   # no "During handling ..."
    assert not [r for r in caplog.records if "pure_callback" in r.getMessage()]
    r = info.value.partial
    assert r.stopped == "error" and len(r.history["f"]) >= 3
    _is_best_so_far(r, Y[0])


def test_infeasible_space_raises_its_typed_error_once(capfd):
    spec = LinearSpec(shape=(4, 2), A_ub=np.ones((1, 8)), b_ub=[-1.0], lb=0, ub=1, integer=True,
                      name="empty-4x2")
    prob = surco.Problem("no-room", spec, lambda x, y: jnp.sum(x * y))
    with pytest.raises(InfeasibleError) as info:
        surco.zero(prob, jnp.ones((4, 2)), steps=5, backend="highs")
    msg = str(info.value)
    assert msg == "'empty-4x2' is infeasible: Problem 'no-room', step 0"
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert info.value.partial is None           # nothing was found before the failure
    err = capfd.readouterr().err
    assert "NaN" not in err and "pure_callback" not in err and "Traceback" not in err


# -- errors that name their cause -------------------------------------------------------------
def test_infinite_gradient_of_f_is_named(capfd):
    y = A.generate(1, n=4, m=2)[0]
    prob = surco.Problem("sqrt-prob", A.space(4, 2), lambda x, y: jnp.sum(jnp.sqrt(x)))
    with pytest.raises(surco.ProblemError) as info:
        surco.zero(prob, y, steps=3, backend="highs")
    msg = str(info.value)
    assert msg.startswith("Problem 'sqrt-prob', step 0: the gradient of the objective with "
                          "respect to x is not finite (inf at flat index ")
    assert "jnp.sqrt(x + eps)" in msg and "stack" not in msg and "NaN or inf" not in msg
    err = capfd.readouterr().err
    assert "pure_callback" not in err and "Traceback" not in err


# -- arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,exc,match", [
    (dict(lr="fast"), ValueError, r"zero: lr must be a finite number > 0, got 'fast'"),
    (dict(lr=-0.1), ValueError, r"zero: lr must be a finite number > 0, got -0.1"),
    (dict(steps=2.5), ValueError, r"zero: steps must be an integer >= 0, got 2.5"),
    (dict(steps=True), ValueError, r"zero: steps must be an integer >= 0, got True"),
    (dict(patience=0), ValueError, r"zero: patience \(or None\) must be an integer >= 1, got 0"),
    (dict(init_scale=float("inf")), ValueError, r"zero: init_scale must be a finite number > 0"),
    (dict(no_progress_steps=0), ValueError, r"no_progress_steps \(or None\) must be an integer >= 1"),
    (dict(target="low"), ValueError, r"zero: target must be finite or None, got 'low'"),
    (dict(optimizer="adam"), TypeError, r"zero: optimizer must be an optax.GradientTransformation"),
    (dict(dtype=jnp.int32), ValueError, r"zero: dtype must be a floating dtype"),
    (dict(select="true"), ValueError, r"zero: select must be 'f' or 'evaluate', got 'true'"),
])
def test_bad_arguments_name_the_argument(kw, exc, match):
    with pytest.raises(exc, match=match):
        surco.zero(PROB, Y[0], **kw)


def test_instance_that_does_not_fit_the_space_is_named():
    y = A.generate(1, n=5, m=2)[0]                  # 5 x 2 arrays against Ω of 4 x 2
    prob = surco.Problem("small", A.space(4, 2), A.objective)
    with pytest.raises(surco.ProblemError,
                       match=r"zero: problem 'small': the objective cannot be evaluated on x of "
                             r"shape \(4, 2\) \(Ω's shape\) with the instance, whose arrays are "
                             r"shaped \.a: \(5, 2\), \.w: \(5, 2\), \.rho: \(\); do the "
                             r"instance's arrays match Ω\?"):
        surco.zero(prob, y, steps=2)


def test_tuple_of_instances_is_a_list():
    a = surco.zero(PROB, tuple(Y), steps=4, key=0, backend="highs")
    b = surco.zero(PROB, list(Y), steps=4, key=0, backend="highs")
    assert isinstance(a, list) and len(a) == 2
    for ra, rb in zip(a, b):
        assert ra.history["f"] == rb.history["f"]
    # a NamedTuple is one instance
    assert isinstance(surco.zero(PROB, Y[0], steps=1, backend="highs"), surco.ZeroResult)


# -- progress guard ---------------------------------------------------------------------------
def test_stuck_estimator_warns_once_with_advice():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = surco.zero(PROB, Y[0], estimator="neg_identity", optimizer=optax.adam(0.1),
                       steps=45, key=0, backend="highs")
    stuck = [w for w in caught if issubclass(w.category, NoProgressWarning)]
    assert len(stuck) == 1 and issubclass(NoProgressWarning, UserWarning)
    msg = str(stuck[0].message)
    assert ("x has not changed in the first 40 steps with estimator 'neg_identity'" in msg
            and "projection='norm' or 'standardize'" in msg and "optax.sgd(lr)" in msg)
    assert stuck[0].filename == __file__        # points at the caller
    assert r.best_step == 0 and len(set(r.history["f"])) == 1


def test_default_settings_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoProgressWarning)
        for est in ("blackbox", "neg_identity"):
            r = surco.zero(PROB, Y[0], estimator=est, steps=30, key=0, backend="highs")
            assert r.best_step > 0, est
