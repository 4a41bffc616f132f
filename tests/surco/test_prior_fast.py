"""SurCo-prior's prediction path does each piece of work once: the residual base once per
instance (also for robust prediction and hybrid's start), the network and f compiled once
per instance shape, sharding's standalone table costs once per task."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.problems import assignment as A

CALLS = {"base": 0}


def counting_base(y: A.Instance) -> np.ndarray:
    """The mean-cost heuristic, counting its calls."""
    CALLS["base"] += 1
    return A.mean_cost_heuristic(y)


@pytest.fixture(scope="module")
def residual():
    prob = A.make_problem(8, 3)
    pm = surco.prior.init(prob, A.generate(6, seed=31, n=8, m=3), base=counting_base,
                          hidden=(8,), key=1, backend="highs")
    # a non-zero network, so the prior's θ differs from the base's
    pm.params = jax.tree.map(lambda p: p + 0.05, pm.params)
    return prob, pm


@pytest.mark.parametrize("call", ["predict", "robust", "candidates", "hybrid_start"])
def test_the_base_is_computed_once_per_instance(residual, call):
    _, pm = residual
    y = A.generate(1, seed=32, n=8, m=3)[0]
    run = {"predict": lambda: pm.predict(y),
           "robust": lambda: pm.predict(y, candidates=4, sigma=0.2),
           "candidates": lambda: pm.candidate_thetas(y, 3),
           "hybrid_start": lambda: surco.prior.hybrid_start(pm, y)}[call]
    CALLS["base"] = 0
    run()
    assert CALLS["base"] == 1


def test_candidates_and_hybrid_start_values(residual):
    """Computing the base once changes no value: candidate 0 is network + base, candidate 1
    the base; hybrid's start is whichever of the two solves to the lower f."""
    prob, pm = residual
    s = surco.solvers.make_solver(prob.space, "highs")
    for y in A.generate(4, seed=33, n=8, m=3):
        base = A.mean_cost_heuristic(y).astype(np.float32)
        net = np.asarray(pm._apply(pm.params, pm._features(y)))
        th = pm.candidate_thetas(y, 2)
        np.testing.assert_array_equal(th[0], np.asarray(jnp.asarray(net) + base, np.float64))
        np.testing.assert_array_equal(th[1], base.astype(np.float64))
        start, which = surco.prior.hybrid_start(pm, y)
        f = [A.evaluate(s.solve(t).x, y) for t in th]
        assert which == ("prior" if f[0] <= f[1] + 1e-6 else "heuristic")
        np.testing.assert_array_equal(start, th[0 if which == "prior" else 1])


def test_prediction_compiles_once_per_instance_shape(residual):
    prob, pm = residual
    ys = A.generate(5, seed=34, n=8, m=3)

    def run():
        out = [pm.predict(y) for y in ys] + pm.predict(ys)
        [pm.predict(y, candidates=3) for y in ys]
        return out
    rs = run()
    sizes = [f._cache_size() for f in (pm._apply, pm._f_batch, pm._f_candidates)]
    assert sizes[0] == 1  # one instance shape
    run()  # more instances of the same shapes compile nothing
    assert [f._cache_size() for f in (pm._apply, pm._f_batch, pm._f_candidates)] == sizes
    for r, y in zip(rs, ys + ys):  # the jitted f is f
        assert r.f == pytest.approx(float(A.objective(jnp.asarray(r.x, jnp.float32), y)),
                                    rel=1e-6)
        assert r.f == pytest.approx(A.evaluate(r.x, y), rel=1e-5)


def test_sharding_standalone_costs_are_each_table_alone_and_remembered():
    from surco.problems import sharding as S
    from surco.problems.sharding.cost import DEFAULT_COST_MODEL as model
    from surco.problems.sharding.cost import standalone_costs
    from surco.problems.sharding.comm import exchange_ms
    task = S.generate(1, seed=3, n_tables=12, n_devices=4, split="test")[0]
    alone = np.asarray([model.stage_costs(np.eye(12, dtype=np.float32)[:, [t]], task)[0][0]
                        for t in range(12)])
    want = alone + np.asarray(exchange_ms(jnp.asarray(task.comm_bytes, jnp.float32),
                                          model.comm_bw))
    got = standalone_costs(task)
    np.testing.assert_array_equal(got, want.astype(got.dtype))
    got[:] = -1.0  # a caller's array is its own: the remembered one is unchanged
    np.testing.assert_array_equal(standalone_costs(task), want.astype(got.dtype))
    # another task object is costed afresh, even with equal tables
    other = task.replace(comm_bytes=np.asarray(task.comm_bytes) * 2.0)
    assert not np.array_equal(standalone_costs(other), want)


def test_hybrid_start_with_perturbations_is_the_best_candidate(residual):
    """``perturbations=k`` adds k perturbed copies of the prior's θ (robust prediction's
    candidates) to the prior and the heuristic; the start is the one of least f."""
    import jax.random as jr
    from surco.prior.model import perturbed
    prob, pm = residual
    s = surco.solvers.make_solver(prob.space, "highs")
    kinds = set()
    for i, y in enumerate(A.generate(8, seed=35, n=8, m=3)):
        th = np.asarray(pm.theta(y), np.float64)
        cands = [th, A.mean_cost_heuristic(y).astype(np.float32).astype(np.float64),
                 *perturbed(th, 3, 0.5, jr.key(i))]
        f = [A.evaluate(s.solve(c).x, y) for c in cands]
        start, which = surco.prior.hybrid_start(pm, y, perturbations=3, sigma=0.5, key=i)
        best = int(np.argmin(f))
        assert which == ["prior", "heuristic", "perturbed", "perturbed", "perturbed"][best]
        np.testing.assert_allclose(start, cands[best], rtol=1e-12)
        kinds.add(which)
        # never worse than the plain start (prior or heuristic)
        plain, _ = surco.prior.hybrid_start(pm, y)
        assert A.evaluate(s.solve(start).x, y) <= A.evaluate(s.solve(plain).x, y) + 1e-9
    assert "perturbed" in kinds  # the perturbations did win somewhere
    with pytest.raises(ValueError, match="perturbations must be an integer >= 0, got -1"):
        surco.prior.hybrid_start(pm, y, perturbations=-1)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got 0"):
        surco.prior.hybrid_start(pm, y, perturbations=1, sigma=0)
