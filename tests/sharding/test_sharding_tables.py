"""The table pool generator, the index sampler and DreamShard features (issue 5)."""
import numpy as np
import pytest

from surco.problems.sharding import tables as tb
from surco.problems.sharding.cost import expected_unique_rows


@pytest.fixture(scope="module")
def pool():
    return tb.generate_pool(0)


def test_pool_deterministic_per_seed(pool):
    again = tb.generate_pool(0)
    other = tb.generate_pool(1)
    for name in ("rows", "dim", "pooling", "skew"):
        np.testing.assert_array_equal(getattr(pool, name), getattr(again, name))
    assert not np.array_equal(pool.rows, other.rows)
    assert len(pool) == 856 and pool.seed == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pool_statistics_in_documented_ranges(seed):
    p = tb.generate_pool(seed)
    # dims uniform over {4, ..., 128}: each within 1/6 +- 0.05 of 856 tables
    assert set(np.unique(p.dim)) <= set(tb.DIMS)
    freq = np.array([(p.dim == d).mean() for d in tb.DIMS])
    assert np.all(np.abs(freq - 1 / 6) < 0.05), freq
    # rows: truncated log-normal, median ~ 10^5.4, bounded, and the size bound holds
    assert p.rows.min() >= 10 and p.rows.max() <= 10 ** tb.ROWS_LOG10_MAX
    assert np.all(p.size_bytes() <= tb.MAX_TABLE_BYTES)
    med = np.median(np.log10(p.rows))
    assert 5.3 < med < 5.8, med
    # heavy tail: the largest 10% of tables hold most of the memory
    s = np.sort(p.size_bytes())[::-1]
    assert s[: len(s) // 10].sum() > 0.5 * s.sum()
    # pooling: ~30% one-hot, multi-hot median ~ 8, bounded by 200
    one_hot = p.pooling == 1.0
    assert abs(one_hot.mean() - tb.ONE_HOT_FRACTION) < 0.06
    assert p.pooling.min() >= 1.0 and p.pooling.max() <= tb.POOLING_MAX
    assert 6.0 < np.median(p.pooling[~one_hot]) < 10.0
    assert p.pooling.max() > 50  # heavy tail reaches dozens of lookups
    # skew uniform on [0.2, 1.4]
    assert p.skew.min() >= tb.SKEW_MIN and p.skew.max() <= tb.SKEW_MAX
    assert abs(p.skew.mean() - 0.8) < 0.05


def test_dlrm50_memory_in_documented_range(pool):
    rng = np.random.default_rng(0)
    sizes = pool.size_bytes()
    totals = np.array([sizes[rng.choice(len(pool), 50, replace=False)].sum()
                       for _ in range(2000)]) / 1e9
    assert 9.5 < np.median(totals) < 11.5
    assert np.percentile(totals, 99) < 20.0  # 4 x 5 GB have room in total
    assert np.percentile(totals, 95) > 14.0  # heavy tail: some tasks fill 70 % of it


def test_split_pool(pool):
    tr, te = tb.split_pool(pool, 0.5, seed=3)
    assert len(tr) == 428 and len(te) == 428
    key = lambda p: set(zip(p.rows.tolist(), p.dim.tolist(), p.pooling.tolist()))
    assert not key(tr) & key(te)
    tr2, _ = tb.split_pool(pool, 0.5, seed=3)
    np.testing.assert_array_equal(tr.rows, tr2.rows)
    with pytest.raises(ValueError, match="train_fraction"):
        tb.split_pool(pool, 1.0)


def test_pool_validation():
    with pytest.raises(ValueError, match="dim"):
        tb.TablePool(rows=[10], dim=[5], pooling=[1.0], skew=[1.0])
    with pytest.raises(ValueError, match="entries"):
        tb.TablePool(rows=[10, 20], dim=[4], pooling=[1.0], skew=[1.0])
    with pytest.raises(ValueError, match="pooling"):
        tb.TablePool(rows=[10], dim=[4], pooling=[0.0], skew=[1.0])
    with pytest.raises(ValueError, match="subset"):
        tb.generate_pool(0, 5).subset([7])
    with pytest.raises(ValueError, match="n_tables"):
        tb.generate_pool(0, 0)


def test_sample_lookups_shapes_and_laws():
    rng = np.random.default_rng(0)
    rows, pooling, skew, B = 5000, 7.5, 1.1, 4096
    idx, seg = tb.sample_lookups(rows, pooling, skew, B, rng)
    assert idx.dtype == np.int32 and seg.dtype == np.int32 and idx.shape == seg.shape
    assert idx.min() >= 0 and idx.max() < rows
    assert np.all(np.diff(seg) >= 0) and seg.min() >= 0 and seg.max() < B
    counts = np.bincount(seg, minlength=B)
    assert counts.min() >= 1  # pooling >= 1: every sample looks up a row
    assert abs(counts.mean() - pooling) < 0.15
    # Zipf law over ranks: the hottest row's share matches the power law's first-rank mass
    top = rows + 1.0
    e = 1.0 - skew
    p1 = (2.0 ** e - 1.0) / (top ** e - 1.0)
    _, c = np.unique(idx, return_counts=True)
    assert abs(c.max() / idx.size - p1) < 0.01
    # the hot rows are scattered by the fixed permutation, and it is the same every call
    hot = np.bincount(idx, minlength=rows).argsort()[-5:]
    idx2, _ = tb.sample_lookups(rows, pooling, skew, B, np.random.default_rng(1))
    hot2 = np.bincount(idx2, minlength=rows).argsort()[-5:]
    assert hot[-1] == hot2[-1] and hot[-1] != 0


def test_sample_lookups_fractional_pooling_and_errors():
    idx, seg = tb.sample_lookups(100, 0.3, 0.0, 20000, np.random.default_rng(0))
    assert abs(idx.size / 20000 - 0.3) < 0.02
    for kw, msg in [(dict(rows=0), "rows"), (dict(pooling=-1.0), "pooling"),
                    (dict(skew=-0.5), "skew"), (dict(batch_size=0), "batch_size")]:
        args = dict(rows=10, pooling=2.0, skew=1.0, batch_size=8) | kw
        with pytest.raises(ValueError, match=msg):
            tb.sample_lookups(rng=np.random.default_rng(0), **args)


@pytest.mark.parametrize("rows,skew,pooling", [(5000, 1.3, 20.0), (2_000_000, 0.5, 3.0),
                                               (120_000, 1.0, 10.0)])
def test_expected_unique_rows_matches_sampler(rows, skew, pooling):
    B = 16384
    idx, _ = tb.sample_lookups(rows, pooling, skew, B, np.random.default_rng(0))
    _, c = np.unique(idx, return_counts=True)
    u1, u2 = expected_unique_rows(rows, skew, idx.size)
    assert abs(u1 - c.size) < 0.02 * c.size + 20
    assert abs(u2 - (c >= 2).sum()) < 0.03 * (c >= 2).sum() + 20


def test_table_features(pool):
    sub = pool.subset(np.arange(20))
    F = tb.table_features(sub, batch_size=1024)
    assert F.shape == (20, 4 + tb.N_HIST_BINS) and len(tb.FEATURE_NAMES) == F.shape[1]
    np.testing.assert_array_equal(F[:, 0], sub.dim)
    np.testing.assert_array_equal(F[:, 3], sub.size_bytes())
    np.testing.assert_allclose(F[:, 4:].sum(1), 1.0)
    # deterministic, and independent of the table's position in the pool
    F2 = tb.table_features(sub.subset(np.arange(19, -1, -1)), batch_size=1024)
    np.testing.assert_array_equal(F2[::-1], F)
    # skewed tables put their lookups in high-count bins
    mean_bin = F[:, 4:] @ np.arange(tb.N_HIST_BINS)
    hot = sub.skew > 1.1
    cold = sub.skew < 0.5
    if hot.any() and cold.any():
        assert mean_bin[hot].mean() > mean_bin[cold].mean()
    S = tb.scale_features(F)
    assert np.all(np.abs(S) <= 1.5)


def test_access_histogram_bins():
    h = tb.access_histogram(np.array([1, 2, 2, 3, 3, 3, 3]))
    # row 1 once (bin 0), row 2 twice (bin 1), row 3 four times (bin 2)
    np.testing.assert_allclose(h[:3], [1 / 7, 2 / 7, 4 / 7])
    assert tb.access_histogram(np.array([], np.int32)).sum() == 0
