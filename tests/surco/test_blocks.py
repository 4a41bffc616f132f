"""Named variable blocks: `LinearSpec.from_blocks`, f on a dict of blocks, and the derived
neighbourhoods and SCIP on facility location (open / assign variables, capacities, a
convex congestion cost), checked against enumeration."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import surco
from surco.derive import (BlockChoice, NeighbourhoodUnion, neighbourhood_for,
                          scip_minimize)
from surco.search import RowChoice
from surco.solvers import Blocks, LinearSpec, Rows, make_solver


def fl_spec(y, assign_first: bool = False) -> LinearSpec:
    """Each client on exactly one open facility, Σ_i d_i assign[i, j] <= cap_j open[j]
    (blocks in the order open, assign; or assign, open)."""
    m, n = y["open_cost"].shape[0], y["demand"].shape[0]
    d, cap = np.asarray(y["demand"]), np.asarray(y["cap"])
    each = np.zeros((n, n, m))
    each[np.arange(n), np.arange(n)] = 1                       # row i: Σ_j assign[i, j]
    link = np.eye(n * m).reshape(n * m, n, m)                  # row (i, j): assign[i, j]
    load = np.zeros((m, n, m))
    load[np.arange(m)[:, None], np.arange(n)[None], np.arange(m)[:, None]] = d[None]
    blocks = {"open": (m,), "assign": (n, m)}
    if assign_first:
        blocks = {"assign": (n, m), "open": (m,)}
    return LinearSpec.from_blocks(blocks, rows=[
        Rows({"assign": each}, "==", 1, name="one facility per client"),
        Rows({"assign": link, "open": -np.tile(np.eye(m), (n, 1))}, "<=", 0, name="open"),
        Rows({"assign": load, "open": -np.diag(cap)}, "<=", 0, name="capacity")],
        ub=1, integer=True, name="facility")


def fl_f(x, y):
    """Opening + distance + congestion Σ_j load_j² / cap_j (convex)."""
    load = y["demand"] @ x["assign"]
    return (y["open_cost"] @ x["open"] + jnp.sum(y["dist"] * x["assign"])
            + jnp.sum(load ** 2 / y["cap"]))


def fl_generate(count, seed=0, m=3, n=4):
    out = []
    for k in range(count):
        r = np.random.default_rng([seed, k])
        d = r.uniform(1, 3, n)
        out.append({"open_cost": jnp.asarray(r.uniform(1, 5, m)), "demand": jnp.asarray(d),
                    "cap": jnp.asarray(r.uniform(0.5, 1.0, m) * d.sum()),
                    "dist": jnp.asarray(r.uniform(0, 4, (n, m)))})
    return out


def fl_problem(y) -> surco.Problem:
    return surco.Problem("facility", fl_spec(y), fl_f)


def enumerate_fl(spec: LinearSpec) -> np.ndarray:
    """Every point of Ω: open ∈ {0,1}^m × one column per client, filtered by the spec."""
    m, (n, _) = spec.blocks.shapes["open"][0], spec.blocks.shapes["assign"]
    pts = []
    for op in itertools.product((0.0, 1.0), repeat=m):
        for cols in itertools.product(range(m), repeat=n):
            x = spec.join({"open": np.array(op), "assign": np.eye(m)[list(cols)]})
            if spec.contains(x):
                pts.append(x)
    return np.array(pts)


@functools.cache
def _candidates(m: int, n: int) -> np.ndarray:
    """Every (open, one facility per client) 0/1 point in the flat layout of `fl_spec`: Ω of
    any instance of this size is the subset that meets its capacities (`enumerate_fl`)."""
    spec = fl_spec(fl_generate(1, m=m, n=n)[0])
    return np.array([spec.join({"open": np.array(op), "assign": np.eye(m)[list(cols)]})
                     for op in itertools.product((0.0, 1.0), repeat=m)
                     for cols in itertools.product(range(m), repeat=n)])


@functools.cache
def _f_on_rows(m: int, n: int):
    """f over a batch of flat points, compiled once per size: every instance of that size
    hands it the same candidate array (feasibility is applied afterwards)."""
    y = fl_generate(1, m=m, n=n)[0]
    return jax.jit(jax.vmap(fl_problem(y).objective, in_axes=(0, None)))


def brute(y) -> tuple[np.ndarray, float]:
    """The optimum of f over Ω by enumeration: f on every candidate, the infeasible ones
    (`LinearSpec.contains`) left out."""
    spec = fl_spec(y)
    m, (n, _) = spec.blocks.shapes["open"][0], spec.blocks.shapes["assign"]
    cand = _candidates(m, n)
    feasible = np.array([spec.contains(x) for x in cand])
    v = np.asarray(_f_on_rows(m, n)(jnp.asarray(cand, jnp.float32), y), np.float64)
    v = np.where(feasible, v, np.inf)
    return cand[int(np.argmin(v))], float(v.min())


# -- the spec ----------------------------------------------------------------------------------


def test_from_blocks_rows_bounds_and_layout():
    spec = LinearSpec.from_blocks(
        {"a": (2,), "b": (2, 2)},
        rows=[Rows({"a": [1, 2], "b": [[1, 0], [0, 3]]}, "<=", 4),
              Rows({"b": np.ones((2, 2, 2))}, ">=", [1, 2]),
              Rows({"a": np.eye(2)}, "==", [0, 1])],
        lb={"a": -1}, ub={"b": np.array([[1, 2], [3, 4]])}, integer={"b": True})
    assert spec.shape == (6,) and spec.blocks == Blocks({"a": (2,), "b": (2, 2)})
    np.testing.assert_array_equal(spec.A_ub.toarray(), [[1, 2, 1, 0, 0, 3],
                                                        [0, 0, -1, -1, -1, -1],
                                                        [0, 0, -1, -1, -1, -1]])
    np.testing.assert_array_equal(spec.b_ub, [4, -1, -2])
    np.testing.assert_array_equal(spec.A_eq.toarray(), [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(spec.lb, [-1, -1, 0, 0, 0, 0])
    np.testing.assert_array_equal(spec.ub, [np.inf, np.inf, 1, 2, 3, 4])
    np.testing.assert_array_equal(spec.integer, [0, 0, 1, 1, 1, 1])
    x = np.arange(6.0)
    parts = spec.split(x)
    np.testing.assert_array_equal(parts["b"], [[2, 3], [4, 5]])
    np.testing.assert_array_equal(spec.join(parts), x)
    batch = spec.split(np.stack([x, -x]))                      # leading axes kept
    assert batch["b"].shape == (2, 2, 2) and batch["b"][1, 1, 0] == -4
    assert spec.blocks.position(("b", (1, 0))) == 4
    assert spec.relaxed().blocks == spec.blocks
    # sparse coefficients, one row per matrix row
    sparse = LinearSpec.from_blocks({"a": (2,), "b": (2, 2)},
                                    rows=[Rows({"b": sp.eye(2, 4)}, "<=", 1)])
    np.testing.assert_array_equal(sparse.A_ub.toarray(), [[0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0]])


@pytest.mark.parametrize("rows, kw, match", [
    ([Rows({"c": [1, 1]}, "<=", 1)], {}, r"rows\[0\].*no block 'c'"),
    ([Rows({"b": np.ones(3)}, "<=", 1, name="cap")], {}, r"rows\[0\] \('cap'\).*block 'b'.*"
                                                          r"shape \(3,\).*\(2, 2\)"),
    ([Rows({"a": np.ones((2, 2)), "b": np.ones((3, 2, 2))}, "<=", 1)], {}, "3 rows, another"),
    ([Rows({"a": [1, 1]}, "<", 1)], {}, "sense must be one of"),
    ([Rows({"a": [1, 1]}, "<=", [1, 2])], {}, "rhs has 2 entries"),
    ([("a", 1)], {}, r"rows\[0\] is a tuple"),
    ([], {"ub": {"z": 1}}, "ub names no block 'z'"),
    ([], {"lb": {"b": [0, 1]}}, r"lb\['b'\] has shape \(2,\)"),
])
def test_from_blocks_errors_name_what_and_where(rows, kw, match):
    with pytest.raises(ValueError, match=match):
        LinearSpec.from_blocks({"a": (2,), "b": (2, 2)}, rows, **kw)


def test_blocks_errors():
    with pytest.raises(ValueError, match="block 'a' has shape"):
        Blocks({"a": (0, 2)})
    with pytest.raises(ValueError, match="non-empty dict"):
        Blocks({})
    spec = LinearSpec.from_blocks({"a": (2,)}, [])
    with pytest.raises(ValueError, match="last axis of 2 entries"):
        spec.split(np.zeros(3))
    with pytest.raises(ValueError, match=r"missing \['a'\], unknown \['q'\]"):
        spec.join({"q": np.zeros(2)})
    with pytest.raises(ValueError, match="block 'a' has shape"):
        spec.join({"a": np.zeros(3)})
    with pytest.raises(ValueError, match="split needs a spec with named blocks"):
        LinearSpec((2,)).split(np.zeros(2))
    with pytest.raises(ValueError, match=r"LinearSpec.blocks: .* shape must then be \(2,\)"):
        LinearSpec((1, 2), blocks={"a": (2,)})


# -- f on blocks -------------------------------------------------------------------------------


def test_problem_hands_f_the_blocks_and_grad_flows():
    y = fl_generate(1, seed=3)[0]
    seen = {}

    def f(x, y):
        seen["x"] = {k: v.shape for k, v in x.items()}
        return fl_f(x, y)

    p = surco.Problem("facility", fl_spec(y), f)
    x = jnp.asarray(p.space.join({"open": np.ones(3), "assign": np.eye(3)[[0, 1, 2, 0]]}))
    v = float(p.f(x, y))
    assert seen["x"] == {"open": (3,), "assign": (4, 3)}
    parts = p.space.split(np.asarray(x))
    load = np.asarray(y["demand"]) @ parts["assign"]
    want = (np.asarray(y["open_cost"]).sum() + np.sum(np.asarray(y["dist"]) * parts["assign"])
            + np.sum(load ** 2 / np.asarray(y["cap"])))
    assert v == pytest.approx(want, rel=1e-5)
    g = np.asarray(jax.grad(p.objective)(x, y), np.float64)
    # the gradient on the flat x: open_cost on "open", dist + 2 d_i load_j / cap_j on "assign"
    ga = np.asarray(y["dist"]) + 2 * np.outer(np.asarray(y["demand"]), load / np.asarray(y["cap"]))
    np.testing.assert_allclose(g, p.space.join({"open": np.asarray(y["open_cost"]), "assign": ga}),
                               rtol=1e-5)
    # central finite differences in float64 on one entry of each block
    for i in (1, 7):
        e = np.zeros(15)
        e[i] = 1e-3
        x64 = np.asarray(x, np.float64)
        fd = (float(p.f(jnp.asarray(x64 + e, jnp.float32), y))
              - float(p.f(jnp.asarray(x64 - e, jnp.float32), y))) / 2e-3
        assert fd == pytest.approx(g[i], rel=2e-2)
    # sense="max": f still receives blocks, and the minimised form is −f
    q = surco.Problem("facility", fl_spec(y), fl_f, sense="max")
    assert float(q.objective(x, y)) == pytest.approx(-v, rel=1e-6)
    assert float(q.user_objective(x, y)) == pytest.approx(v, rel=1e-6)
    # Problems built per instance share one objective for the compiled-program caches
    assert fl_problem(y).objective == fl_problem(fl_generate(1, seed=4)[0]).objective


def test_replace_takes_the_calling_convention_of_the_new_space():
    """``dataclasses.replace(problem, space=...)``: f receives the blocks of the new layout
    (another order, another size) or, on a flat spec, the flat x; never the layout of the
    space the Problem was first built on. The same space keeps the same objective object
    (the compiled-program caches)."""
    import dataclasses
    y = fl_generate(1, seed=3)[0]
    seen = []

    def f(x, y):
        seen.append({k: v.shape for k, v in x.items()} if isinstance(x, dict) else x.shape)
        return fl_f(x, y) if isinstance(x, dict) else jnp.sum(x * jnp.arange(x.shape[0]))

    parts = {"open": np.array([1.0, 0.0, 1.0]), "assign": np.eye(3)[[0, 2, 2, 0]]}
    want = float(fl_f({k: jnp.asarray(v) for k, v in parts.items()}, y))
    p = surco.Problem("facility", fl_spec(y), f)
    other = fl_spec(y, assign_first=True)
    for q in (dataclasses.replace(p, space=other),
              dataclasses.replace(surco.Problem("facility", other, f), space=other)):
        x = jnp.asarray(other.join(parts))       # assign's 12 entries first, then open's 3
        assert float(q.f(x, y)) == pytest.approx(want, rel=1e-6)
        assert seen[-1] == {"assign": (4, 3), "open": (3,)}
    same = dataclasses.replace(p, name="renamed")
    assert same.objective is p.objective
    # another size: 4 facilities, 5 clients (x of 24 entries)
    y2 = fl_generate(1, seed=5, m=4, n=5)[0]
    big = dataclasses.replace(p, space=fl_spec(y2))
    x2 = fl_spec(y2).join({"open": np.ones(4), "assign": np.eye(4)[[0, 1, 2, 3, 0]]})
    assert float(big.f(jnp.asarray(x2), y2)) == pytest.approx(
        float(fl_f(fl_spec(y2).split(jnp.asarray(x2)), y2)), rel=1e-6)
    assert seen[-1] == {"open": (4,), "assign": (5, 4)}
    # a flat spec: f receives the flat x
    flat = LinearSpec(shape=(15,), lb=0, ub=1, integer=True)
    xf = jnp.arange(15.0) % 2
    assert float(dataclasses.replace(p, space=flat).f(xf, y)) == float(
        jnp.sum(xf * jnp.arange(15)))
    assert seen[-1] == (15,)
    # sense="max": the minimised form −f on the new layout, f as written on it
    q = dataclasses.replace(surco.Problem("facility", fl_spec(y), f, sense="max"), space=other)
    x = jnp.asarray(other.join(parts))
    assert float(q.objective(x, y)) == pytest.approx(-want, rel=1e-6)
    assert float(q.user_objective(x, y)) == pytest.approx(want, rel=1e-6)
    assert float(dataclasses.replace(q, space=flat).user_objective(xf, y)) == float(
        jnp.sum(xf * jnp.arange(15)))


def test_space_of_the_instance_hands_f_the_flat_x():
    y = fl_generate(1, seed=3)[0]
    shapes = []

    def f(x, y):
        shapes.append(x.shape)
        return jnp.sum(x)

    p = surco.Problem("facility", fl_spec, f)
    assert float(p.f(jnp.ones(15), y)) == 15.0 and shapes == [(15,)]


def test_scip_names_an_unsupported_primitive_in_the_blocked_f():
    y = fl_generate(1, seed=3)[0]

    def f(x, y):
        return jnp.sum(x["assign"] > 0.5) + fl_f(x, y)

    with pytest.raises(surco.derive.UnsupportedError, match="'gt'.* at .*test_blocks.py"):
        scip_minimize(surco.Problem("facility", fl_spec(y), f), y)


# -- neighbourhoods ------------------------------------------------------------------------------


def _rows_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.any(a != b, axis=1))


@pytest.mark.parametrize("seed", range(4))
def test_block_neighbourhood_is_moves_swaps_and_unit_moves(seed):
    y = fl_generate(1, seed=seed, m=3, n=4)[0]
    p = fl_problem(y)
    spec = p.space
    X = enumerate_fl(spec)
    x0 = X[np.random.default_rng(seed).integers(len(X))]
    nb, why = neighbourhood_for(p, y, x0)
    assert isinstance(nb, NeighbourhoodUnion) and isinstance(nb.parts[0], BlockChoice), why
    assert "blocks ['assign']" in why and "UnitExchange" in why
    got = {tuple(v) for v in nb.neighbours(x0)}
    a0, o0 = spec.split(x0)["assign"], spec.split(x0)["open"]
    want = set()
    for z in X:
        parts = spec.split(z)
        a, o = parts["assign"], parts["open"]
        if np.array_equal(z, x0):
            continue
        diff = _rows_differ(a, a0)
        same_open = np.array_equal(o, o0)
        move = same_open and diff.size == 1
        swap = (same_open and diff.size == 2 and np.array_equal(a[diff[0]], a0[diff[1]])
                and np.array_equal(a[diff[1]], a0[diff[0]]))
        d = z - x0
        unit = np.sum(d == 1) <= 1 and np.sum(d == -1) <= 1 and np.sum(d != 0) <= 2
        if move or swap or unit:
            want.add(tuple(z))
    assert got == want and len(want) > 0
    # every neighbour is in Ω, and commits walk Ω
    state = nb.start(x0)
    rng = np.random.default_rng(seed)
    for _ in range(30):
        mv = nb.random_move(state, rng)
        if mv is None:
            break
        nxt = nb.apply(state, mv[None])[0]
        nb.commit(state, mv)
        assert np.array_equal(nb.point(state), nxt) and spec.contains(nxt)
        assert {tuple(v) for v in nb.neighbours(nxt)} == {tuple(v) for v in
                                                          nb.apply(state, nb.moves(state))}


def test_block_choice_respects_closed_facilities():
    y = dict(fl_generate(1, seed=1)[0], cap=jnp.full(3, 100.0))
    spec = fl_spec(y)
    x = spec.join({"open": np.array([1.0, 0.0, 1.0]), "assign": np.eye(3)[[0, 2, 0, 2]]})
    nb = BlockChoice(spec, "assign")
    # moves: each client to the other open facility (4); swaps: clients in different ones (4)
    assert nb.moves(nb.start(x)).shape == (8, 4)
    for z in nb.neighbours(x):
        assert spec.split(z)["assign"][:, 1].sum() == 0 and spec.contains(z)
        assert np.array_equal(spec.split(z)["open"], [1, 0, 1])
    with pytest.raises(ValueError, match="no block 'nope'"):
        BlockChoice(spec, "nope")
    with pytest.raises(ValueError, match="expected \\(rows, columns\\)"):
        BlockChoice(spec, "open")
    with pytest.raises(ValueError, match="RowChoice.from_spec"):
        RowChoice.from_spec(spec)                 # a flat spec: only the blocks know the rows


# -- SCIP on f and SurCo-zero ---------------------------------------------------------------------


def test_derived_scip_agrees_with_brute_force():
    for y in fl_generate(12, seed=11, m=3, n=4):
        res = scip_minimize(fl_problem(y), y)
        x_opt, v_opt = brute(y)
        assert res.optimal and fl_spec(y).contains(res.x)
        assert res.f == pytest.approx(v_opt, rel=1e-4, abs=1e-4), (res, v_opt)


def test_zero_and_family_for_run_on_blocks():
    ys = fl_generate(3, seed=5, m=3, n=4)
    for y in ys:
        p = fl_problem(y)
        res = surco.zero(p, y, estimator="blackbox", lam=10.0, steps=20, lr=0.1, key=0)
        _, v_opt = brute(y)
        assert p.space.contains(res.x)
        assert float(p.f(jnp.asarray(res.x, jnp.float32), y)) == pytest.approx(res.f, rel=1e-5)
        assert res.f >= v_opt - 1e-4
        sol = make_solver(p.space).solve(np.asarray(res.c))
        assert float(p.f(jnp.asarray(sol.x, jnp.float32), y)) == pytest.approx(res.f, rel=1e-5)
    fam = surco.family_for(fl_problem, fl_generate)
    assert "blocks ['assign']" in fam.notes["neighbourhood"]
    assert fam.notes["scip"].startswith("included")
    cmp = surco.compare(fam, ys[:2], ["local-search-first", "annealing", "scip", "surco-zero"],
                        budget=surco.Budget(seconds=60.0, evaluations=50), progress=False)
    for i, y in enumerate(ys[:2]):
        _, v_opt = brute(y)
        assert cmp.run("scip", i).value == pytest.approx(v_opt, rel=1e-4, abs=1e-4)
        for r in cmp.runs:
            if r.instance == i:
                assert r.ok, (r.method, r.error)
                assert fl_spec(y).contains(r.x) and r.value >= v_opt - 1e-4
