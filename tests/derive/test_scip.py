"""SCIP on the true objective, written from the jaxpr (`surco.derive.scip_minimize`): its
optimum equals the enumerated optimum on small random problems of several shapes
(assignment, cardinality, knapsack rows, integer boxes) with objectives using max / min of
both signs, products, exp, log, sqrt, abs, division, logistic; unsupported operations fail
naming the primitive and the line."""
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.derive import UnsupportedError, scip_method, scip_minimize
from surco.methods import solver_time_limit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cases import CASES, cardinality_spec, enumerate_spec, knapsack_spec, make_case  # noqa: E402

_BATCH: dict = {}


def brute(problem, y) -> float:
    """min f over the enumerated Ω (f in JAX, float32, like the model's f(x))."""
    fn = _BATCH.setdefault(problem.objective,
                           jax.jit(jax.vmap(problem.objective, in_axes=(0, None))))
    P = enumerate_spec(problem.space)
    return float(np.min(np.asarray(fn(jnp.asarray(P, jnp.float32), y), np.float64)))


def check_against_brute_force(seeds) -> int:
    n = 0
    for seed in seeds:
        for shape, obj in CASES:
            problem, y = make_case(shape, obj, seed)
            opt = brute(problem, y)
            res = scip_minimize(problem, y)
            tol = 1e-4 * max(1.0, abs(opt))
            where = f"{problem.name} seed {seed}"
            assert res.optimal, (where, res.status)
            assert problem.space.contains(res.x), where
            assert abs(res.f - opt) <= tol, (where, res.f, opt)
            assert abs(res.objective - opt) <= tol, (where, res.objective, opt)
            assert res.bound <= opt + tol, (where, res.bound, opt)
            n += 1
    return n


def test_matches_brute_force_fast():
    assert check_against_brute_force(range(1)) == len(CASES)


@pytest.mark.slow
def test_matches_brute_force_208_instances():
    assert check_against_brute_force(range(1, 17)) >= 200


def f_moves(z, y):
    """Entries moved around: reshape, transpose, slices, gathers with constant indices,
    concatenation, padding, a dynamic slice, a batched matrix product, relu (custom_jvp +
    jit) and a norm (jit), a stop_gradient and a constant-predicate select."""
    Z = z.reshape(2, 3)
    T = jnp.concatenate([Z.T, Z[:, ::-1].T], axis=1)           # (3, 4)
    g = z[jnp.array([5, 0, 2])] * y["v"][:3]
    p = jnp.pad(g, (1, 2)) @ y["u"][:6]
    d = jax.lax.dynamic_slice(z, (1,), (3,))
    b = jnp.einsum("bij,bj->bi", jnp.stack([T[:2], T[1:]]), y["W"])
    sel = jax.lax.select(y["mask"], z, jax.lax.stop_gradient(1.0 - z))
    return (jnp.sum(b ** 2) - 3.0 * p + jnp.sum(jax.nn.relu(d - 0.5) * y["c"][:3])
            + jnp.linalg.norm(T[0] - y["t"]) + jnp.sum(sel * y["c"]))


def test_moves_calls_and_batched_products():
    r = np.random.default_rng(3)
    for seed in range(3):
        r = np.random.default_rng(seed)
        y = {"v": jnp.asarray(r.uniform(0, 1, 6), jnp.float32),
             "u": jnp.asarray(r.uniform(-1, 1, 6), jnp.float32),
             "W": jnp.asarray(r.uniform(-1, 1, (2, 4)), jnp.float32),
             "c": jnp.asarray(r.uniform(-1, 1, 6), jnp.float32),
             "t": jnp.float32(r.uniform(0, 1)), "mask": jnp.asarray(r.random(6) < 0.5)}
        problem = surco.Problem("moves", cardinality_spec(6, 3), f_moves)
        opt = brute(problem, y)
        res = scip_minimize(problem, y)
        assert res.optimal and abs(res.f - opt) <= 1e-4 * max(1, abs(opt)), (res, opt)


def f_compare(z, y):
    return jnp.sum(jnp.where(z > 0.5, y["v"], 0.0))


def f_argmax(z, y):
    return jnp.argmax(z * y["v"]).astype(jnp.float32)


@pytest.mark.parametrize("f, prim", [(f_compare, "gt"), (f_argmax, "argmax")])
def test_unsupported_primitive_is_named_with_its_line(f, prim):
    problem = surco.Problem("bad", cardinality_spec(4, 2), f)
    y = {"v": jnp.arange(4.0)}
    with pytest.raises(UnsupportedError) as info:
        scip_minimize(problem, y)
    msg = str(info.value)
    line = f.__code__.co_firstlineno + 1
    assert f"'{prim}'" in msg and f"test_scip.py:{line}" in msg and "'bad'" in msg, msg


def test_bad_input_is_named():
    problem = surco.Problem("vec", cardinality_spec(4, 2), lambda z, y: z * y["v"])
    with pytest.raises(surco.ProblemError, match="one scalar"):
        scip_minimize(problem, {"v": jnp.ones(4)})
    ok = surco.Problem("ok", cardinality_spec(4, 2), lambda z, y: jnp.sum(z * y["v"]))
    with pytest.raises(ValueError, match="start must be a point of Ω"):
        scip_minimize(ok, {"v": jnp.ones(4)}, start=np.ones(4))
    with pytest.raises(ValueError, match="time_limit"):
        scip_minimize(ok, {"v": jnp.ones(4)}, time_limit=0)
    oracle = surco.Problem("oracle", _NoSpec((3,), "argmin-oracle"), lambda x, y: jnp.sum(x))
    with pytest.raises(TypeError, match="without a LinearSpec"):
        scip_minimize(oracle, None)


class _NoSpec(surco.solvers.Solver):
    """An oracle whose Ω is not written as a LinearSpec."""

    def solve_flat(self, c):
        x = np.zeros(self.n)
        x[int(np.argmin(c))] = 1.0
        return x, float(c.min()), surco.solvers.Status.OPTIMAL, {}

    def factory(self):
        return lambda: _NoSpec(self.shape, self.name)


def test_start_is_a_complete_incumbent():
    """A feasible start (with every auxiliary variable at its value there) goes to SCIP as
    a complete solution; the answer is no worse and still optimal."""
    problem, y = make_case("knap", CASES[8][1], 7)
    x0 = np.zeros(problem.space.shape)
    res = scip_minimize(problem, y, start=x0)
    assert res.f <= float(problem.objective(jnp.asarray(x0, jnp.float32), y)) + 1e-6
    assert abs(res.f - brute(problem, y)) <= 1e-4 * max(1, abs(res.f))


class _FakeMeter:
    def __init__(self, left):
        self.left = left

    def remaining_seconds(self):
        return self.left


def test_time_policy_is_the_project_one():
    """scip_method's limit is `surco.methods.solver_time_limit` (0.95 · left − 0.05 s)."""
    assert solver_time_limit(_FakeMeter(math.inf), 60.0) == 60.0
    assert solver_time_limit(_FakeMeter(3.0)) == pytest.approx(0.95 * 3.0 - 0.05)
    assert solver_time_limit(_FakeMeter(0.01)) == 0.05


def test_method_evaluates_once_through_the_meter():
    problem, y = make_case("card", CASES[5][1], 4)
    meter = Budget(seconds=30.0, evaluations=5).start(lambda x: float(problem.objective(x, y)))
    x = scip_method(problem)(y, meter)
    assert meter.evaluations == 1
    assert problem.space.contains(x)
    assert meter.best_value == pytest.approx(brute(problem, y), rel=1e-4, abs=1e-4)
    with pytest.raises(TypeError, match="Problem, a Family"):
        scip_method(3)


def test_knapsack_rows_and_exactness_flag():
    """exact=True raises unless SCIP proved optimality; on a knapsack it does prove it."""
    w = np.array([0.5, 0.4, 0.9, 0.3, 0.7])
    problem = surco.Problem("knap", knapsack_spec(w, 1.2),
                            lambda z, y: -jnp.sqrt(1.0 + y["v"] @ z) + 0.1 * jnp.max(z * y["v"]))
    y = {"v": jnp.asarray([3.0, 1.0, 4.0, 1.5, 2.0], jnp.float32)}
    meter = Budget().start(lambda x: float(problem.objective(x, y)))
    x = scip_method(problem, exact=True)(y, meter)
    assert meter.best_value == pytest.approx(brute(problem, y), rel=1e-5)
    assert w @ x <= 1.2 + 1e-9
