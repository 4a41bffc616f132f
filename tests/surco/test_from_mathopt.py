"""`LinearSpec.from_mathopt`: a MathOpt model's Ω, solved by the project's solvers, gives
MathOpt's own optimum; blocks from ``name[i,j]`` variables; clear errors for what a
LinearSpec cannot hold."""
import math

import numpy as np
import pytest
from ortools.math_opt.python import mathopt

import jax.numpy as jnp
import surco
from surco.solvers import LinearSpec, make_solver, mathopt_cost


def knapsack_assignment(seed: int):
    """A small MIP: items (3) × bins (2) binary assign[i,j], one bin per item at most,
    bin capacities, an integer count 0 <= k <= 3 with k = Σ assign, a continuous slack."""
    r = np.random.default_rng(seed)
    w, v = r.uniform(1, 4, 3), r.uniform(1, 5, (3, 2))
    model = mathopt.Model(name=f"mip{seed}")
    a = {(i, j): model.add_binary_variable(name=f"assign[{i},{j}]")
         for i in range(3) for j in range(2)}
    k = model.add_integer_variable(lb=0, ub=3, name="k")
    s = model.add_variable(lb=0, ub=2.5, name="slack")
    for i in range(3):
        model.add_linear_constraint(sum(a[i, j] for j in range(2)) <= 1, name=f"once[{i}]")
    for j in range(2):
        model.add_linear_constraint(sum(w[i] * a[i, j] for i in range(3)) <= 3.0 + s,
                                    name=f"cap[{j}]")
    model.add_linear_constraint(k == sum(a.values()), name="count")
    model.add_linear_constraint(lb=1, ub=3, expr=k + 0 * s, name="range")     # ranged
    model.maximize(sum(v[i, j] * a[i, j] for (i, j) in a) - 0.8 * s - 0.7 * k + 2.0)
    return model, a, k, s


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", ["scip", "highs"])
def test_same_optimum_as_mathopt(seed, backend):
    model, a, k, s = knapsack_assignment(seed)
    spec = LinearSpec.from_mathopt(model)
    assert spec.blocks.shapes == {"assign": (3, 2), "k": (), "slack": ()}
    assert spec.n == 8 and spec.integer.sum() == 7
    pos = spec.blocks.position
    assert [pos(a[1, 0]), pos(a[2, 1]), pos(k), pos(s)] == [2, 5, 6, 7]
    c, offset = mathopt_cost(model, spec)
    sol = make_solver(spec, backend=backend).solve(c)
    ref = mathopt.solve(model, mathopt.SolverType.GSCIP)
    assert ref.termination.reason == mathopt.TerminationReason.OPTIMAL
    # MathOpt maximises v·a − 1.5 s − 0.7 k + 2; the spec's cost is its negation
    assert -(sol.objective + offset) == pytest.approx(ref.objective_value(), abs=1e-6)
    assert spec.contains(sol.x)
    xr = np.zeros(spec.n)
    for var, val in ref.variable_values().items():
        xr[pos(var)] = val
    assert spec.contains(xr, tol=1e-6)
    assert c @ xr + offset == pytest.approx(sol.objective + offset, abs=1e-6)


def test_rows_bounds_and_scalar_blocks():
    model = mathopt.Model(name="m")
    x = model.add_variable(lb=-1, ub=2, name="x")
    y = model.add_variable(lb=-math.inf, ub=math.inf, is_integer=True)    # unnamed
    z0, z1 = model.add_binary_variable(name="z[0]"), model.add_binary_variable(name="z[2]")
    model.add_linear_constraint(lb=2, ub=5, expr=x + 3 * y, name="ranged")
    model.add_linear_constraint(x - y >= -1, name="ge")
    model.add_linear_constraint(x + x + z0 == 1, name="eq")          # repeated terms add up
    spec = LinearSpec.from_mathopt(model, name="mine")
    # z[0], z[2] miss z[1]: no full grid, so scalar blocks named by the variable id
    assert spec.blocks.names == ("x", f"x{y.id}", f"x{z0.id}", f"x{z1.id}")
    assert spec.name == "mine"
    np.testing.assert_array_equal(spec.A_ub.toarray(), [[1, 3, 0, 0], [-1, -3, 0, 0],
                                                        [-1, 1, 0, 0]])
    np.testing.assert_array_equal(spec.b_ub, [5, -2, 1])
    np.testing.assert_array_equal(spec.A_eq.toarray(), [[2, 0, 1, 0]])
    np.testing.assert_array_equal(spec.lb, [-1, -math.inf, 0, 0])
    np.testing.assert_array_equal(spec.ub, [2, math.inf, 1, 1])
    np.testing.assert_array_equal(spec.integer, [False, True, True, True])
    assert spec.blocks.position(z1) == 3


def test_problem_on_an_imported_model_gets_the_blocks():
    model, a, k, s = knapsack_assignment(0)
    spec = LinearSpec.from_mathopt(model)
    p = surco.Problem("imported", spec,
                      lambda x, y: jnp.sum(x["assign"] ** 2) + x["k"] * x["slack"])
    x = np.arange(8.0)
    assert float(p.f(jnp.asarray(x), None)) == pytest.approx(np.sum(x[:6] ** 2) + 6 * 7)


def test_what_cannot_be_imported_is_named():
    model = mathopt.Model(name="q")
    x = model.add_variable(lb=0, ub=1, name="x")
    model.add_quadratic_constraint(expr=x * x, ub=0.5, name="disc")
    with pytest.raises(ValueError, match="quadratic constraint 'disc'.*cannot be imported"):
        LinearSpec.from_mathopt(model)
    model = mathopt.Model(name="ind")
    x = model.add_variable(lb=0, ub=1, name="x")
    b = model.add_binary_variable(name="b")
    model.add_indicator_constraint(indicator=b, implied_constraint=x <= 0.2, name="onoff")
    with pytest.raises(ValueError, match="indicator constraint 'onoff'"):
        LinearSpec.from_mathopt(model)
    model = mathopt.Model(name="bad")
    x = model.add_variable(lb=0, ub=1, name="x")
    model.add_linear_constraint(lb=math.inf, ub=math.inf, expr=x, name="never")
    with pytest.raises(ValueError, match="linear constraint 'never'"):
        LinearSpec.from_mathopt(model)
    with pytest.raises(ValueError, match="has no variables"):
        LinearSpec.from_mathopt(mathopt.Model(name="empty"))
    with pytest.raises(TypeError, match="expected a mathopt.Model"):
        LinearSpec.from_mathopt({"x": 1})
    model = mathopt.Model(name="qobj")
    x = model.add_variable(lb=0, ub=1, name="x")
    model.minimize(x * x)
    with pytest.raises(ValueError, match="quadratic objective"):
        mathopt_cost(model, LinearSpec.from_mathopt(model))
