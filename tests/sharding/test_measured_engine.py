"""The arena engine of the profiler (`measured.programs`, `timing.time_sets`): the operator it
times is the fused embedding bag's, its programs are reused across sets and plans, and the
cache keeps every measurement (draws)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.problems.sharding import measured as P
from surco.problems.sharding.measured import programs as G
from surco.problems.sharding.measured.memory import fill_device
from surco.problems.sharding.tables import TablePool, sample_lookups

B = 16
ROWS = [37, 5, 64, 23, 300]
DIMS = [8, 4, 8, 16, 8]
POOLING = [3.0, 1.0, 6.5, 0.6, 2.0]   # 0.6: some samples without lookups
SKEW = [1.1, 0.3, 0.0, 0.8, 0.5]
# one fixed arena (1 MiB) and batch for the profiler tests: their programs are shared
CFG = P.ProfilerConfig(batch_size=64, warmup=1, runs=3, arena_bytes=2 ** 20)


def _lookups(seed=0):
    rng = np.random.default_rng(seed)
    idx, seg = [], []
    for r, p, s in zip(ROWS, POOLING, SKEW):
        i, g = sample_lookups(r, p, s, B, rng)
        idx.append(i)
        seg.append(g)
    return idx, seg


def _pool(rows, dims, pooling, skew=None):
    n = len(rows)
    return TablePool(rows=np.array(rows), dim=np.array(dims), pooling=np.array(pooling, float),
                     skew=np.array(skew if skew is not None else [0.7] * n, float))


@pytest.mark.parametrize("chunk", [8, 16, 2048])
def test_arena_programs_compute_the_fused_operator(chunk):
    """Forward and backward of the arena programs equal `embedding_bag_forward` /
    `embedding_bag_backward` on the same tables and lookups, whatever the chunking
    (several chunks, a remainder loop, padding in the last chunk)."""
    idx, seg = _lookups()
    cpu = jax.devices("cpu")[0]
    layout, gi, gs = P.pack_lookups(ROWS, DIMS, idx, seg, B)
    look = G.pack_set(ROWS, DIMS, idx, seg, B, chunk)
    assert look.n_lookups == sum(i.size for i in idx)
    assert 0 <= look.padded < len(look.group_dims) * G.tail_chunk(chunk)
    rng = np.random.default_rng(1)
    tables = [rng.standard_normal((r, d)).astype(np.float32) for r, d in zip(ROWS, DIMS)]
    base, need = G.arena_layout(layout.table_rows, DIMS)
    assert need == look.arena_rows
    arena = np.zeros((need + 3, G.ARENA_WIDTH), np.float32).reshape(-1)
    for t, w in enumerate(tables):
        arena[base[t]:base[t] + w.size] = w.reshape(-1)
    arena = arena.reshape(-1, G.ARENA_WIDTH)
    fwd, bwd = G.set_programs(cpu, "float32", arena.shape[0], look, chunk, 0.1)
    out = np.asarray(fwd(jnp.asarray(arena), jnp.asarray(look.index), jnp.asarray(look.out),
                         jnp.asarray(look.loops)))
    weights = [jnp.asarray(w) for w in P.pack_weights(layout, tables)]
    ref = np.asarray(P.embedding_bag_forward(weights, [jnp.asarray(i) for i in gi],
                                             [jnp.asarray(s) for s in gs], layout=layout))
    flat = out.reshape(-1)
    blocks, col = [], 0
    for g, (d, n) in enumerate(zip(look.group_dims, look.group_tables)):
        blocks.append(flat[look.group_out[g]:look.group_out[g] + B * n * d].reshape(B, n * d))
    np.testing.assert_allclose(np.concatenate(blocks, axis=1), ref, rtol=1e-5, atol=1e-6)
    # backward: the same upstream gradient, laid out group by group in the output arena
    up = rng.standard_normal(ref.shape).astype(np.float32)
    up_arena = np.zeros(G.out_capacity(look) * G.ARENA_WIDTH, np.float32)
    col = 0
    for g, (d, n) in enumerate(zip(look.group_dims, look.group_tables)):
        up_arena[look.group_out[g]:look.group_out[g] + B * n * d] = \
            up[:, col:col + n * d].reshape(-1)
        col += n * d
    new = np.asarray(bwd(jnp.asarray(arena), jnp.asarray(look.index), jnp.asarray(look.out),
                         jnp.asarray(up_arena.reshape(-1, G.ARENA_WIDTH)),
                         jnp.asarray(look.loops))).reshape(-1)
    want = P.unpack_weights(layout, P.embedding_bag_backward(
        weights, [jnp.asarray(i) for i in gi], [jnp.asarray(s) for s in gs],
        jnp.asarray(up), layout=layout, lr=0.1))
    for t, w in enumerate(want):
        np.testing.assert_allclose(new[base[t]:base[t] + w.size].reshape(w.shape), w,
                                   rtol=1e-5, atol=1e-6)
    untouched = np.setdiff1d(np.arange(arena.size), np.concatenate(
        [np.arange(base[t], base[t] + w.size) for t, w in enumerate(tables)]))
    assert np.all(new[untouched] == 0)        # nothing outside the tables is written


def test_fixed_arena_wraps_large_sets():
    idx, seg = _lookups()
    full = G.pack_set(ROWS, DIMS, idx, seg, B, 16)
    wrapped = G.pack_set(ROWS, DIMS, idx, seg, B, 16, wrap_rows=7)
    assert full.arena_rows > 7 and wrapped.arena_rows == 7
    assert wrapped.wrapped == pytest.approx(full.arena_rows / 7)
    np.testing.assert_array_equal(wrapped.index[:, 0], full.index[:, 0] % 7)
    np.testing.assert_array_equal(wrapped.index[:, 1], full.index[:, 1])
    same = G.pack_set(ROWS, DIMS, idx, seg, B, 16, wrap_rows=10 ** 6)
    assert same.wrapped == 1.0
    np.testing.assert_array_equal(same.index, full.index)
    with pytest.raises(ValueError, match="divide 128"):
        G.pack_set([10], [3], [np.zeros(2, np.int32)], [np.zeros(2, np.int32)], B, 16)


def test_time_sets_record_and_compile_reuse():
    """Records add up (compute = fwd + bwd run by run), and sets of one size class — other
    tables, rows and access laws, equal dims and lookups — compile nothing new."""
    a = _pool([100, 3000, 50], [4, 32, 32], [1.0, 1.0, 1.0], [0.2, 1.2, 0.5])
    b = _pool([9000, 70, 640], [4, 32, 32], [1.0, 1.0, 1.0], [1.3, 0.1, 0.9])
    m = P.profile_tables(a, CFG)          # pooling 1: exactly one lookup per sample
    rec = m.raw
    assert rec["engine"] == "arena" and rec["profiler_version"] == P.PROFILER_VERSION
    # groups of 64 (dim 4) and 128 (dim 32) lookups, each padded to a tail chunk of 256
    assert rec["lookups"] == [64, 64, 64] and rec["padded_lookups"] == (256 - 64) + (256 - 128)
    assert len(rec["compute"]["runs_ms"]) == CFG.runs
    np.testing.assert_allclose(rec["compute"]["runs_ms"],
                               np.add(rec["fwd"]["runs_ms"], rec["bwd"]["runs_ms"]))
    assert rec["compute"]["median_ms"] > 0 and rec["arena_bytes"] == 2 ** 20
    assert m.rel_spread == pytest.approx(rec["compute"]["iqr_ms"]
                                         / rec["compute"]["median_ms"])
    before = P.compile_count()
    for pool in (b, a, b.subset([2, 1, 0])):
        assert P.profile_tables(pool, CFG).raw["programs_compiled"] == 0
    assert P.compile_count() == before
    # a plan: its devices measured in one session, no new program either
    x = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [1, 0]], float)
    two = _pool([100, 3000, 50, 9000, 70, 640], [4, 32, 32, 4, 32, 32], [1.0] * 6)
    plan = P.profile_plan(two, x, CFG)
    assert P.compile_count() == before and plan.cached == [False, False]
    assert np.all(plan.rel_spread >= 0)
    # a set larger than the fixed arena wraps around it
    big = P.profile_tables(_pool([40_000], [128], [1.0]), CFG)
    assert big.raw["wrapped"] == pytest.approx(40_000 / 2048)


def test_cache_keeps_every_measurement(tmp_path):
    """Draws: each fresh measurement of a set is kept under its own key; draw 0 is the
    searches'; a plan measured with draw k reads draw k."""
    pool = _pool([300, 50, 900], [16, 4, 32], [2.0, 1.0, 3.0])
    with P.MeasurementCache(tmp_path / "c.sqlite") as cache:
        ms = [P.profile_tables(pool, CFG, cache=cache, draw=k) for k in (0, 1, 2)]
        assert [m.cached for m in ms] == [False] * 3 and len(cache) == 3
        again = [P.profile_tables(pool.subset([2, 0, 1]), CFG, cache=cache, draw=k)
                 for k in (0, 1, 2)]
        assert all(m.cached for m in again)
        assert [m.compute_ms for m in again] == [m.compute_ms for m in ms]
        keys = [k for k, _ in cache.items()]
        assert [k.draw for k in keys] == [0, 1, 2]
        assert {k.setting for k in keys} == {CFG.setting(jax.devices("cpu")[0])}
        with pytest.raises(ValueError, match="draw"):
            P.profile_tables(pool, CFG, cache=cache, draw=-1)
        # plans: shared device sets measured once; draw 1 of a plan reads the draws 1
        task_pool = _pool([300, 50, 900, 70], [16, 4, 32, 8], [2.0, 1.0, 3.0, 1.0])
        x1 = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], float)   # device 0 = `pool`
        x2 = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], float)[:, ::-1]
        plans = P.profile_plans(task_pool, [x1, x2], CFG, cache=cache, draw=1)
        assert plans[0].cached == [True, False] and plans[1].cached == [True, True]
        assert plans[0].fwd_ms[0] == ms[1].fwd_ms and plans[1].fwd_ms[1] == ms[1].fwd_ms
        assert len(cache) == 4                 # + the one new set, draw 1
        model = P.MeasuredCostModel(CFG, cache=cache, draw=1)
        from surco.problems.sharding.tasks import make_task
        task = make_task(task_pool, np.arange(4), 2, capacity=1e12, check=False)
        np.testing.assert_array_equal(model.plan_costs(np.stack([x1, x2]), task),
                                      [p.cost_ms for p in plans])
        assert model.plan_cost(x1, task) == plans[0].cost_ms
    with P.MeasurementCache(tmp_path / "c.sqlite") as cache:      # kept across reopen
        assert len(cache) == 4


def test_config_of_the_arena_engine():
    cpu = jax.devices("cpu")[0]
    assert CFG.version == P.PROFILER_VERSION != P.FUSED_VERSION
    assert P.ProfilerConfig(engine="fused").version == P.FUSED_VERSION
    assert CFG.setting(cpu) == "arena/w1/r3/c2048/a1048576"
    assert P.ProfilerConfig(warmup=1, runs=3).setting(cpu) == "arena/w1/r3/c2048"
    assert P.ProfilerConfig(engine="fused").setting(cpu) == ""
    assert CFG.chunk_for(cpu) == G.CPU_CHUNK
    with pytest.raises(ValueError, match="engine"):
        P.ProfilerConfig(engine="magic")
    with pytest.raises(ValueError, match="time_step"):
        P.ProfilerConfig(time_step=True)
    with pytest.raises(ValueError, match="chunk"):
        P.ProfilerConfig(chunk=0)
    with pytest.raises(ValueError, match="at least one"):
        P.time_sets([], batch_size=4)
    assert G.capacity(1) == 1 and G.capacity(5) == 8 and G.capacity(5, 16) == 16
    u = G.upstream_for(cpu, "float32", 3)     # 3 rows: no program's (powers of two)
    assert u.shape == (3, G.ARENA_WIDTH) and G.upstream_for(cpu, "float32", 3) is u
    np.testing.assert_allclose(np.asarray(u), np.asarray(
        fill_device((3, G.ARENA_WIDTH), jnp.float32, jnp.uint32(7919))), rtol=1e-6)
