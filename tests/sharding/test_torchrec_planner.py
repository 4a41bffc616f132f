"""TorchRec's planner as a baseline and our plans as TorchRec's (marker ``torchrec``: needs
the optional extra, run by ``make test-all``)."""
import numpy as np
import pytest

from surco.problems import sharding as S

pytestmark = pytest.mark.torchrec


@pytest.fixture(scope="module")
def task():
    return S.generate(1, seed=1, n_tables=40, n_devices=4)[0]


def test_planner_plan_in_omega_and_balanced_by_its_estimate(task):
    from surco.problems.sharding import torchrec_planner as tp
    from surco.problems.sharding.torchrec_cost import DEFAULT_TORCHREC_MODEL, table_perf
    x, seconds = tp.plan_with_torchrec(task)
    assert seconds > 0 and S.plan_violations(x, task) == []
    # TorchRec balances its own estimate: no single-table move lowers its rating by
    # more than the largest table's share (a greedy partitioner's guarantee is weaker; we
    # check the plan is no worse than our reimplementation of its greedy partitioner)
    greedy = S.baselines.torchrec_greedy(task)
    m = DEFAULT_TORCHREC_MODEL
    per = table_perf(task, task.n_devices, m)
    assert m.evaluate(x, task) <= m.evaluate(greedy, task) * (1 + 1e-6) + per.max()
    assert m.evaluate(x, task) <= 1.5 * per.sum() / task.n_devices + per.max()


def test_to_torchrec_plan_reads_back(task):
    from surco.problems.sharding import torchrec_planner as tp
    rng = np.random.default_rng(0)
    x = np.eye(task.n_devices)[rng.integers(0, task.n_devices, task.n_tables)]
    plan = tp.to_torchrec_plan(task, x)
    for t in range(task.n_tables):
        ps = plan[f"table_{t}"]
        assert ps.sharding_type == "table_wise" and ps.compute_kernel == "fused"
        assert list(ps.ranks) == [int(np.argmax(x[t]))]
    np.testing.assert_array_equal(tp.plan_ranks(task, plan), x)
    with pytest.raises(ValueError, match="one-hot"):
        tp.to_torchrec_plan(task, np.full((task.n_tables, task.n_devices), 0.5))


def test_harness_method(task):
    import surco
    from surco.problems.sharding import scale
    fam = scale.scale_family(S.DEFAULT_COST_MODEL, torchrec=True)
    cmp = surco.compare(fam, [task], ["torchrec-planner"], progress=False)
    run = cmp.run("torchrec-planner", 0)
    assert run.status == "ok" and run.evaluations == 0
    assert run.value == pytest.approx(S.evaluate_plan(run.x, task))
