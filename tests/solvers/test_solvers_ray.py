"""solve_batch through `RayExecutor` on a local Ray instance equals solving one by one, as
the Dask executors do in test_solvers_batch.py.

Ray is the optional ``ray`` extra: these tests carry the ``ray`` marker, which the default
``make test`` (``-m "not slow and not ray"``) leaves out and ``make test-all`` runs after
installing the extra. Ray is imported inside the fixture, so collecting this file never
needs it.
"""
import time

import numpy as np
import pytest

from surco.solvers import InfeasibleError, RayExecutor, Status, make_solver
from solvers_fixtures import INFEASIBLE_LP, sharding_spec, tol

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray():
    """A local Ray instance with 2 CPUs for this module (stopped at the end)."""
    try:
        import ray
    except ImportError:
        pytest.fail('ray is not installed: the "ray" tests need the optional extra '
                    '(pip install -e ".[ray]"; make test-all installs it)')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 * 2**20)
    yield ray
    ray.shutdown()


def _costs(spec, B, seed):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(B,) + spec.shape)


def _same(batch, seq, spec, backend):
    assert len(batch) == len(seq)
    for b, s in zip(batch, seq):
        assert b.status == s.status == Status.OPTIMAL
        assert b.x.shape == spec.shape
        np.testing.assert_allclose(b.objective, s.objective, **tol(backend))
        assert spec.violation(b.x) <= 1e-6


@pytest.mark.parametrize("backend", ["highs", "scip"])
def test_ray_executor_equals_serial(ray, backend):
    """The recipe goes to the Ray workers, each builds its model once; a second batch (in
    reverse order) reuses them and still matches the serial answers."""
    spec = sharding_spec(T=8, D=3)
    solver = make_solver(spec, backend=backend)
    C = _costs(spec, 10, 7)
    seq = [make_solver(spec, backend=backend).solve(c) for c in C]
    ex = RayExecutor(2)
    assert ex._max_workers == 2
    _same(solver.solve_batch(C, executor=ex), seq, spec, backend)
    _same(solver.solve_batch(C[::-1], executor=ex), seq[::-1], spec, backend)
    # the default width is the cluster's CPUs
    assert RayExecutor()._max_workers == 2
    assert RayExecutor(num_cpus=2)._max_workers == 1


def test_ray_executor_failures_raise_or_come_back_as_status(ray):
    solver = make_solver(INFEASIBLE_LP, backend="highs")
    ex = RayExecutor(2)
    with pytest.raises(InfeasibleError, match=INFEASIBLE_LP.name):
        solver.solve_batch(np.ones((3, 2)), executor=ex)
    sols = solver.solve_batch(np.ones((3, 2)), executor=ex, check=False)
    assert [s.status for s in sols] == [Status.INFEASIBLE] * 3


def test_ray_executor_cancel_stops_the_task(ray):
    """cancel() of a running task's future stops the task at its next Python step (for
    `solve_batch`: after the current solve of its chunk) and frees its CPU: a batch after
    cancelling two 14-hour tasks of 0.05 s steps (which held both CPUs) finishes; the
    120 s bound only tells "freed" (seconds) from "not freed" (hours) apart."""
    ex = RayExecutor(2)
    busy = [ex.submit(lambda: [time.sleep(0.05) for _ in range(10**6)]) for _ in range(2)]
    time.sleep(2.0)   # let both start
    assert [f.cancel() for f in busy] == [True, True]
    assert all(f.cancelled() for f in busy)
    spec = sharding_spec(T=6, D=3)
    solver = make_solver(spec, backend="highs")
    C = _costs(spec, 4, 8)
    t0 = time.perf_counter()
    _same(solver.solve_batch(C, executor=ex), [solver.solve(c) for c in C], spec, "highs")
    assert time.perf_counter() - t0 < 120.0
    done = ex.submit(sum, [1, 2, 3])
    assert done.result(timeout=30) == 6 and not done.cancel()


def test_ray_executor_bad_arguments(ray):
    with pytest.raises(ValueError, match=r"RayExecutor: max_workers must be a positive int "
                                         r"or None, got 0"):
        RayExecutor(0)
    with pytest.raises(ValueError, match=r"RayExecutor: num_cpus must be a positive number, "
                                         r"got -1"):
        RayExecutor(2, num_cpus=-1)
    ex = RayExecutor(2)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="RayExecutor: cannot submit after shutdown"):
        ex.submit(sum, [1])
