"""`surco.prior.train` stopped mid-run — Ctrl-C, a solver crash, a solver time limit —
raises to the user, keeps the checkpoint of the last completed epoch, carries the best
model so far, and resumes to the result of an uninterrupted run (issue 15)."""
import functools
import math
import os
import signal

import numpy as np
import pytest

import surco
from surco.problems import assignment as A
from surco.solvers import Solver, SolverTimeout, Status, make_solver

N, M = 4, 2
EPOCHS = 4
KW = dict(estimator="blackbox", lam=10.0, batch_size=4, lr=1e-2, hidden=(8,), patience=None,
          key=1)
#: what the next training's solver does at its call number ``at`` ("crash", "sigint",
#: "timeout"); ``calls`` counts the calls of every member solver
PLAN = {"calls": 0, "at": None, "how": None}


class FlakyAssignment(Solver):
    """CP-SAT on the n x m assignment set, misbehaving once as `PLAN` says."""

    def __init__(self, n: int, m: int):
        super().__init__((n, m), "flaky-assignment")
        self.inner = make_solver(A.space(n, m), backend="cpsat")

    def factory(self):
        return functools.partial(FlakyAssignment, *self.shape)

    def solve_flat(self, c):
        PLAN["calls"] += 1
        if PLAN["calls"] == PLAN["at"]:
            if PLAN["how"] == "crash":
                raise RuntimeError("the solver crashed (test)")
            if PLAN["how"] == "sigint":  # a user's Ctrl-C, while a solve runs
                os.kill(os.getpid(), signal.SIGINT)
            if PLAN["how"] == "timeout":
                return None, math.nan, Status.ERROR, {"timeout": True, "time_limit": 0.5}
        return self.inner.solve_flat(c)


SOLVERS = [FlakyAssignment(N, M)]
PROB = surco.Problem("flaky-assignment", space=lambda y: SOLVERS[0], objective=A.objective,
                     features=A.features)
TRAIN = A.generate(12, seed=8, n=N, m=M)


@pytest.fixture(scope="module")
def straight():
    """The uninterrupted training, and the solver calls it makes per epoch."""
    PLAN.update(calls=0, at=None)
    pm = surco.prior.train(PROB, TRAIN, epochs=EPOCHS, **KW)
    assert PLAN["calls"] % EPOCHS == 0
    return pm, PLAN["calls"] // EPOCHS


def _stop_then_resume(straight, how, expected, tmp_path):
    pm, per_epoch = straight
    PLAN.update(calls=0, at=2 * per_epoch + per_epoch // 2, how=how)  # mid-epoch 2 (0-based)
    with pytest.raises(expected) as info:
        surco.prior.train(PROB, TRAIN, epochs=EPOCHS, checkpoint_dir=tmp_path / "ck", **KW)
    partial = info.value.partial  # the best model of the two completed epochs
    assert partial.history.train_f == pytest.approx(pm.history.train_f[:2], rel=1e-6)
    PLAN.update(calls=0, at=None)
    resumed = surco.prior.train(PROB, TRAIN, epochs=EPOCHS, checkpoint_dir=tmp_path / "ck", **KW)
    assert PLAN["calls"] == 2 * per_epoch  # the checkpoint held epochs 0 and 1: 2 more to go
    assert resumed.history.train_f == pytest.approx(pm.history.train_f, rel=1e-6)
    y = TRAIN[0]
    np.testing.assert_allclose(np.asarray(resumed.theta(y)), np.asarray(pm.theta(y)), rtol=1e-5)
    return info.value


def test_ctrl_c_keeps_the_last_checkpoint_and_resumes(straight, tmp_path):
    handler = signal.getsignal(signal.SIGINT)
    exc = _stop_then_resume(straight, "sigint", KeyboardInterrupt, tmp_path)
    assert "interrupted in epoch 2 after 2 completed epoch(s); the checkpoint in" in str(exc)
    assert "holds 2 completed epoch(s)" in str(exc)
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C handling is restored


def test_solver_crash_keeps_the_last_checkpoint_and_resumes(straight, tmp_path):
    exc = _stop_then_resume(straight, "crash", RuntimeError, tmp_path)
    assert str(exc) == "the solver crashed (test)"  # the solver's own exception, as it is


def test_solver_timeout_keeps_the_last_checkpoint_and_resumes(straight, tmp_path):
    exc = _stop_then_resume(straight, "timeout", SolverTimeout, tmp_path)
    assert "time limit of 0.5 s reached" in str(exc) and "training, epoch 2" in str(exc)


def test_failure_before_the_first_epoch_has_no_partial(straight, tmp_path):
    PLAN.update(calls=0, at=3, how="crash")
    with pytest.raises(RuntimeError, match="crashed") as info:
        surco.prior.train(PROB, TRAIN, epochs=EPOCHS, checkpoint_dir=tmp_path / "ck", **KW)
    assert info.value.partial is None and not (tmp_path / "ck" / "checkpoint.json").exists()
    PLAN.update(at=None)
