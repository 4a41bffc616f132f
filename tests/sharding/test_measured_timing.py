"""Profiler timing, memory refusal, plan cost and the communication model (CPU, small)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.problems.sharding import measured as P
from surco.problems.sharding.comm import alltoall_ms, exchange_ms, pooled_bytes
from surco.problems.sharding.cost import DEFAULT_COST_MODEL
from surco.problems.sharding.measured import MeasurementCache
from surco.problems.sharding.tables import TablePool
from surco.problems.sharding.tasks import make_task

CFG = P.ProfilerConfig(batch_size=256, warmup=1, runs=5)


def _alltoall(dim_sum, batch, *, link_gbps, link_latency_us, bytes_per_element):
    """Each device's all-to-all time (the larger of its send and receive side) of a plan
    whose devices hold pooled outputs of widths ``dim_sum``: the profiler's use of the one
    communication model (`comm`)."""
    D = len(dim_sum)
    send = exchange_ms(pooled_bytes(dim_sum, batch, D, bytes_per_element), link_gbps * 1e9)
    return alltoall_ms(send, latency_us=link_latency_us).max(axis=0)


def _pool(rows, dims, pooling, skew=None):
    n = len(rows)
    return TablePool(rows=np.array(rows), dim=np.array(dims), pooling=np.array(pooling, float),
                     skew=np.array(skew if skew is not None else [0.8] * n, float))


LIGHT = _pool([100], [4], [1.0])
HEAVY = _pool([20000, 30000, 5000], [128, 64, 128], [40.0, 30.0, 50.0])


def _check_summary(s):
    for k in ("median_ms", "iqr_ms", "min_ms", "max_ms"):
        assert math.isfinite(s[k]) and s[k] >= 0, (k, s)
    assert s["min_ms"] > 0
    assert s["min_ms"] <= s["median_ms"] <= s["max_ms"]
    assert len(s["runs_ms"]) == CFG.runs


def test_timing_is_positive_finite_and_orders_workloads():
    light, heavy = [], []
    for _ in range(2):   # measured twice: the order must not flip
        for pool, out in ((LIGHT, light), (HEAVY, heavy)):
            m = P.profile_tables(pool, CFG)
            _check_summary(m.raw["fwd"])
            _check_summary(m.raw["bwd"])
            assert m.compile_s > 0 and not m.cached
            assert m.raw["batch_size"] == 256 and m.raw["device_kind"] == "cpu"
            assert m.raw["clock"] == "process"     # CPU time: robust to other processes
            out.append(m.compute_ms)
    # HEAVY gathers ~2000x the floats of LIGHT (whose time is mostly the fixed cost of a
    # run: dispatch, synchronisation, the arena engine's loops over the possible dims)
    assert min(heavy) > 2 * max(light), (light, heavy)


def test_fused_step_timing_and_float16():
    cfg = P.ProfilerConfig(batch_size=128, warmup=1, runs=3, time_step=True, dtype="float16",
                           engine="fused")
    m = P.profile_tables(_pool([3000, 700], [32, 8], [5.0, 2.0]), cfg)
    assert m.raw["dtype"] == "float16"
    assert m.raw["table_bytes"] == (3000 * 32 + 700 * 8) * 2
    for k in ("fwd", "bwd", "step"):
        assert m.raw[k]["min_ms"] > 0 and math.isfinite(m.raw[k]["max_ms"])


def test_same_set_any_order_one_signature_and_cache_hit(tmp_path):
    pool = _pool([300, 50, 900], [16, 4, 32], [2.0, 1.0, 3.0], [0.2, 0.9, 1.3])
    rev = pool.subset([2, 1, 0])
    assert P.table_signature(pool) == P.table_signature(rev)
    assert P.table_signature(pool) != P.table_signature(pool.subset([0, 1]))
    with MeasurementCache(tmp_path / "c.sqlite") as cache:
        m1 = P.profile_tables(pool, CFG, cache=cache)
        m2 = P.profile_tables(rev, CFG, cache=cache)
        assert not m1.cached and m2.cached
        assert m2.fwd_ms == m1.fwd_ms and m2.bwd_ms == m1.bwd_ms
        # another batch size is another measurement
        m3 = P.profile_tables(pool, P.ProfilerConfig(batch_size=128, warmup=0, runs=2),
                              cache=cache)
        assert not m3.cached and len(cache) == 2


def test_too_large_tables_are_refused_before_allocation():
    import resource
    huge = _pool([2 ** 31 - 1, 1000], [128, 8], [1.0, 1.0])   # ~1 TiB of weights
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss       # KiB on Linux
    with pytest.raises(P.TableTooLargeError) as e:
        P.profile_tables(huge, CFG)
    # refused before allocating: the process's peak memory grew by less than 256 MiB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 256 * 1024
    msg = str(e.value)
    assert "1024.000 GiB of weights" in msg and "2147483647 x 128" in msg
    assert "Nothing was allocated" in msg
    small_limit = P.ProfilerConfig(batch_size=256, memory_limit_bytes=10_000)
    with pytest.raises(P.TableTooLargeError, match="memory_limit_bytes"):
        P.profile_tables(_pool([1000], [8], [1.0]), small_limit)   # 32 kB > 10 kB
    # workspace counts too: tiny table, but a batch whose lookups do not fit
    with pytest.raises(P.TableTooLargeError, match="workspace"):
        P.time_step([10], [128], [np.zeros(100_000, np.int32)],
                    [np.repeat(np.arange(256, dtype=np.int32), 391)[:100_000]],
                    batch_size=256, config=P.ProfilerConfig(memory_limit_bytes=50_000_000))
    limit, source = P.device_memory_limit(jax.devices("cpu")[0])
    assert limit > 0 and "available RAM" in source


def test_alltoall_model_is_the_analytic_models_communication_term():
    pool = _pool([1000, 2000, 3000, 4000, 5000, 600], [4, 8, 16, 32, 128, 64], [1.0] * 6)
    task = make_task(pool, np.arange(6), 3, capacity=1e12, check=False)
    x = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]],
                 np.float32)
    _, comm = DEFAULT_COST_MODEL.stage_costs(jnp.asarray(x), task)   # (send, recv) x devices
    analytic = np.asarray(comm).max(axis=0)
    B = DEFAULT_COST_MODEL.batch_per_device * 3
    ours = _alltoall(np.array([12.0, 176.0, 64.0]), B,
                         link_gbps=P.ProfilerConfig().link_gbps, link_latency_us=0.0,
                         bytes_per_element=4)
    np.testing.assert_allclose(ours, analytic, rtol=1e-5)
    # closed form of device 1 (it sends more than it receives): 2 * B (D-1)/D * S * 4 / bw
    assert ours[1] == pytest.approx(2 * B * (2 / 3) * 176 * 4 / 51.2e9 * 1e3)
    # device 0 receives more than it sends: 2 * B/D * (176 + 64) * 4 / bw
    assert ours[0] == pytest.approx(2 * B / 3 * 240 * 4 / 51.2e9 * 1e3)
    lat = _alltoall(np.array([0.0, 0.0]), 10, link_gbps=1, link_latency_us=3,
                        bytes_per_element=4)
    np.testing.assert_allclose(lat, 2 * 3e-3)
    assert np.all(_alltoall(np.array([7.0]), 10, link_gbps=1, link_latency_us=3,
                                bytes_per_element=4) == 0.0)


def test_plan_cost_is_max_over_devices_of_measured_plus_modelled(tmp_path):
    pool = _pool([500, 800, 60, 2000], [16, 32, 4, 64], [3.0, 2.0, 1.0, 6.0])
    x = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], float)  # device 2 empty
    with MeasurementCache(tmp_path / "c.sqlite") as cache:
        plan = P.profile_plan(pool, x, CFG, cache=cache)
        assert plan.fwd_ms[2] == 0 and plan.bwd_ms[2] == 0
        assert plan.cached == [False, False, None]
        for d, ids in ((0, [0, 2]), (1, [1, 3])):
            m = P.profile_tables(pool.subset(ids), CFG, cache=cache)
            assert m.cached
            assert plan.fwd_ms[d] == m.fwd_ms and plan.bwd_ms[d] == m.bwd_ms
        comm = _alltoall(np.array([20.0, 96.0, 0.0]), 256, link_gbps=CFG.link_gbps,
                             link_latency_us=CFG.link_latency_us, bytes_per_element=4)
        np.testing.assert_allclose(plan.comm_ms, comm)
        assert comm[2] > 0    # the empty device still receives its batch slice
        np.testing.assert_allclose(plan.device_ms,
                                   plan.fwd_ms + plan.bwd_ms + plan.comm_ms.max())
        assert plan.cost_ms == pytest.approx((plan.fwd_ms + plan.bwd_ms).max()
                                             + comm.max())
        assert "modelled, not measured" in plan.comm_note
    with pytest.raises(ValueError, match="exactly one device"):
        P.profile_plan(pool, np.zeros((4, 3)), CFG)
    with pytest.raises(ValueError, match="0 or 1"):
        P.profile_plan(pool, np.full((4, 3), 0.5), CFG)
    with pytest.raises(ValueError, match="4 tables"):
        P.profile_plan(pool, np.eye(3), CFG)


def test_measured_cost_model_is_profile_plan(tmp_path):
    """The profiler as a `ShardingCostModel`: its stages, device costs, plan cost and
    evaluate are those of `profile_plan` on the task's tables; a problem judged by it."""
    from surco.problems.sharding import ShardingCostModel, sharding_problem
    pool = _pool([500, 800, 60, 2000], [16, 32, 4, 64], [3.0, 2.0, 1.0, 6.0])
    task = make_task(pool, np.arange(4), 3, capacity=1e12, check=False)
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]], float)
    with MeasurementCache(tmp_path / "c.sqlite") as cache:
        model = P.MeasuredCostModel(CFG, cache=cache)
        assert isinstance(model, ShardingCostModel) and not model.differentiable
        plan = P.profile_plan(pool, x, CFG, cache=cache)
        compute, sides = model.stage_costs(x, task)
        np.testing.assert_array_equal(compute, plan.fwd_ms + plan.bwd_ms)
        np.testing.assert_allclose(sides, plan.alltoall)
        np.testing.assert_allclose(sides.max(axis=0), plan.comm_ms)
        np.testing.assert_array_equal(model.device_costs(x, task), plan.device_ms)
        assert model.plan_cost(x, task) == plan.cost_ms == model.evaluate(x, task)
        prob = sharding_problem(truth=model)
        assert prob.evaluate(x, task) == plan.cost_ms
        with pytest.raises(ValueError, match="0 or 1"):
            model.evaluate(np.full((4, 3), 1 / 3), task)


def test_config_validation():
    with pytest.raises(ValueError, match="dtype"):
        P.ProfilerConfig(dtype="bfloat8")
    with pytest.raises(ValueError, match="batch_size"):
        P.ProfilerConfig(batch_size=0)
    with pytest.raises(ValueError, match="runs"):
        P.ProfilerConfig(runs=0)
    with pytest.raises(ValueError, match="link_gbps"):
        P.ProfilerConfig(link_gbps=0.0)
    cpu = jax.devices("cpu")[0]
    assert P.ProfilerConfig().batch_for(cpu) == P.CPU_BATCH_SIZE
    assert P.ProfilerConfig(batch_size=77).batch_for(cpu) == 77
    with pytest.raises(ValueError, match="at least one table"):
        P.profile_tables(_pool([], [], []), CFG)


def test_weight_buffers_are_kept_reused_and_bounded():
    cpu = jax.devices("cpu")[0]
    fused = P.ProfilerConfig(batch_size=256, warmup=1, runs=5, engine="fused")
    P.release_buffers()
    assert P.held_bytes(cpu) == 0
    a = _pool([4000, 1000], [32, 8], [2.0, 1.0])
    P.profile_tables(a, fused)
    assert P.held_bytes(cpu) == (4000 * 32 + 1000 * 8) * 4
    # a smaller set of the same dims reuses the kept buffers: nothing new is held
    P.profile_tables(_pool([3000, 10], [32, 8], [1.0, 1.0]), fused)
    assert P.held_bytes(cpu) == (4000 * 32 + 1000 * 8) * 4
    # under a limit that cannot hold both, buffers of other dims are given back first
    limit = P.ProfilerConfig(batch_size=256, warmup=0, runs=1, memory_limit_bytes=1_100_000,
                             engine="fused")
    P.profile_tables(_pool([3000], [64], [1.0]), limit)
    assert P.held_bytes(cpu) == 3000 * 64 * 4
    assert P.release_buffers(cpu) == 3000 * 64 * 4 and P.held_bytes(cpu) == 0
    # the arena engine keeps one arena: exactly a set's rows, grown by half when too small
    from surco.problems.sharding.measured.programs import arena_layout
    P.profile_tables(a, CFG)
    rows = arena_layout([4000, 1000], [32, 8])[1]
    assert rows == 1000 + 63 and P.held_bytes(cpu) == rows * 128 * 4
    P.profile_tables(_pool([30, 1000], [32, 8], [1.0, 1.0]), CFG)     # fits: kept as is
    assert P.held_bytes(cpu) == rows * 128 * 4
    P.profile_tables(_pool([8000, 1000], [32, 8], [1.0, 1.0]), CFG)   # 2063 > 1.5 x 1063
    assert P.held_bytes(cpu) == (2000 + 63) * 128 * 4
    P.release_buffers(cpu)


class _FakeGPU:
    """Stands in for a CUDA device: only what the profiler reads before allocating."""
    platform, device_kind, id = "gpu", "Fake GPU 1GB", 77

    def memory_stats(self):
        return {"bytes_limit": 2 ** 30, "bytes_in_use": 2 ** 28}


def test_gpu_settings_and_refusal_before_touching_the_device():
    gpu = _FakeGPU()
    assert P.ProfilerConfig().batch_for(gpu) == P.GPU_BATCH_SIZE == 65536
    assert P.ProfilerConfig.clock_for(gpu) == "wall"
    assert P.ProfilerConfig.clock_for(jax.devices("cpu")[0]) == "process"
    limit, source = P.device_memory_limit(gpu)
    assert limit == int(0.9 * (2 ** 30 - 2 ** 28)) and "Fake GPU" in source
    big = _pool([4_000_000, 10], [128, 4], [1.0, 1.0])      # 2.05 GB of weights
    with pytest.raises(P.TableTooLargeError, match=r"1\.907 GiB of weights.*Fake GPU"):
        P.profile_tables(big, P.ProfilerConfig(), device=gpu)
