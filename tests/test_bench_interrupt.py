"""A bench started in the background (SIGINT inherited as ignored) still stops on SIGINT as
on Ctrl-C: `bench._report.parse_args` installs Python's KeyboardInterrupt handler."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, time
if sys.argv[1] == "bench":
    from bench._report import parse_args
    parse_args("probe", [])
try:
    print("ready", flush=True)
    time.sleep(60)
    print("slept", flush=True)
except KeyboardInterrupt:
    print("stopped", flush=True)
"""


def _run_background(mode: str, wait: float) -> tuple[str, float]:
    """Start SCRIPT with SIGINT ignored (as ``nohup`` or ``cmd &`` would), send it SIGINT
    once it is ready, and return its output and how long it lived after the signal (inf:
    still running ``wait`` seconds later)."""
    # the shell ignores SIGINT and execs Python, which inherits it ignored (no preexec_fn:
    # it is unsafe in a process with threads, as a pytest worker running JAX is)
    proc = subprocess.Popen(["sh", "-c", "trap '' INT; exec \"$0\" -c \"$1\" \"$2\"",
                             sys.executable, SCRIPT, mode], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            return "", float("inf")
        return out.strip(), time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_background_bench_stops_on_sigint():
    out, _ = _run_background("bench", wait=60)
    assert out == "stopped"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_without_it_the_background_process_ignores_sigint():
    # the control: the same process without parse_args does not see the signal at all
    out, after = _run_background("plain", wait=2)
    assert out != "stopped" and after == float("inf")


def test_an_interrupted_comparison_stops_the_bench_and_keeps_its_runs(tmp_path):
    # surco.compare returns the finished runs on Ctrl-C (interrupted=True); a bench script
    # would then go on to its next comparison. bench._report.compare raises again, and the
    # run finished before the interrupt is in the store, where --resume finds it.
    import surco
    from bench._report import compare
    from surco.problems import assignment as A
    from surco.store import RunStore
    ys = A.FAMILY.generate(2, seed=0)
    mean_cost = A.FAMILY.baselines["mean-cost"]
    calls = []

    def stop_on_the_second(y, meter):
        calls.append(y)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return mean_cost(y, meter)

    store = tmp_path / "runs.jsonl"
    with pytest.raises(KeyboardInterrupt, match=r"interrupted after 1 runs.*--resume"):
        compare(A.FAMILY, ys, {"m": stop_on_the_second}, store=store, progress=False)
    assert len(RunStore(store)) == 1
    # a comparison that finishes is returned as surco.compare returns it
    done = compare(A.FAMILY, ys, {"m": mean_cost}, store=store, progress=False)
    assert not done.interrupted and [r.instance for r in done.runs] == [0, 1]
    assert done.values("m")[0] == pytest.approx(
        surco.compare(A.FAMILY, ys[:1], ["mean-cost"], progress=False).values("mean-cost")[0])
