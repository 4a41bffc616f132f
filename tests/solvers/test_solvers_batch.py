"""solve_batch equals solving one by one, sequentially, with threads, with processes (spawn)
and with a Dask executor (Ray: test_solvers_ray.py, the optional ``ray`` extra)."""
import multiprocessing as mp
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from surco.solvers import (AssignmentOracle, InfeasibleError, RayExecutor, ShortestPathOracle,
                           SolverError, SolverStack, Status, UnboundedError, clear_worker_cache,
                           make_solver)
from surco.solvers import batching as solvers_base
from solvers_fixtures import (ALL_BACKENDS, INFEASIBLE_LP, SHORTEST_PATH, UNBOUNDED_LP, Picky,
                              grid_edges, sharding_spec, takes, tol)


@pytest.fixture(scope="module")
def process_pool():
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        yield ex


def _spec_for(backend):
    """A spec the backend takes: small sharding MILP (MIP backends) or a grid flow LP."""
    spec = sharding_spec(T=8, D=3)
    if takes(backend, spec):
        return spec
    return ShortestPathOracle(16, grid_edges(4, 4), 0, 15).spec


def _costs(spec, B, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(B,) + spec.shape)


def _same(batch, seq, spec, backend):
    assert len(batch) == len(seq)
    for b, s in zip(batch, seq):
        assert b.status == s.status == Status.OPTIMAL
        assert b.x.shape == spec.shape
        np.testing.assert_allclose(b.objective, s.objective, **tol(backend))
        assert spec.violation(b.x) <= (1e-4 if backend == "pdlp" else 1e-6)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_batch_equals_sequential_threads_and_processes(backend, process_pool):
    spec = _spec_for(backend)
    solver = make_solver(spec, backend=backend)
    C = _costs(spec, 9, ALL_BACKENDS.index(backend))
    seq = [make_solver(spec, backend=backend).solve(c) for c in C]
    _same(solver.solve_batch(C), seq, spec, backend)
    with ThreadPoolExecutor(2) as ex:
        _same(solver.solve_batch(C, executor=ex), seq, spec, backend)
        _same(solver.solve_batch(C.reshape(len(C), -1), executor=ex), seq, spec, backend)
    _same(solver.solve_batch(C, executor=process_pool), seq, spec, backend)
    # a second batch reuses the workers' cached models and still matches
    _same(solver.solve_batch(C[::-1], executor=process_pool), seq[::-1], spec, backend)


def test_thread_workers_build_one_model_each_and_reuse_it():
    spec = sharding_spec(T=8, D=3)
    solver = make_solver(spec, backend="highs")
    built = []

    def factory():
        built.append(threading.get_ident())
        return make_solver(spec, backend="highs")

    solver.factory = lambda: factory  # count builds through the recipe that workers get
    C = _costs(spec, 8, 0)
    with ThreadPoolExecutor(2) as ex:
        solver.solve_batch(C, executor=ex)
        solver.solve_batch(C, executor=ex)
    assert 1 <= len(built) <= 2 and len(set(built)) == len(built)
    clear_worker_cache()
    assert not solvers_base._WORKER_CACHE


def test_batch_failures_raise_or_come_back_as_status(process_pool):
    solver = make_solver(INFEASIBLE_LP, backend="highs")
    C = np.ones((3, 2))
    with ThreadPoolExecutor(2) as ex:
        with pytest.raises(InfeasibleError, match=INFEASIBLE_LP.name):
            solver.solve_batch(C, executor=ex)
        sols = solver.solve_batch(C, executor=ex, check=False)
    assert [s.status for s in sols] == [Status.INFEASIBLE] * 3
    with pytest.raises(InfeasibleError, match=INFEASIBLE_LP.name):
        solver.solve_batch(C, executor=process_pool)


def _run_batch(path, solver, C, pool, check=True):
    """``solver.solve_batch(C)`` sequentially, on 2 threads or on the process pool."""
    if path == "sequential":
        return solver.solve_batch(C, check=check)
    if path == "processes":
        return solver.solve_batch(C, executor=pool, check=check)
    with ThreadPoolExecutor(2) as ex:
        return solver.solve_batch(C, executor=ex, check=check)


def _check_partial(err, B, bad, ok):
    """``err.partial``: B entries; the items before ``bad`` (solved first, in order) are
    kept, ``bad`` is None, every kept one satisfies ``ok``."""
    assert err.item == bad and len(err.partial) == B and err.partial[bad] is None
    assert all(p is not None for p in err.partial[:bad])
    for p in err.partial:
        assert p is None or ok(p)


@pytest.mark.parametrize("path", ["sequential", "threads", "processes", "stack"])
def test_batch_failure_names_the_item_and_keeps_finished_items(path, process_pool):
    """Item 3 of 8 is unbounded (cost (-1, -1) over x0 - x1 <= 1, x >= 0); the others have
    the optimum 0 at x = 0. With guided chunks of 2 threads ([2, 2, 1, 1, 1, 1]) it sits in
    the second chunk."""
    B, bad = 8, 3
    C = np.tile([1.0, 2.0], (B, 1))
    C[bad] = -1.0
    solver = make_solver(UNBOUNDED_LP, backend="highs")
    name = "'unbounded_lp' is unbounded"
    if path == "stack":    # a stack of two members: the item's second member is unbounded
        solver = SolverStack([make_solver(UNBOUNDED_LP, backend="highs") for _ in range(2)])
        C = np.stack([np.tile([1.0, 2.0], (B, 1)), C], axis=1)
        name = "'unbounded_lp and 1 more instances' is unbounded: member 1"
    with pytest.raises(UnboundedError, match=rf"^item 3 of 8: {name}") as info:
        _run_batch("threads" if path == "stack" else path, solver, C, process_pool)
    _check_partial(info.value, B, bad, lambda p: p.status == Status.OPTIMAL
                   and p.objective == 0.0 and not p.x.any())
    # without check, nothing is raised: the failed item comes back as a status
    sols = _run_batch("threads" if path == "stack" else path, solver, C, process_pool,
                      check=False)
    assert [s.status for s in sols] == [Status.OPTIMAL] * 3 + [Status.UNBOUNDED] + \
        [Status.OPTIMAL] * 4


@pytest.mark.parametrize("path", ["sequential", "threads", "processes"])
def test_batch_solver_error_names_the_item(path, process_pool):
    """A solve that raises (not a status): item 5 of 6, with or without check."""
    C = np.ones((6, 3))
    C[5, 0] = -1.0
    for check in (True, False):
        with pytest.raises(SolverError, match=r"^item 5 of 6: picky3: rejected the cost") as e:
            _run_batch(path, Picky(3), C, process_pool, check=check)
        _check_partial(e.value, 6, 5, lambda p: p.x.tolist() == [1.0, 0.0, 0.0])


class _CountingExecutor(ThreadPoolExecutor):
    """A thread pool that records the size of every chunk it is given."""

    def __init__(self, max_workers):
        super().__init__(max_workers)
        self.chunks = []

    def submit(self, fn, *args):
        self.chunks.append(len(args[2]))
        return super().submit(fn, *args)


class _NoWidth:
    """An executor whose width solve_batch cannot read (as some cluster executors)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def submit(self, fn, *args):
        self.calls += 1
        return self.inner.submit(fn, *args)


def test_batch_is_cut_into_guided_chunks_in_order():
    """Contiguous chunks of ceil(left / (2 * workers)) costs (taken by whichever worker is
    free), one task per cost vector when the width is unknown; answers in the order of C."""
    assert solvers_base.chunk_sizes(19, 2) == [5, 4, 3, 2, 2, 1, 1, 1]
    assert solvers_base.chunk_sizes(96, 2) == [24, 18, 14, 10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1]
    assert solvers_base.chunk_sizes(3, 1) == [2, 1]
    assert solvers_base.chunk_sizes(4, 0) == [1, 1, 1, 1]
    assert solvers_base.chunk_sizes(0, 2) == []
    spec = sharding_spec(T=6, D=3)
    solver = make_solver(spec, backend="highs")
    C = _costs(spec, 19, 9)
    seq = [solver.solve(c) for c in C]
    with _CountingExecutor(2) as ex:
        _same(solver.solve_batch(C, executor=ex), seq, spec, "highs")
        assert ex.chunks == [5, 4, 3, 2, 2, 1, 1, 1]
        ex.chunks.clear()
        _same(solver.solve_batch(C[:5], executor=ex), seq[:5], spec, "highs")
        assert ex.chunks == [2, 1, 1, 1]
        other = _NoWidth(ex)
        _same(solver.solve_batch(C[:7], executor=other), seq[:7], spec, "highs")
        assert other.calls == 7


def test_ray_executor_without_ray_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r'RayExecutor needs ray, the optional "ray" extra: '
                                          r'pip install "surco\[ray\]"'):
        RayExecutor(2)


def test_empty_and_single_batches():
    solver = make_solver(SHORTEST_PATH.spec, backend="glop")
    assert solver.solve_batch(np.zeros((0, 8))) == []
    with ThreadPoolExecutor(2) as ex:
        (one,) = solver.solve_batch(SHORTEST_PATH.c[None], executor=ex)
    assert one.objective == pytest.approx(SHORTEST_PATH.opt)


def test_oracles_batch_through_processes(process_pool):
    orc = ShortestPathOracle(25, grid_edges(5, 5), 0, 24)
    C = _costs(orc, 7, 1)
    _same(orc.solve_batch(C, executor=process_pool), [orc.solve(c) for c in C], orc.spec, "x")
    asg = AssignmentOracle(4, 6)
    C = _costs(asg, 5, 2)
    _same(asg.solve_batch(C, executor=process_pool), [asg.solve(c) for c in C], asg.spec, "x")


def test_solver_stack_members_in_parallel(process_pool):
    specs = [sharding_spec(T=6, D=3, seed=s) for s in range(3)]
    C = _costs(SolverStack([make_solver(s) for s in specs]), 1, 3)[0]
    ref = [make_solver(s, backend="scip").solve(c) for s, c in zip(specs, C)]
    with ThreadPoolExecutor(2) as threads:
        for ex in (None, threads, process_pool):
            stack = SolverStack([make_solver(s, backend="scip") for s in specs], executor=ex)
            sol = stack.solve(C)
            assert sol.x.shape == (3, 6, 3) and sol.status == Status.OPTIMAL
            assert sol.objective == pytest.approx(sum(r.objective for r in ref))
            for xi, r in zip(sol.x, ref):
                np.testing.assert_allclose(xi, r.x)
            batch = stack.solve_batch(np.stack([C, C[::-1]]), executor=process_pool)
            assert batch[0].objective == pytest.approx(sum(r.objective for r in ref))


def test_dask_executor_works_unchanged():
    """A Dask executor (``Client.get_executor()``) is just another concurrent.futures.Executor:
    solve_batch ships the solver's recipe, each Dask worker thread builds one model."""
    distributed = pytest.importorskip("dask.distributed",
                                      reason="dask[distributed] is the optional 'distributed' extra")
    spec = sharding_spec(T=8, D=3)
    solver = make_solver(spec, backend="highs")
    C = _costs(spec, 6, 4)
    seq = [solver.solve(c) for c in C]
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        _same(solver.solve_batch(C, executor=client.get_executor()), seq, spec, "highs")


@pytest.mark.slow
def test_dask_local_cluster_with_worker_processes():
    """Same through a LocalCluster of two worker processes (the models live in the workers)."""
    distributed = pytest.importorskip("dask.distributed",
                                      reason="dask[distributed] is the optional 'distributed' extra")
    spec = sharding_spec(T=8, D=3)
    solver = make_solver(spec, backend="scip")
    C = _costs(spec, 8, 5)
    seq = [solver.solve(c) for c in C]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        ex = client.get_executor()
        _same(solver.solve_batch(C, executor=ex), seq, spec, "scip")
        _same(solver.solve_batch(C[::-1], executor=ex), seq[::-1], spec, "scip")


def test_worker_cache_is_bounded_and_follows_solver_lifetime(monkeypatch):
    import gc
    clear_worker_cache()
    spec = sharding_spec(T=4, D=2)
    C = _costs(spec, 2, 6)
    with ThreadPoolExecutor(1) as ex:
        solvers = [make_solver(spec, backend="highs") for _ in range(3)]
        for s in solvers:
            s.solve_batch(C, executor=ex)
        assert len(solvers_base._WORKER_CACHE) == 3
        del s, solvers[0]
        gc.collect()
        assert len(solvers_base._WORKER_CACHE) == 2  # the collected solver's model went too
        monkeypatch.setattr(solvers_base, "WORKER_CACHE_SIZE", 2)
        newest = make_solver(spec, backend="highs")
        newest.solve_batch(C, executor=ex)
        keys = list(solvers_base._WORKER_CACHE)
        assert len(keys) == 2 and keys[-1][:3] == newest._token  # oldest one evicted
        assert keys[0][:3] == solvers[-1]._token
    clear_worker_cache()


def test_a_finalizer_inside_the_cache_lock_does_not_deadlock():
    """The garbage collector runs a solver's finalizer (`_drop_token`) in whatever thread
    allocates, also one that holds the worker-cache lock (a run of the property test hung
    there for good); the lock is reentrant. Checked in a daemon thread, with a bound that
    only tells "returned" (microseconds) from "deadlocked" (forever)."""
    done = threading.Event()

    def nested():
        with solvers_base._WORKER_LOCK:
            solvers_base._drop_token((-1, os.getpid(), 0))
        done.set()
    threading.Thread(target=nested, daemon=True).start()
    assert done.wait(30.0)
