"""One Ctrl-C (SIGINT) stops every backend and every `solve_batch` path within a second, as a
plain KeyboardInterrupt, and leaves the solver usable.

The signal is sent with ``os.kill`` from a timer thread while the main thread is inside a
solve that runs for several seconds without a time limit (the times are in the fixtures'
docstrings)."""
import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from surco.solvers import SolverStack, Status, clear_worker_cache, make_solver
from surco.solvers import blocking
from surco.solvers.qp import QuadraticSolver
from solvers_fixtures import KNAPSACK, MIP_BACKENDS, multi_knapsack, transport

# seconds from the signal to the KeyboardInterrupt: the documented bound is "about a second"
# (`blocking.INTERRUPT_GRACE`, then it is raised whatever the solver does), plus scheduling
# delays on a loaded 2-core machine. Typical values are 0.02-0.2 s.
LATENCY = 1.5


def _interrupt_latency(call, delay: float = 0.5) -> float:
    """Run ``call()``, send one SIGINT to this process ``delay`` seconds in; return the
    seconds from the signal to the KeyboardInterrupt. Fails if ``call`` returns."""
    sent = []

    def fire():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, fire)
    caught = None
    timer.start()
    try:
        call()
    except KeyboardInterrupt:
        caught = time.perf_counter()
    finally:
        timer.cancel()
        timer.join()
        if caught is None and sent:
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(0.5)   # a signal already sent lands here, not in the next test
    if caught is None:
        pytest.fail("the call returned although a SIGINT was sent during it")
    assert sent, "KeyboardInterrupt before the signal was sent"
    return caught - sent[0]


def _helpers_idle(timeout: float = 1.0) -> bool:
    """Whether every interrupted call has returned (no helper thread still solving)."""
    end = time.monotonic() + timeout
    while blocking._POOL["busy"] and time.monotonic() < end:
        time.sleep(0.01)
    return blocking._POOL["busy"] == 0


@pytest.mark.parametrize("backend", MIP_BACKENDS)
def test_one_sigint_stops_a_long_mip_solve(backend):
    spec, c = multi_knapsack()   # > 3 s to prove optimality on every MIP backend
    solver = make_solver(spec, backend=backend)
    assert _interrupt_latency(lambda: solver.solve(c)) < LATENCY
    assert _helpers_idle()       # the solve was stopped, not left running
    # the same solver answers the next cost (x = 0 is optimal for positive costs)
    sol = solver.solve(-c)
    assert sol.status == Status.OPTIMAL and sol.objective == pytest.approx(0.0, abs=1e-9)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("backend, size, delay", [("glop", 400, 2.5), ("pdlp", 300, 1.5)])
def test_one_sigint_stops_a_long_lp_solve(backend, size, delay):
    """The signal comes ``delay`` s in, once the first solve has built the solver's model
    (about 1 s for GLOP at 400 x 400 on a loaded machine; PDLP's builds in 0.1 s) and is
    solving (15 s GLOP; PDLP at 300 x 300: 6 s on an idle machine)."""
    spec, c = transport(size, size)
    solver = make_solver(spec, backend=backend)
    assert _interrupt_latency(lambda: solver.solve(c), delay=delay) < LATENCY
    assert _helpers_idle()


def test_one_sigint_during_a_long_qp_solve():
    """HiGHS 1.12's QP solver has no interrupt hook: the KeyboardInterrupt still comes after
    the grace period (1 s) and the solve finishes in the background, holding the solver,
    whose next call waits for it and then works."""
    spec, c = transport(100, 100)     # 8.5 s with γ = 1e-3; the time limit bounds the test
    qp = QuadraticSolver(spec, 1e-3, time_limit=2.0)
    latency = _interrupt_latency(lambda: qp.solve(c))
    assert blocking.INTERRUPT_GRACE <= latency < LATENCY
    assert blocking._POOL["busy"] == 1              # still solving in the background
    sol = qp.solve(c, check=False)    # waits for it, then works: it runs to its time limit,
    # or, when the background solve had finished, HiGHS answers from the solved model
    assert (sol.status == Status.ERROR and sol.stats["timeout"]) or sol.status == Status.OPTIMAL
    assert _helpers_idle()


def _sigint_handler_address() -> int:
    buf = ctypes.create_string_buffer(256)   # struct sigaction: the handler comes first
    ctypes.CDLL(None).sigaction(signal.SIGINT, None, buf)
    return ctypes.c_void_p.from_buffer(buf).value or 0


@pytest.mark.parametrize("backend", MIP_BACKENDS)
def test_no_backend_installs_its_own_sigint_handler(backend):
    """SCIP's ``misc/catchctrlc`` (on by default in PySCIPOpt) and CP-SAT's
    ``catch_sigint_signal`` would take the signal from Python during a solve."""
    spec, c = multi_knapsack()
    solver = make_solver(spec, backend=backend, time_limit=1.0)
    before = _sigint_handler_address()
    during = []
    timer = threading.Timer(0.5, lambda: during.append(_sigint_handler_address()))
    timer.start()
    solver.solve(c)
    timer.join()
    assert during == [before] and _sigint_handler_address() == before


@pytest.mark.parametrize("backend", ["scip", "highs"])
@pytest.mark.parametrize("path", ["sequential", "threads", "stack-threads"])
def test_one_sigint_stops_solve_batch(backend, path):
    spec, c = multi_knapsack()
    C = np.stack([c, c * 1.01, c * 0.99, c * 1.02])
    solver = make_solver(spec, backend=backend)
    with ThreadPoolExecutor(2) as ex:
        if path == "sequential":
            call = lambda: solver.solve_batch(C)   # noqa: E731
        elif path == "threads":
            call = lambda: solver.solve_batch(C, executor=ex)   # noqa: E731
        else:
            stack = SolverStack([make_solver(spec, backend=backend) for _ in C], executor=ex)
            call = lambda: stack.solve(C)   # noqa: E731
        assert _interrupt_latency(call) < LATENCY
        t0 = time.perf_counter()
    # leaving the with-block joins the pool's threads: their solves were stopped too
    assert time.perf_counter() - t0 < LATENCY
    assert _helpers_idle()


def test_one_sigint_stops_waiting_on_a_process_pool():
    """The caller gets the KeyboardInterrupt at once; the worker processes (which did not
    get the signal) finish their current chunk, bounded here by a 2 s time limit."""
    spec, c = multi_knapsack()
    solver = make_solver(spec, backend="highs", time_limit=2.0)
    C = np.stack([c, c * 1.01])
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        for f in [ex.submit(clear_worker_cache) for _ in range(2)]:
            f.result()            # start the workers and import surco there before timing
        assert _interrupt_latency(lambda: solver.solve_batch(C, executor=ex), 1.0) < LATENCY


class _Owner:
    """Stands for a backend object (blocking_call's owner must be weak-referenceable)."""


def test_interrupt_before_the_call_starts_is_not_lost():
    """``stop`` is repeated until the call returns: a Ctrl-C that lands before the solver
    has started (here: the call sleeps first) still stops it."""
    started = threading.Event()
    stopped = threading.Event()

    def call():
        time.sleep(0.3)          # the signal arrives here, before the "solver" runs
        started.set()
        stopped.wait(10.0)
        return "finished"

    owner = _Owner()
    latency = _interrupt_latency(lambda: blocking.blocking_call(call, stopped.set, owner),
                                 delay=0.1)
    assert started.is_set() and stopped.is_set()
    assert latency < LATENCY


def test_errors_in_the_blocking_call_propagate_once():
    def call():
        raise ValueError("bad parameter")

    with pytest.raises(ValueError, match="bad parameter") as info:
        blocking.blocking_call(call, lambda: None, _Owner())
    assert info.value.__context__ is None and info.value.__cause__ is None


@pytest.mark.filterwarnings("ignore:os.fork")
def test_a_forked_child_can_still_solve():
    """The helper threads of `blocking_call` do not survive a fork; the child starts its own
    (without the at-fork reset it would wait forever for a thread it does not have)."""
    import select
    solver = make_solver(KNAPSACK.spec, backend="highs")
    assert solver.solve(KNAPSACK.c).objective == pytest.approx(KNAPSACK.opt)  # helper exists
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: answer through the pipe, never return into pytest
        try:
            obj = make_solver(KNAPSACK.spec, backend="scip").solve(KNAPSACK.c).objective
            os.write(w, repr(obj).encode())
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 30.0)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    answer = os.read(r, 100).decode() if ready else "no answer within 30 s"
    os.close(r)
    assert answer == repr(KNAPSACK.opt)
