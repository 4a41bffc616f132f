"""TorchRec's cost estimate as a cost model: the derived formula by hand (no torch), and
against TorchRec's own ``EmbeddingPerfEstimator`` / ``NoopPerfModel`` (marker ``torchrec``,
needs the optional extra; run by ``make test-all``)."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.problems import sharding as S
from surco.problems.sharding.torchrec_cost import (DEFAULT_TORCHREC_MODEL, TorchRecCostModel,
                                                   table_perf)


def _fake(dim, pooling, D):
    return types.SimpleNamespace(dim=np.asarray(dim, float), pooling=np.asarray(pooling, float),
                                 capacity=np.full(D, 5e9))


def test_one_table_by_hand():
    """dim 16 (quarter-block penalty 1.75, lookups at the 32-wide minimum), pooling 1,
    2 ranks, batch 1000, HBM 1e12 B/s (1e9 B/ms), all-to-all 1e9 B/s (1e6 B/ms):
    I = 16 000, L = 256 000, O = 128 000 bytes; fwd = 400 000 · 1.75 / 1e9 = 7e-4 ms,
    bwd = 1.4e-3, comms = 0.128 each way: total 0.2581 ms."""
    m = TorchRecCostModel(batch_per_device=1000, hbm_bw=1e12, comm_bw=1e9)
    p = table_perf(_fake([16], [1.0], 2), 2, m, parts=True)
    assert p["fwd_compute"][0] == pytest.approx(7e-4)
    assert p["bwd_compute"][0] == pytest.approx(1.4e-3)
    assert p["fwd_comms"][0] == p["bwd_comms"][0] == pytest.approx(0.128)
    assert p["total"][0] == pytest.approx(0.2581)
    # dim 128: no penalty, lookups at the table's own width
    q = table_perf(_fake([128], [3.0], 2), 2, m, parts=True)
    assert q["fwd_compute"][0] == pytest.approx((48_000 + 3 * 1000 * 2 * 128 * 4
                                                 + 1000 * 2 * 128 * 4) / 1e9)


def test_plan_cost_is_max_of_per_rank_sums_and_linear():
    task = S.generate(1, seed=1, n_tables=20, n_devices=4)[0]
    m = DEFAULT_TORCHREC_MODEL
    per = table_perf(task, 4, m)
    x = np.eye(4)[np.arange(20) % 4]
    assert float(m.plan_cost(jnp.asarray(x, jnp.float32), task)) == pytest.approx(
        max(per[x[:, d] == 1].sum() for d in range(4)), rel=1e-5)
    assert m.evaluate(x, task) == pytest.approx(float((per @ x).max()), rel=1e-5)
    # the gradient of the plan cost is each table's total on the busiest rank, 0 elsewhere
    g = np.asarray(jax.grad(m.plan_cost)(jnp.asarray(x, jnp.float32), task))
    busiest = int(np.argmax(per @ x))
    np.testing.assert_allclose(g[:, busiest], per, rtol=1e-5)
    assert np.all(np.delete(g, busiest, axis=1) == 0)
    assert float(m.load_scale(task)) == pytest.approx(per.sum() / 4, rel=1e-5)
    prob = S.sharding_problem(m)
    assert prob.name == "sharding-torchrec"


def test_bad_fields():
    with pytest.raises(ValueError, match="TorchRecCostModel.comm_bw"):
        TorchRecCostModel(comm_bw=0.0)


def test_missing_torchrec_names_the_extra(monkeypatch):
    import sys
    from surco.problems.sharding import torchrec_planner as tp
    monkeypatch.setitem(sys.modules, "torchrec", None)   # import torchrec -> ImportError
    monkeypatch.setitem(sys.modules, "torchrec.distributed.embeddingbag", None)
    assert tp.available() is False
    task = S.generate(1, seed=1, n_tables=8, n_devices=2)[0]
    with pytest.raises(tp.TorchRecMissingError, match=r'pip install -e "\.\[torchrec\]"'):
        tp.plan_with_torchrec(task)


@pytest.mark.torchrec
@pytest.mark.parametrize("T, D", [(50, 4), (60, 8)])
def test_formula_matches_torchrec_estimator(T, D):
    from surco.problems.sharding import torchrec_planner as tp
    task = S.generate(1, seed=1, n_tables=T, n_devices=D)[0]
    theirs = tp.torchrec_estimates(task)
    ours = table_perf(task, D, DEFAULT_TORCHREC_MODEL, parts=True)
    for k in ("fwd_compute", "bwd_compute", "fwd_comms", "bwd_comms", "total"):
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, err_msg=k)
    assert np.all(theirs["prefetch_compute"] == 0)


@pytest.mark.torchrec
def test_plan_cost_matches_torchrec_rating():
    """TorchRec's NoopPerfModel on its own enumerated options placed by a plan of ours
    rates the plan as TorchRecCostModel does."""
    from torchrec.distributed.planner.perf_models import NoopPerfModel

    from surco.problems.sharding import torchrec_planner as tp
    task = S.generate(1, seed=2, n_tables=30, n_devices=4)[0]
    m = tp._modules()
    enum = m["Enumerator"](topology=tp.topology(task), batch_size=16384,
                           constraints=tp.constraints(task))
    options = enum.enumerate(tp._collection(task), [m["Sharder"]()])
    x = S.baselines.torchrec_greedy(task)
    for opt in options:
        opt.shards[0].rank = int(np.argmax(x[int(opt.name.split("_")[-1])]))
    rating = NoopPerfModel(tp.topology(task)).rate(options)
    assert DEFAULT_TORCHREC_MODEL.evaluate(x, task) == pytest.approx(rating, rel=1e-5)
