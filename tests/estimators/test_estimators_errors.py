"""Bad input gets a clear error; solver failures surface as errors or status values."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.estimators import ESTIMATORS, get_estimator, raise_for_status
from surco.solvers import AssignmentOracle, InfeasibleError, LinearSpec, Status, make_solver

ORACLE = AssignmentOracle(2, 3)
KEY = jax.random.key(0)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_wrong_shape_nan_and_int_cost(name):
    est = get_estimator(name)
    with pytest.raises(ValueError, match=r"shape \(3, 2\).*expected \(2, 3\)"):
        est(ORACLE, jnp.ones((3, 2)), KEY)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        est(ORACLE, jnp.ones(6), KEY)
    with pytest.raises(ValueError, match="NaN or inf.*flat index 4"):
        est(ORACLE, jnp.ones((2, 3)).at[1, 1].set(jnp.nan), KEY)
    with pytest.raises(ValueError, match="floating-point"):
        est(ORACLE, jnp.ones((2, 3), jnp.int32), KEY)
    with pytest.raises(TypeError, match="surco.solvers.Solver"):
        est(ORACLE.spec, jnp.ones((2, 3)), KEY)


def test_nan_cost_inside_jit_is_an_error_naming_nan():
    est = get_estimator("blackbox")
    with pytest.raises(Exception, match="NaN or inf"):
        jax.jit(lambda c: est(ORACLE, c))(jnp.ones((2, 3)).at[0, 0].set(jnp.nan)).block_until_ready()


@pytest.mark.parametrize("name,kw,match", [
    ("blackbox", dict(lam=0.0), r"lam \(λ\) must be a finite number > 0, got 0.0"),
    ("blackbox", dict(lam=-1.0), "lam"),
    ("blackbox", dict(lam=float("nan")), "lam"),
    ("blackbox", dict(projection="l2"), "projection must be one of"),
    ("perturbed", dict(sigma=0.0), r"sigma \(σ\) must be a finite number > 0"),
    ("perturbed", dict(sigma=-2.0), "sigma"),
    ("perturbed", dict(n=0), r"n \(number of samples\) must be an integer >= 1, got 0"),
    ("perturbed", dict(n=2.5), "n "),
    ("perturbed", dict(noise="cauchy"), "noise must be one of"),
    ("identity", dict(projection="l1"), "projection must be one of"),
    ("neg_identity", dict(projection="unit"), "projection must be one of"),
])
def test_bad_hyperparameters(name, kw, match):
    with pytest.raises(ValueError, match=match):
        get_estimator(name, **kw)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown estimator 'bbox'.*blackbox"):
        get_estimator("bbox")
    with pytest.raises(ValueError, match=r"no hyperparameter\(s\) \['sigma'\].*valid: \['lam', 'projection'\]"):
        get_estimator("blackbox", sigma=1.0)
    with pytest.raises(TypeError):
        get_estimator(3)


def test_random_estimator_needs_a_key():
    with pytest.raises(ValueError, match="pass key="):
        get_estimator("perturbed")(ORACLE, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="PRNG key"):
        get_estimator("perturbed")(ORACLE, jnp.ones((2, 3)), jnp.ones(3))


def _infeasible_solver():
    spec = LinearSpec(shape=(2,), A_ub=[[1.0, 1.0]], b_ub=[-1.0], lb=0, ub=1, integer=True,
                      name="empty")
    return make_solver(spec, backend="highs")


def test_failure_raises_outside_jit_and_is_a_status_inside():
    solver, est = _infeasible_solver(), get_estimator("blackbox")
    c = jnp.array([1.0, 2.0])
    with pytest.raises(InfeasibleError, match="'empty' is infeasible"):
        est(solver, c)
    x, status = jax.jit(lambda c: est(solver, c, return_status=True))(c)
    assert int(status) == Status.INFEASIBLE and np.all(np.isnan(np.asarray(x)))
    with pytest.raises(InfeasibleError):
        raise_for_status(status, solver)
    # batched: the status is per entry
    xs, st = jax.jit(jax.vmap(lambda c: est(solver, c, return_status=True)))(jnp.ones((3, 2)))
    assert st.shape == (3,) and np.all(np.asarray(st) == Status.INFEASIBLE)
    with pytest.raises(TypeError, match="traced"):
        jax.jit(lambda c: raise_for_status(est(solver, c, return_status=True)[1]))(c)


def test_ok_status_value():
    x, status = get_estimator("blackbox")(ORACLE, jnp.ones((2, 3)), return_status=True)
    assert int(status) == Status.OPTIMAL
    raise_for_status(status, ORACLE)  # no error

def test_estimator_missing_a_hook_cannot_be_built():
    """An estimator subclass that lacks `backward` fails at construction, naming it."""
    import dataclasses

    from surco.estimators import Estimator

    @dataclasses.dataclass(frozen=True)
    class ForwardOnly(Estimator):
        def forward(self, solver, executor, c, key):
            return c, None, None

    with pytest.raises(TypeError, match="backward"):
        ForwardOnly()
