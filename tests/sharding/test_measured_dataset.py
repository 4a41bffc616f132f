"""The measured-dataset builder: determinism, resume from the cache, export round trip."""
import numpy as np
import pytest

from surco.problems.sharding import measured as P
from surco.problems.sharding.measured import (MeasurementCache, ProfiledDataset, build_dataset,
                                              draw_subset)
from surco.problems.sharding.tables import FEATURE_NAMES, TablePool

CFG = P.ProfilerConfig(batch_size=64, warmup=0, runs=2, arena_bytes=2 ** 20)  # one arena
POOL = TablePool(rows=np.array([50, 400, 3000, 120, 900, 60, 2000, 75]),
                 dim=np.array([4, 8, 16, 4, 32, 8, 4, 16]),
                 pooling=np.array([1.0, 2.0, 5.0, 1.0, 3.0, 8.0, 1.5, 2.5]),
                 skew=np.array([0.5, 1.0, 1.2, 0.2, 0.8, 0.9, 1.1, 0.3]), seed=3)


def test_subsets_are_deterministic_and_respect_memory():
    a = draw_subset(POOL, 5, seed=1, min_tables=2, max_tables=4, max_bytes=1e9)
    b = draw_subset(POOL, 5, seed=1, min_tables=2, max_tables=4, max_bytes=1e9)
    np.testing.assert_array_equal(a, b)
    assert 2 <= a.size <= 4 and np.all(np.diff(a) > 0)
    sizes = POOL.size_bytes()
    for i in range(30):
        ids = draw_subset(POOL, i, seed=0, min_tables=1, max_tables=3, max_bytes=20_000)
        assert sizes[ids].sum() <= 20_000
    with pytest.raises(ValueError, match="no subset"):
        draw_subset(POOL, 0, seed=0, min_tables=3, max_tables=3, max_bytes=10)


def test_build_resume_and_round_trip(tmp_path):
    path = tmp_path / "cache.sqlite"
    ds = build_dataset(POOL, 4, min_tables=1, max_tables=3, profiler=CFG, cache=path,
                       num_devices=4, progress=False)
    uniq = len({tuple(s[s >= 0]) for s in ds.subsets})   # a repeated draw is a cache hit
    assert ds.meta["measured_now"] == uniq and ds.meta["from_cache"] == 4 - uniq
    assert ds.meta["complete"] and ds.meta["platform"] == "cpu"
    assert ds.features.shape == (len(POOL), len(FEATURE_NAMES))
    assert np.all(ds.fwd_ms > 0) and np.all(ds.bwd_ms > 0)
    # the modelled send time is the profiler's communication model: forward + backward,
    # 2 * B (D-1)/D * sum(dim) * 4 bytes over the link
    dsum = np.array([POOL.dim[s[s >= 0]].sum() for s in ds.subsets])
    np.testing.assert_allclose(ds.send_ms, 2 * 64 * (3 / 4) * dsum * 4
                               / (CFG.link_gbps * 1e9) * 1e3, rtol=1e-12)
    # resume: the first 4 come from the cache, unchanged; 2 more are measured
    more = build_dataset(POOL, 6, min_tables=1, max_tables=3, profiler=CFG, cache=path,
                         num_devices=4, progress=False)
    uniq6 = len({tuple(s[s >= 0]) for s in more.subsets})
    assert more.meta["measured_now"] == uniq6 - uniq
    assert more.meta["from_cache"] == 6 - (uniq6 - uniq)
    np.testing.assert_array_equal(more.fwd_ms[:4], ds.fwd_ms)
    np.testing.assert_array_equal(more.subsets[:4, :ds.subsets.shape[1]], ds.subsets)
    with MeasurementCache(path) as c:
        assert len(c) == len({tuple(s[s >= 0]) for s in more.subsets})
    # export round trip
    out = more.save(tmp_path / "profiled_test.npz")
    back = ProfiledDataset.load(out)
    for k in ProfiledDataset._ARRAYS:
        np.testing.assert_array_equal(getattr(back, k), getattr(more, k))
    assert back.meta == more.meta
    f, m = back.subset_features()
    assert f.shape == (6, back.subsets.shape[1], len(FEATURE_NAMES))
    assert np.all(f[~m] == 0)
    sub = back.take([1, 3])
    np.testing.assert_array_equal(sub.fwd_ms, back.fwd_ms[[1, 3]])


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="n_subsets"):
        build_dataset(POOL, 0, profiler=CFG, cache=tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="max_tables"):
        build_dataset(POOL, 2, min_tables=3, max_tables=2, profiler=CFG,
                      cache=tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="no subset was measured"):
        build_dataset(POOL, 2, max_tables=3, profiler=CFG, cache=tmp_path / "c.sqlite",
                      max_seconds=0, progress=False)
    junk = tmp_path / "junk.npz"
    np.savez(junk, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a profiled dataset"):
        ProfiledDataset.load(junk)


def test_dataset_configuration_is_the_keyword_form(tmp_path):
    """A `DatasetConfig` and its keywords draw the same subsets (a second build reads them
    back from the cache); keywords replace fields; bad settings are named."""
    cfg = P.DatasetConfig.of(min_tables=1, max_tables=3, seed=4, progress=False, profiler=CFG)
    assert dict(cfg) == {"min_tables": 1, "max_tables": 3, "seed": 4, "progress": False,
                         "profiler": CFG}
    path = tmp_path / "c.sqlite"
    a = build_dataset(POOL, 5, cfg, cache=path)
    b = build_dataset(POOL, 5, cache=path, **cfg)
    c = build_dataset(POOL, 5, cfg.replace(seed=0), cache=path, seed=4)
    for ds in (b, c):
        np.testing.assert_array_equal(ds.subsets, a.subsets)
        np.testing.assert_array_equal(ds.fwd_ms, a.fwd_ms)
        assert ds.meta["subset_seed"] == 4 and ds.meta["from_cache"] == 5
    for bad, msg in [({"num_devices": 1}, "build_dataset: num_devices must be an integer >= 2"),
                     ({"min_tables": 0}, "build_dataset: min_tables must be an integer >= 1"),
                     ({"max_seconds": -1}, "max_seconds must be a finite number >= 0"),
                     ({"max_bytes": 0}, "build_dataset: max_bytes must be a finite number > 0")]:
        with pytest.raises(ValueError, match=msg):
            P.DatasetConfig.of(**bad)
    with pytest.raises(TypeError, match="profiler must be a ProfilerConfig"):
        P.DatasetConfig(profiler={"runs": 2})
    with pytest.raises(TypeError, match="'config'"):    # the profiler's settings: profiler=
        build_dataset(POOL, 2, config=CFG, cache=path)


def test_held_out_tables_split_and_remeasure(tmp_path):
    """Every 3rd subset is drawn among the held-out tables only, the others among the rest;
    `split_by_table` returns exactly those; `remeasure` measures the same subsets again as
    a new draw, stored apart."""
    held = np.array([0, 2, 5])
    ds = build_dataset(POOL, 9, min_tables=1, max_tables=2, profiler=CFG,
                       cache=tmp_path / "c.sqlite", progress=False, held_out_tables=held,
                       held_out_every=3)
    assert ds.meta["held_out_tables"] == [0, 2, 5] and ds.meta["draw"] == 0
    for i, s in enumerate(ds.subsets):
        ids = s[s >= 0]
        assert np.all(np.isin(ids, held)) == (i % 3 == 0)
        assert np.any(np.isin(ids, held)) == (i % 3 == 0)
    train, test = P.split_by_table(ds)
    np.testing.assert_array_equal(test, [0, 3, 6])
    np.testing.assert_array_equal(train, [1, 2, 4, 5, 7, 8])
    with MeasurementCache(tmp_path / "c.sqlite") as cache:
        n = len(cache)
        again = P.remeasure(ds, test, draw=1, config=CFG, cache=cache)
        assert again.shape == (3,) and np.all(again > 0)
        assert len(cache) == n + len({tuple(s[s >= 0]) for s in ds.subsets[test]})
        np.testing.assert_array_equal(P.remeasure(ds, test, draw=1, config=CFG, cache=cache),
                                      again)             # read back, not measured again
        with pytest.raises(ValueError, match="draw must be >= 1"):
            P.remeasure(ds, test, draw=0, config=CFG, cache=cache)
    whole = build_dataset(POOL, 3, max_tables=2, profiler=CFG, cache=tmp_path / "c.sqlite",
                          progress=False)
    with pytest.raises(ValueError, match="held_out_tables"):
        P.split_by_table(whole)
