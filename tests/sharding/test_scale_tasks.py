"""Tasks at scale: larger pools from the same distributions, today's pool unchanged."""
import hashlib

import numpy as np
import pytest

from surco.problems.sharding import family
from surco.problems.sharding.tables import (POOL_BLOCK_TABLES, blocks_for, concat_pools,
                                            extended_pools, generate_pool, split_pool)
from surco.problems.sharding.tasks import generate_tasks, plan_violations

# sha256 of (rows, dim, pooling, skew) of today's pool and of its two halves, recorded
# before larger pools were added (issue 26): they must never change.
POOL_SHA = "92fc68e3e73a790e61a29cc36e28ee2c841636583d481e7fa64d1a1891b91bd4"
TRAIN_SHA = "05dd2bddfc599e150db59a66dc1b90ca5fde517e62a020f7dc6451ce6efe231d"
TEST_SHA = "aa4b9b67b8879dcd55c9f5adb8249782a52694fbc246679d718162e8298c4ce4"


def _sha(pool) -> str:
    h = hashlib.sha256()
    for a in (pool.rows, pool.dim, pool.pooling, pool.skew):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_todays_pool_is_bit_identical():
    pool = generate_pool(0)
    assert len(pool) == POOL_BLOCK_TABLES == 856
    assert _sha(pool) == POOL_SHA
    train, test = split_pool(pool, 0.5, seed=0)
    assert (_sha(train), _sha(test)) == (TRAIN_SHA, TEST_SHA)
    assert tuple(map(_sha, extended_pools(1))) == (TRAIN_SHA, TEST_SHA)
    assert tuple(map(_sha, family.pools())) == (TRAIN_SHA, TEST_SHA)


def test_extended_pools_stack_independent_blocks():
    train, test = extended_pools(3)
    assert len(train) == len(test) == 3 * 428
    halves = [split_pool(generate_pool(0, block=k), 0.5, seed=0) for k in range(3)]
    for k, (tr, te) in enumerate(halves):
        sl = slice(428 * k, 428 * (k + 1))
        np.testing.assert_array_equal(train.rows[sl], tr.rows)
        np.testing.assert_array_equal(test.skew[sl], te.skew)
    assert _sha(train.subset(np.arange(428))) == TRAIN_SHA      # today's tables first
    b0, b1, b2 = (generate_pool(0, block=k) for k in range(3))
    assert not np.array_equal(b0.rows, b1.rows) and not np.array_equal(b1.rows, b2.rows)
    # the same distributions: the documented share of one-hot tables, about 0.3 per block
    for b in (b1, b2):
        assert abs(np.mean(b.pooling == 1.0) - 0.3) < 0.06
        assert set(np.unique(b.dim)) == {4, 8, 16, 32, 64, 128}


def test_concat_pools_and_errors():
    a, b = generate_pool(1, 5), generate_pool(2, 7)
    c = concat_pools([a, b])
    assert len(c) == 12 and c.seed == 1
    np.testing.assert_array_equal(c.dim[5:], b.dim)
    with pytest.raises(ValueError, match="no pools"):
        concat_pools([])
    with pytest.raises(ValueError, match="blocks must be >= 1"):
        extended_pools(0)
    with pytest.raises(ValueError, match="block must be >= 0"):
        generate_pool(0, 10, block=-1)


@pytest.mark.parametrize("T, blocks", [(1, 1), (50, 1), (214, 1), (215, 2), (428, 2),
                                       (429, 3), (800, 4), (856, 4), (857, 5)])
def test_blocks_for(T, blocks):
    assert blocks_for(T) == blocks


def test_generate_keeps_small_tasks_and_takes_capacity():
    tasks = family.generate(2, seed=3, n_tables=12, n_devices=3)
    old = generate_tasks(family.pools()[1], 12, 3, 2, seed=3)
    for a, b in zip(tasks, old):
        np.testing.assert_array_equal(a.ids, b.ids)
    big = family.generate(1, seed=3, n_tables=12, n_devices=3, capacity=7e9)[0]
    np.testing.assert_array_equal(big.capacity, [7e9] * 3)


@pytest.mark.slow
def test_generate_800_tables_on_64_devices():
    """T = 800 needs 4 blocks (3424 tables): tasks fit 5 GB devices, ids in range."""
    task = family.generate(1, seed=1, n_tables=800, n_devices=64)[0]
    assert task.n_tables == 800 and task.n_devices == 64
    assert task.ids.max() < 4 * 428 and len(np.unique(task.ids)) == 800
    from surco.problems.sharding.baselines import torchrec_greedy
    assert plan_violations(torchrec_greedy(task), task) == []


def test_generate_beyond_one_block_fast():
    """The fast sibling: a 2-block pool of a smaller generator, drawn by generate_tasks."""
    tr, te = split_pool(generate_pool(0, 40), 0.5, seed=0)
    tr2, te2 = split_pool(generate_pool(0, 40, block=1), 0.5, seed=0)
    pool = concat_pools([te, te2])
    tasks = generate_tasks(pool, 30, 4, 2, seed=1)
    for t in tasks:
        assert t.n_tables == 30 and t.ids.max() < 40 and np.any(t.ids >= 20)
