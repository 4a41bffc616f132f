"""`ZeroConfig` / `TrainConfig` (validated once, keyword form = configuration), the outcome
vocabulary (`StopReason` in results, `throw=False`). The docstring examples of
`surco.driver`, `surco.config` and `surco.prior.training` run in tests/test_doctests.py, with
those of every other module."""
import dataclasses
import math

import numpy as np
import optax
import pytest

import surco
from surco.config import ZeroConfig
from surco.outcome import StopReason
from surco.problems import assignment as A
from surco.results import TrainHistory, ZeroResult

N, M = 5, 3
PROBLEM = A.make_problem(N, M)
YS = A.generate(3, seed=4, n=N, m=M)


# -- the configuration is the object -------------------------------------------------------
@pytest.mark.parametrize("settings, field", [
    (dict(steps=-1), "steps"), (dict(steps=2.5), "steps"), (dict(lr=0), "lr"),
    (dict(patience=0), "patience"), (dict(time_limit=-1.0), "time_limit"),
    (dict(target=math.inf), "target"), (dict(select="best"), "select"),
    (dict(init="ones"), "init"), (dict(dtype=np.int32), "dtype"), (dict(chunk=0), "chunk"),
    (dict(progress=1), "progress"), (dict(throw="no"), "throw"),
    (dict(backend="jax", solver_options={"threads": 1}), "solver_options"),
    (dict(backend="highs", oracle=object()), "oracle"),
    (dict(no_progress_steps=0), "no_progress_steps"),
])
def test_a_bad_field_fails_at_construction_naming_it(settings, field):
    with pytest.raises(ValueError, match=field):
        ZeroConfig(**settings)


def test_wrong_types_and_estimator_options_are_named():
    with pytest.raises(TypeError, match="optimizer must be an optax"):
        ZeroConfig(optimizer="adam")
    with pytest.raises(TypeError, match="executor"):
        ZeroConfig(executor=4)
    with pytest.raises(TypeError, match=r"unknown keyword 'lamda' \(did you mean 'lam'\?\)"):
        ZeroConfig(estimator_options={"lamda": 1.0})
    with pytest.raises(ValueError, match="unknown estimator 'blackbx'"):
        ZeroConfig(estimator="blackbx")
    with pytest.raises(ValueError, match="lam"):                    # the estimator's own check
        ZeroConfig(estimator_options={"lam": -1.0})
    with pytest.raises(TypeError, match="config must be a ZeroConfig"):
        surco.zero(PROBLEM, YS[0], 5)


def test_keyword_form_round_trips_and_keeps_given_defaults():
    cfg = ZeroConfig.of(estimator="blackbox", lam=10.0, lr=0.1, steps=7, key=3)
    # lr and estimator equal the defaults but were given: the keyword form keeps them
    assert dict(cfg) == dict(estimator="blackbox", lam=10.0, lr=0.1, steps=7, key=3)
    assert ZeroConfig.of(**cfg) == cfg and cfg.estimator_options == {"lam": 10.0}
    assert cfg["init"] == "random" and "init" not in dict(cfg)      # defaults readable by name
    assert {**cfg, "steps": 2}["steps"] == 2
    other = cfg.replace(steps=9, lam=3.0)
    assert (other.steps, other.estimator_options, cfg.steps) == (9, {"lam": 3.0}, 7)
    with pytest.raises(ValueError, match="steps"):
        cfg.replace(steps=-2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3                                                # frozen


def test_config_form_and_keyword_form_give_the_same_run():
    kw = dict(estimator="perturbed", sigma=0.5, n=3, steps=12, key=2, optimizer=optax.adam(0.1))
    a = surco.zero(PROBLEM, YS, **kw)
    b = surco.zero(PROBLEM, YS, ZeroConfig.of(**kw))
    c = surco.zero(PROBLEM, YS, ZeroConfig.of(**{**kw, "steps": 3}), steps=12)  # keywords win
    for r, s, t in zip(a, b, c):
        np.testing.assert_array_equal(r.x, s.x)
        np.testing.assert_array_equal(r.x, t.x)
        assert r.history["f"] == s.history["f"] == t.history["f"] and r.f == s.f == t.f


def test_a_start_rule_is_called_per_instance():
    cfg = ZeroConfig.of(estimator="neg_identity", projection="standardize", steps=3, key=0,
                        init=A.mean_cost_heuristic)
    both = surco.zero(PROBLEM, YS[:2], cfg)
    given = surco.zero(PROBLEM, YS[:2], cfg.replace(
        init=np.stack([A.mean_cost_heuristic(y) for y in YS[:2]])))
    for r, s in zip(both, given):
        np.testing.assert_array_equal(r.x, s.x)
        assert r.history["f"] == s.history["f"]
    # the first x is the solver's answer at the rule's cost, instance by instance
    for r, y in zip(both, YS[:2]):
        first = surco.solvers.make_solver(PROBLEM.space).solve(A.mean_cost_heuristic(y)).x
        assert r.history["f"][0] == pytest.approx(float(A.objective(first, y)), abs=1e-5)


def test_families_ship_configurations():
    from surco.problems import routing
    for fam in (A.FAMILY, routing.FAMILY):
        cfg = fam.zero_settings
        assert isinstance(cfg, ZeroConfig)
        train = cfg.train_config(epochs=1)
        assert train.estimator == cfg.estimator and train.estimator_options == cfg.estimator_options
        assert train.epochs == 1 and train.backend == cfg.backend


def test_train_config_validates_once():
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        surco.TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="hidden must be a tuple"):
        surco.TrainConfig(hidden=(8, 0))
    with pytest.raises(TypeError, match="model must be a flax.linen.Module"):
        surco.TrainConfig(model="mlp")
    with pytest.raises(TypeError, match=r"surco.prior.train: unknown keyword 'epoch' "
                                        r"\(did you mean 'epochs'\?\)"):
        surco.prior.train(PROBLEM, list(YS), epoch=1)
    assert surco.TrainConfig(hidden=[4, 4]).hidden == (4, 4)


# -- one outcome vocabulary ----------------------------------------------------------------
def test_stopped_is_a_stop_reason_and_old_files_load(tmp_path):
    import json
    r = surco.zero(PROBLEM, YS[0], steps=40, patience=2, key=0)
    assert r.stopped is StopReason.PATIENCE and r.stopped == "patience"
    assert surco.zero(PROBLEM, YS[0], steps=2, key=0).stopped is StopReason.STEPS
    path = r.save(tmp_path / "r")
    assert ZeroResult.load(path).stopped is StopReason.PATIENCE
    with np.load(path) as z:
        meta, arrays = json.loads(bytes(z["__meta__"]).decode()), {k: z[k] for k in ("x", "c", "theta")}
    assert meta["stopped"] == "patience"                 # written as a plain string

    def rewrite(**changes):
        m = {k: v for k, v in {**meta, **changes}.items() if v is not None}
        np.savez(tmp_path / "old.npz", __meta__=np.frombuffer(json.dumps(m).encode(), np.uint8),
                 **arrays)
        return ZeroResult.load(tmp_path / "old.npz")

    assert rewrite(stopped="budget").stopped is StopReason.BUDGET
    assert rewrite(stopped="timeout").stopped is StopReason.TIME_LIMIT   # an older alias
    assert rewrite(stopped=None).stopped is StopReason.STEPS             # before the field
    with pytest.raises(ValueError, match="unknown stop reason 'steps taken'"):
        dataclasses.replace(r, stopped="steps taken")


def test_run_status_keeps_ok_and_failed_and_reads_stop_reasons():
    from surco.runs import Run
    run = Run("m", 0, None, math.nan, 0.0, 0, "budget", None, [], surco.Budget(evaluations=1))
    assert run.status is StopReason.BUDGET and run.ok
    assert Run("m", 0, None, 1.0, 0.0, 0, "ok", None, [], surco.Budget()).status == "ok"
    assert not Run("m", 0, None, 1.0, 0.0, 0, "failed", "x", [], surco.Budget()).ok
    with pytest.raises(ValueError, match="unknown stop reason"):
        Run("m", 0, None, 1.0, 0.0, 0, "fine", None, [], surco.Budget())


def test_throw_false_returns_a_failed_result_instead_of_raising():
    import jax.numpy as jnp
    bad = surco.Problem("nan-late", PROBLEM.space,
                        lambda x, y: jnp.sum(x * y.w) / (jnp.sum(y.w) - jnp.sum(y.w)))
    with pytest.raises(surco.ProblemError, match="non-finite"):
        surco.zero(bad, YS[0], steps=3, key=0)
    out = surco.zero(bad, YS[0], steps=3, key=0, throw=False)
    assert out.stopped is StopReason.ERROR and out.failed and out.x is None
    assert isinstance(out.error, surco.ProblemError) and math.isnan(out.f)
    many = surco.zero(bad, list(YS[:2]), steps=3, key=0, throw=False)
    assert [r.stopped for r in many] == [StopReason.ERROR] * 2
    # a failure after some steps returns the partial result: the best x so far
    from surco.solvers import SolverError
    p = surco.Problem("late-fail", PROBLEM.space, PROBLEM.objective,
                      evaluate=_fail_on(2))
    part = surco.zero(p, YS[0], steps=10, key=0, select="evaluate", throw=False)
    assert part.stopped is StopReason.ERROR and isinstance(part.error, SolverError)
    assert part.x is not None and PROBLEM.space.contains(part.x)
    assert len(part.history["f"]) >= 1


def _fail_on(n: int):
    from surco.solvers import SolverError
    seen = []

    def evaluate(x, y):
        seen.append(1)
        if len(seen) >= n:
            raise SolverError("the simulator crashed")
        return float(A.objective(x, y))
    return evaluate


def test_prior_train_throw_false_returns_the_best_model_so_far(monkeypatch, tmp_path):
    from surco.prior import training
    calls = {"n": 0}
    real = training.TrainingCheckpoint

    class Crashing:
        """A checkpoint that fails on the second save: one epoch completes."""
        def __init__(self, *a, **k):
            self.inner = real(*a, **k)

        def exists(self):
            return False

        def save(self, state):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full")
            self.inner.save(state)

    monkeypatch.setattr(training, "TrainingCheckpoint", Crashing)
    kw = dict(epochs=3, batch_size=3, hidden=(4,), key=0, checkpoint_dir=tmp_path / "ck",
              lam=10.0)
    with pytest.raises(OSError, match="disk full"):
        surco.prior.train(PROBLEM, list(YS), **kw)
    calls["n"] = 0
    prior = surco.prior.train(PROBLEM, list(YS), **kw, throw=False)
    # the second epoch was recorded before its checkpoint failed; its best model is kept
    assert len(prior.history.train_f) == 2 and isinstance(prior.history.error, OSError)
    assert TrainHistory.load(prior.history.save(tmp_path / "h")).error == "OSError: disk full"
