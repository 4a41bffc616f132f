"""LANCER (surco.lancer) looks at the problem's objective f only where it is allowed to:
with ``free_f=False`` (the default: f is, or ranks like, the metered true cost) never in
LANCER-zero (not even on the answer: an expensive f, a simulation, would be an evaluation
the meter does not count) and only on solutions the meter has evaluated in LANCER-prior's
training; with ``free_f=True`` (f a free proxy of the metered cost) on every solution it
proposes.

f is wrapped in a `jax.debug.callback` that records each x it is computed on (called once
per element under vmap, and inside the jitted descent), on the enumerable nonlinear
assignment problem; its true cost (the meter's) is the family's float64 ``evaluate``."""
import dataclasses

import jax
import numpy as np
import pytest

import surco
from surco._engine import build_solver
from surco.budget import Budget
from surco.lancer import lancer_zero
from surco.problems import assignment as A

N, M = 6, 3
KW = dict(estimator="neg_identity", projection="standardize", lr=0.1, backend="highs", key=0,
          descent=4, candidates=4, per_round=2, fit_steps=20)


def _key(x) -> bytes:
    return np.asarray(x, np.float64).round(6).tobytes()


def _watched(prob):
    """``(problem, seen)``: ``prob`` whose f records (into ``seen``, as bytes) each x it is
    computed on, and which is otherwise the same."""
    seen: list[bytes] = []
    f = prob.objective

    def watched(x, y):
        jax.debug.callback(lambda v: seen.append(_key(v)), x)
        return f(x, y)
    return dataclasses.replace(prob, objective=watched), seen


def _metered(prob, y, evaluations):
    paid: list[bytes] = []

    def evaluate(x):
        paid.append(_key(x))
        return float(prob.evaluate(x, y))
    return Budget(evaluations=evaluations).start(evaluate), paid


def _instance():
    return A.generate(1, seed=5, n=N, m=M)[0]


@pytest.mark.parametrize("evaluations", [3, 25])
def test_f_is_never_computed_without_a_free_f(evaluations):
    """The default (f is the cost): LANCER-zero computes f on no solution, the answer
    included (its value is the meter's record, as the meter evaluated it once); yet the run
    still improves on its start (the learned M ranks the perturbations)."""
    prob, seen = _watched(A.make_problem(N, M))
    y = _instance()
    meter, paid = _metered(prob, y, evaluations)
    res = lancer_zero(prob, y, meter, init=A.mean_cost_heuristic(y), **KW)
    assert meter.evaluations == evaluations == len(set(paid)) == len(paid)
    assert seen == []
    assert res.f == res.value == meter.cached(res.x) == meter.best_value
    assert paid.count(_key(res.x)) == 1   # evaluated once, by the meter
    assert res.value == pytest.approx(A.evaluate(res.x, y), rel=1e-12)
    x0 = build_solver(prob, y, "highs", None).solve(A.mean_cost_heuristic(y)).x
    assert res.value <= A.evaluate(x0, y) + 1e-9
    if evaluations == 25:   # 3.9066 at the start, 3.3573 at the brute-force optimum
        assert A.brute_force(y)[1] - 1e-9 <= res.value < A.evaluate(x0, y) - 1e-6


def test_free_proxy_keeps_f_on_every_proposal():
    """``free_f=True``: f is computed on every solution proposed (descent steps and
    perturbations), most of them never evaluated: the behaviour for a free proxy."""
    prob, seen = _watched(A.make_problem(N, M))
    y = _instance()
    meter, paid = _metered(prob, y, 25)
    lancer_zero(prob, y, meter, init=A.mean_cost_heuristic(y), free_f=True, **KW)
    assert meter.evaluations == 25
    assert len(set(seen) - set(paid)) > 0
    assert len(set(seen)) > meter.evaluations


def test_prior_training_looks_at_f_only_on_evaluated_solutions():
    """LANCER-prior's training with the default: f is never computed on a descent step's
    solution (which the training does not evaluate), only M's learned network is descended;
    with ``free_f=True`` f is computed at each descent step's solution as well."""
    base = A.make_problem(N, M)
    train = A.generate(3, seed=11, n=N, m=M)
    kw = dict(epochs=2, descent=2, candidates=1, hidden=(8,), fit_steps=20, backend="highs",
              estimator="neg_identity", projection="standardize")
    for free in (False, True):
        prob, seen = _watched(base)
        paid: list[bytes] = []

        def truth(x, y):
            paid.append(_key(x))
            return float(A.evaluate(x, y))
        fam = dataclasses.replace(A.FAMILY, problem=lambda y, p=prob: p, evaluate=truth)
        model = surco.lancer.train(fam, train, free_f=free, **kw)
        assert model.train_evaluations == len(paid) == 3 * 3 * 2
        if free:   # f on each collected solution, and on each descent step's
            assert len(seen) >= len(paid) + kw["epochs"] * kw["descent"] * len(train)
        else:   # f only on evaluated solutions, and no more often than they were evaluated
            assert set(seen) <= set(paid) and len(seen) <= len(paid)


def test_family_settings_propose_solutions_without_a_free_f():
    """Every family's LANCER settings are valid with f not free (the default): they
    explore with perturbations, since the untrained landscape network is flat."""
    from surco.lancer.config import LANCER_FIELDS, LancerConfig, check_moves
    from surco.lancer.zero import SETTINGS
    for name, kw in SETTINGS.items():
        cfg = LancerConfig(**{k: v for k, v in kw.items() if k in LANCER_FIELDS})
        assert not cfg.free_f and cfg.candidates >= 1, name
        check_moves(cfg, name)
