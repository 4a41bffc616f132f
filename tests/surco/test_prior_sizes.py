"""Size-invariant SurCo-prior: one checkpoint serves instances of any number of rows, and
permuting the rows permutes the answer (issue 16, part 1)."""
import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.problems import assignment as A

M = 3
# Ω and f follow the instance's number of tasks n: one problem for every size.
PROBLEM = surco.Problem("assignment-any-n", space=lambda y: A.space(*y.a.shape),
                        objective=A.objective, features=A.features)


@pytest.fixture(scope="module")
def set_prior(tmp_path_factory):
    """A `SetCostNet` prior trained on 12 and 20 tasks, saved and loaded back."""
    train = A.generate(8, seed=1, n=12, m=M) + A.generate(8, seed=2, n=20, m=M)
    pm = surco.prior.train(PROBLEM, train, model=surco.prior.SetCostNet(hidden=(16,)),
                           estimator="blackbox", lam=10.0, epochs=4, batch_size=8, lr=1e-2,
                           patience=None, key=0, backend="cpsat")
    path = pm.save(tmp_path_factory.mktemp("prior") / "set")
    return pm, surco.prior.load(path, PROBLEM)


def _in_omega(x: np.ndarray, n: int) -> bool:
    return (set(np.unique(x)) <= {0.0, 1.0} and np.all(x.sum(1) == 1)
            and np.all(x.sum(0) <= A.capacity(n, M)))


@pytest.mark.parametrize("n", [10, 60])
def test_one_checkpoint_serves_any_number_of_rows(set_prior, n):
    pm, back = set_prior
    assert isinstance(back.module, surco.prior.SetCostNet) and back.module.out == M
    assert back.feat_mean.shape == (3 * M,)  # one entry per feature column, not per row
    ys = A.generate(6, seed=10 + n, n=n, m=M)
    got, want = back.predict(ys), pm.predict(ys)
    rng = np.random.default_rng(0)
    solver = surco.solvers.make_solver(A.space(n, M), backend="cpsat")
    f_random = [float(A.objective(jnp.asarray(solver.solve(rng.normal(size=(n, M))).x,
                                              jnp.float32), y)) for y in ys]
    for g, w, y in zip(got, want, ys):
        np.testing.assert_array_equal(g.x, w.x)  # the loaded model is the trained one
        assert g.x.shape == (n, M) and _in_omega(g.x, n)
        assert g.f == pytest.approx(float(A.objective(jnp.asarray(g.x, jnp.float32), y)),
                                    rel=1e-6)
    # trained on 12 and 20 tasks, it still beats random costs at 10 and at 60
    assert np.mean([g.f for g in got]) < np.mean(f_random)


@pytest.mark.parametrize("n", [10, 60])
def test_permuted_rows_give_the_permuted_answer(set_prior, n):
    _, back = set_prior
    for i, y in enumerate(A.generate(3, seed=20 + n, n=n, m=M)):
        perm = np.random.default_rng(i).permutation(n)
        yp = A.Instance(a=y.a[perm], w=y.w[perm], rho=y.rho)
        np.testing.assert_allclose(np.asarray(back.theta(yp)), np.asarray(back.theta(y))[perm],
                                   atol=1e-5)
        r, rp = back.predict(y), back.predict(yp)
        np.testing.assert_array_equal(rp.x, r.x[perm])
        assert rp.f == pytest.approx(r.f, rel=1e-5)


def test_default_costnet_accepts_other_row_counts():
    """A per-row `CostNet` prior trained on 6 tasks used to refuse 4 or 9 (its
    normalisation was stored with the training shape (6, F))."""
    prob = surco.Problem("assignment-any-n", space=lambda y: A.space(*y.a.shape),
                         objective=A.objective, features=A.features)
    pm = surco.prior.train(prob, A.generate(4, seed=3, n=6, m=M), estimator="blackbox", lam=10.0,
                           epochs=1, batch_size=4, hidden=(8,), key=0, backend="cpsat")
    for n in (4, 9):
        r = pm.predict(A.generate(1, seed=n, n=n, m=M)[0])
        assert r.x.shape == (n, M) and _in_omega(r.x, n)
    with pytest.raises(surco.ProblemError, match=r"features have shape \(4, 6\), the prior "
                                                  r"expects \(rows, 9\)"):
        pm.theta(A.Instance(a=jnp.zeros((4, 2)), w=jnp.ones((4, 2)) - 0.5, rho=jnp.float32(1.0)))


def test_vector_features_need_one_x_shape():
    prob = surco.Problem("assignment-any-n", space=lambda y: A.space(*y.a.shape),
                         objective=A.objective, features=lambda y: y.a.reshape(-1))
    with pytest.raises(surco.ProblemError, match=r"train_instances\[1\] has features \(12,\) "
                                                  r"and x \(4, 3\).*use per-row features"):
        surco.prior.train(prob, A.generate(1, n=3, m=M) + A.generate(1, n=4, m=M), epochs=1,
                          backend="cpsat")


def test_set_network_refuses_one_feature_vector():
    import jax
    net = surco.prior.SetCostNet(out=2)
    with pytest.raises(ValueError, match=r"SetCostNet: features must be per row \(R, F\), got "
                                         r"shape \(5,\)"):
        net.init(jax.random.key(0), jnp.zeros(5))


def test_instances_with_different_static_fields_train_and_predict():
    """Instances whose pytrees differ in static metadata (here a name) cannot be stacked;
    they go into separate minibatches (as photonics' device instances do)."""
    import flax.struct

    @flax.struct.dataclass
    class Named:
        y: A.Instance
        name: str = flax.struct.field(pytree_node=False)

    prob = surco.Problem("named-assignment", space=A.space(4, 2),
                         objective=lambda x, t: A.objective(x, t.y),
                         features=lambda t: A.features(t.y))
    ys = [Named(y, f"inst{i}") for i, y in enumerate(A.generate(3, seed=5, n=4, m=2))]
    pm = surco.prior.train(prob, ys, epochs=1, batch_size=3, hidden=(4,), lam=10.0,
                           backend="cpsat")
    assert len(pm.history.train_f) == 1
    for r, t in zip(pm.predict(ys), ys):
        assert r.f == pytest.approx(float(A.objective(jnp.asarray(r.x, jnp.float32), t.y)),
                                    rel=1e-6)
