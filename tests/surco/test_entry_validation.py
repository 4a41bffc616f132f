"""What the public entry points say about bad input, before any work is done (issue 23).

* NaN / inf in instance data: every entry point (`surco.zero` (both backends),
  `surco.prior.train`, `PriorModel.predict`, `surco.compare`) names the instance, the leaf's
  path, the first bad index and its value.
* A misspelt keyword is the caller's: "unknown keyword 'stpes' (did you mean 'steps'?)",
  never "the estimator has no hyperparameter".
* An Ω without integer variables warns (`surco.RelaxedOmegaWarning`) unless the problem
  says the LP is intended (``relax=True``).
* An objective written with NumPy: "f must use jax.numpy", at the file and line in f.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import surco
from surco.lns import lns, lns_method, multichain_method, polish_method
from surco.problems import assignment as A
from surco.problems import routing as R
from surco.solvers import LinearSpec

N, M = 6, 3


def _omega(integer=True) -> LinearSpec:
    """The README's load-balance Ω: each of N tasks on exactly one of M machines."""
    return LinearSpec(shape=(N, M), A_eq=sp.kron(sp.eye(N), np.ones((1, M))), b_eq=np.ones(N),
                      lb=0, ub=1, integer=integer)


def _f(x, y):
    return jnp.sum(x * y["a"]) + jnp.sum((x * y["w"]).sum(0) ** 2)


PROBLEM = surco.Problem("load-balance", _omega(), _f, features=lambda y: y["w"].reshape(-1))


def _y(scale: float = 0.1) -> dict:
    return {"a": jnp.ones((N, M)), "w": jnp.arange(N * M, dtype=jnp.float32).reshape(N, M) * scale}


def _bad(value=np.nan, at=(2, 1), leaf="w") -> dict:
    y = {k: np.array(v) for k, v in _y().items()}
    y[leaf][at] = value
    return y


def _family(problem=PROBLEM) -> surco.Family:
    return surco.Family(name="load-balance", problem=lambda y: problem,
                        evaluate=lambda x, y: float(_f(jnp.asarray(x, jnp.float32), y)),
                        baselines={"first": lambda y, meter: np.eye(M)[np.zeros(N, int)]},
                        zero_settings=dict(estimator="blackbox", steps=2, key=0))


# -- 1. NaN / inf in instance data, named --------------------------------------------------
def test_zero_names_the_leaf_index_and_value_of_a_nan():
    with pytest.raises(ValueError, match=re.escape(
            "surco.zero: y['w'][2, 1] is nan (1 non-finite of 18 entries in y['w'])")):
        surco.zero(PROBLEM, _bad(), steps=1)


def test_zero_names_the_instance_of_a_list_and_the_first_bad_index():
    y = _bad(np.inf, (4, 0))
    y["w"][1, 2] = -np.inf   # earlier in C order: this one is named
    with pytest.raises(ValueError, match=re.escape(
            "surco.zero: instance 1: y['w'][1, 2] is -inf (2 non-finite of 18 entries")):
        surco.zero(PROBLEM, [_y(), y], steps=1)


def test_zero_names_a_scalar_field_of_a_namedtuple():
    y = A.generate(1, seed=0, n=N, m=M)[0]._replace(rho=float("nan"))
    with pytest.raises(ValueError, match=re.escape(
            "surco.zero: y.rho is nan (1 non-finite of 1 entries in y.rho)")):
        surco.zero(A.make_problem(N, M), y, steps=1)


def test_compiled_zero_names_the_leaf():
    y = {k: np.array(v) for k, v in R.make_instance(0, n=4, regime="risk", q=2.0).items()}
    y["mu"][3] = np.nan
    with pytest.raises(ValueError, match=re.escape("surco.zero: y['mu'][3] is nan")):
        surco.zero(R.make_problem(4), y, steps=1, backend="jax")


def test_prior_train_names_train_and_val_instances():
    with pytest.raises(ValueError, match=re.escape(
            "surco.prior.train: train_instances[1]: y['w'][2, 1] is inf")):
        surco.prior.train(PROBLEM, [_y(), _bad(np.inf)], epochs=1)
    with pytest.raises(ValueError, match=re.escape(
            "surco.prior.train: val_instances[0]: y['a'][0, 0] is nan")):
        surco.prior.train(PROBLEM, [_y(), _y(0.2)], val_instances=[_bad(leaf="a", at=(0, 0))],
                          epochs=1)


def test_predict_and_compare_name_the_instance():
    prior = surco.prior.init(PROBLEM, [_y(), _y(0.2)], key=0)
    with pytest.raises(ValueError, match=re.escape("PriorModel.predict: y['w'][2, 1] is nan")):
        prior.predict(_bad())
    with pytest.raises(ValueError, match=re.escape(
            "PriorModel.predict: instance 1: y['w'][2, 1] is nan")):
        prior.predict([_y(), _bad()])
    with pytest.raises(ValueError, match=re.escape(
            "surco.compare: instances[1]: y['w'][2, 1] is nan")):
        surco.compare(_family(), [_y(), _bad()], ["first"], progress=False)


# -- 2. misspelt keywords are the caller's --------------------------------------------------
@pytest.mark.parametrize("call, who, typo, meant", [
    (lambda: surco.zero(PROBLEM, _y(), stpes=3), "surco.zero", "stpes", "steps"),
    (lambda: surco.zero(PROBLEM, _y(), lamda=3.0), "surco.zero", "lamda", "lam"),
    (lambda: surco.zero(PROBLEM, _y(), estimator="perturbed", sigmma=1.0), "surco.zero",
     "sigmma", "sigma"),
    (lambda: surco.prior.train(PROBLEM, [_y()], epoch=1), "surco.prior.train", "epoch",
     "epochs"),
    (lambda: surco.zero(R.make_problem(4), R.make_instance(0, n=4, regime="standard"), backend="jax", chunck=8),
     "surco.zero", "chunck", "chunk"),
    (lambda: surco.hybrid(PROBLEM, _y(), None, stpes=3), "surco.hybrid", "stpes", "steps"),
    (lambda: surco.surco_methods(_family(), patiense=3), "surco_methods", "patiense",
     "patience"),
    (lambda: surco.prior.zero_targets(PROBLEM, [_y()], stpes=3), "surco.prior.zero_targets",
     "stpes", "steps"),
    (lambda: lns(A.make_problem(N, M), A.generate(1, n=N, m=M)[0],
                 surco.Budget(evaluations=3).start(lambda x: 0.0), itertions=3),
     "surco.lns.lns", "itertions", "iterations"),
    (lambda: lns_method(A.FAMILY, itertions=3), "surco.lns.lns_method", "itertions",
     "iterations"),
    (lambda: polish_method(A.FAMILY, stpes=3), "surco.lns.polish_method", "stpes", "steps"),
    (lambda: multichain_method(A.FAMILY, stpes=3), "surco.lns.multichain_method", "stpes",
     "steps"),
])
def test_a_misspelt_keyword_is_named_with_a_suggestion(call, who, typo, meant):
    with pytest.raises(TypeError) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"{who}: unknown keyword {typo!r} (did you mean {meant!r}?); valid: ")
    assert "hyperparameter" not in msg
    assert meant in msg.split("valid: ")[1].split(", ")


def test_valid_names_list_the_function_and_the_estimator():
    with pytest.raises(TypeError) as info:
        surco.zero(PROBLEM, _y(), zzzz=1)
    msg = str(info.value)
    assert "did you mean" not in msg                   # nothing close to suggest
    valid = msg.split("valid: ")[1].split(", ")
    own = {f.name for f in dataclasses.fields(surco.ZeroConfig) if f.init}
    assert own | {"lam", "projection"} == set(valid)   # ZeroConfig's fields and blackbox's
    # an estimator's real hyperparameter still goes through
    assert surco.zero(PROBLEM, _y(), lam=5.0, steps=1, key=0).x.shape == (N, M)


def test_compare_has_no_kwargs_and_python_names_the_keyword():
    with pytest.raises(TypeError, match="budgt"):
        surco.compare(_family(), [_y()], ["first"], budgt=surco.Budget(evaluations=1))


# -- 3. a forgotten integer=True -------------------------------------------------------------
def test_an_lp_omega_warns_and_integer_or_relax_does_not():
    with pytest.warns(surco.RelaxedOmegaWarning, match="without integer variables.*"
                                                     "integer=True.*relax=True"):
        surco.Problem("load-balance", _omega(integer=False), _f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", surco.RelaxedOmegaWarning)
        surco.Problem("load-balance", _omega(integer=True), _f)
        p = surco.Problem("load-balance-lp", _omega(integer=False), _f, relax=True)
        assert p.relax
        r = surco.zero(p, _y(), steps=1, key=0)
    assert np.all((r.x == 0) | (r.x == 1))   # this Ω's LP vertices are integral


def test_an_lp_omega_from_a_function_warns_once_at_first_use():
    prob = surco.Problem("load-balance", lambda y: _omega(integer=False), _f)
    with pytest.warns(surco.RelaxedOmegaWarning) as rec:
        prob.space_for(_y())
        prob.space_for(_y())
    assert len([w for w in rec if issubclass(w.category, surco.RelaxedOmegaWarning)]) == 1


def test_relax_with_integer_variables_is_a_contradiction():
    with pytest.raises(ValueError, match="relax=True declares Ω an LP, but its LinearSpec .* "
                                         "has 18 integer variables"):
        surco.Problem("load-balance", _omega(integer=True), _f, relax=True)
    with pytest.raises(TypeError, match="relax must be True or False"):
        surco.Problem("load-balance", _omega(integer=False), _f, relax="yes")


@pytest.mark.parametrize("family", ["assignment", "routing", "portfolio"])
def test_the_families_do_not_warn(family):
    F = importlib.import_module(f"surco.problems.{family}").FAMILY
    with warnings.catch_warnings():
        warnings.simplefilter("error", surco.RelaxedOmegaWarning)
        y = F.generate(1)[0]
        F.problem(y).space_for(y)
        if family == "routing":   # the flow polytope as a LinearSpec: an intended LP
            assert R.make_problem(4, omega="spec").relax


# -- 4. an objective written with NumPy ------------------------------------------------------
def _numpy_f(x, y):
    return jnp.sum(np.exp(x) * y["a"])          # NumPy on the traced x


def _helper(x):
    return np.asarray(x).sum()


def _calls_helper(x, y):
    return _helper(x) + jnp.sum(y["a"])


def _branchy_f(x, y):
    if jnp.sum(x * y["a"]) > 3:                 # Python control flow on the traced x
        return jnp.sum(x)
    return jnp.sum(x * y["w"])


def _line(fn, text: str) -> str:
    """``file:line`` of the line of ``fn`` (or its module) holding ``text``."""
    lines, start = inspect.getsourcelines(fn)
    i = next(k for k, s in enumerate(lines) if text in s)
    return f"{inspect.getsourcefile(fn)}:{start + i}"


@pytest.mark.parametrize("fn, helper, text", [(_numpy_f, _numpy_f, "np.exp"),
                                              (_calls_helper, _helper, "np.asarray")])
def test_numpy_in_f_says_use_jax_numpy_at_the_line(fn, helper, text):
    prob = surco.Problem("numpy-f", _omega(), fn, features=lambda y: y["w"].reshape(-1))
    want = re.escape(f"f must use jax.numpy (got a NumPy conversion at {_line(helper, text)}")
    with pytest.raises(surco.ProblemError, match=want) as info:
        surco.zero(prob, _y(), steps=1)
    assert "match Ω" not in str(info.value)   # not blamed on the instance's shapes
    with pytest.raises(surco.ProblemError, match=want):
        surco.prior.train(prob, [_y(), _y(0.2)], epochs=1)


def test_python_control_flow_on_x_is_named_as_such():
    prob = surco.Problem("branchy", _omega(), _branchy_f)
    with pytest.raises(surco.ProblemError, match=re.escape(
            f"f must be traceable by JAX: it turns a traced value into a concrete Python "
            f"value at {_line(_branchy_f, 'if jnp.sum')}")):
        surco.zero(prob, _y(), steps=1)


def test_a_shape_mismatch_is_still_blamed_on_the_shapes():
    prob = surco.Problem("shapes", _omega(), _f)
    with pytest.raises(surco.ProblemError, match="do the instance's arrays match Ω"):
        surco.zero(prob, {"a": jnp.ones((N + 1, M)), "w": jnp.ones((N + 1, M))}, steps=1)
