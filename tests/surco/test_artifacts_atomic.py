"""Every saved artifact is written atomically and as a unit (issue 23): a save killed with
SIGKILL at any moment leaves a file (or directory) that loads as exactly the previous
version or exactly the new one, never an error and never a mix; what a killed save leaves
behind is removed by the next save; a reader concurrent with saves sees whole versions.

On the code before issue 23 the kill tests fail: ``ZeroResult.save`` (and the other result
records) and `surco.report.Report.finish` wrote the target in place, so a kill mid-write
left a truncated file that `load` refused; `PriorModel.save` replaced ``params.msgpack``
before ``meta.json``, so a kill between the two left the new parameters under the old
metadata (a SHA-256 mismatch: no model loaded). The kill delays are drawn relative to the
time one save takes on the machine running the test; the tests count where the kills
landed and require only the invariant, not that any kill landed mid-write.
"""
from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from surco import atomic as _atomic

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import artifact_kinds as K  # noqa: E402

UNITS = ("prior_model", "training_checkpoint")


class Server:
    """The saving server of `artifact_kinds` (one process for all the kill tests)."""

    def __init__(self, log: Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(HERE / "artifact_kinds.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log, "w"), text=True, bufsize=1,
                                     env={**os.environ, "JAX_PLATFORMS": "cpu"})
        self.expect("ok")

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> list[str]:
        """The next reply starting with ``word``; a child's error line fails the test."""
        while True:
            line = self.proc.stdout.readline()
            if not line:
                pytest.fail(f"the saving server stopped: {self.log.read_text()[-2000:]}")
            parts = line.split()
            if parts[0] == "error":
                pytest.fail(f"a saving child failed: {line}")
            if parts[0] == word:
                return parts

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("server") / "stderr.txt")
    yield s
    s.close()


def kill_loop(server: Server, name: str, tmp_path: Path, kills: int, seed: int) -> dict:
    """Start a saving child ``kills`` times, SIGKILL it after a random delay, and check
    that the target loads as version 0 or 1. Returns counts of what was seen."""
    kind = K.KINDS[name]()
    folder, scratch = tmp_path / "saves", tmp_path / "scratch"
    target = folder / kind.target
    kind.save(0, target)
    rng, seen = random.Random(seed), collections.Counter()
    for k in range(kills):
        server.send(f"fork {name} {target} {scratch / kind.target}")
        _, pid, per_save = server.expect("ready")
        time.sleep(rng.uniform(0.0, 3.0 * float(per_save)))
        os.kill(int(pid), signal.SIGKILL)
        server.send(f"reap {pid}")
        status = int(server.expect("reaped")[2])
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
        unit = target if name in UNITS else None
        left = set(os.listdir(folder if unit is None else unit)) - kind.files(target)
        seen["kills that left a temporary or orphan file"] += bool(left)
        got = kind.load(target)  # never an error
        which = [v for v in (0, 1) if kind.same(got, v)]
        assert which, f"{name}, kill {k}: the saved artifact is neither version (a mix)"
        seen[f"version {which[0]}"] += 1
    kind.save(1, target)  # the next save removes what the killed ones left
    listed = set(os.listdir(folder)) if name not in UNITS else set(os.listdir(target))
    assert listed == kind.files(target), listed
    assert kind.same(kind.load(target), 1)
    assert seen["version 0"] + seen["version 1"] == kills
    print(f"{name}: {kills} kills, {dict(seen)}")
    return seen


FAST_KILLS, SLOW_KILLS = 10, 50


@pytest.mark.parametrize("name", list(K.KINDS))
def test_killed_save_leaves_the_old_or_the_new_version(server, name, tmp_path):
    kill_loop(server, name, tmp_path, FAST_KILLS, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(K.KINDS))
def test_killed_save_leaves_the_old_or_the_new_version_many_times(server, name, tmp_path):
    kill_loop(server, name, tmp_path, SLOW_KILLS, seed=2)


# -- what killed saves leave behind ---------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_next_save_removes_temporary_files_of_dead_writers_only(tmp_path):
    r = K.prior_result(0)
    dead, me = _dead_pid(), os.getpid()
    stale = tmp_path / f".r.npz.surco-{dead}-0a1b2c3d.tmp"
    mine = tmp_path / f".r.npz.surco-{me}-0a1b2c3d.tmp"      # a live writer's (this process)
    other = tmp_path / f".q.npz.surco-{dead}-0a1b2c3d.tmp"   # another target's
    for p in (stale, mine, other):
        p.write_bytes(b"partial")
    r.save(tmp_path / "r")
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, other.name, "r.npz"])
    assert K.same_record(type(r).load(tmp_path / "r"), r)


def test_unit_save_removes_old_data_files_and_temps_and_keeps_other_files(tmp_path):
    d = tmp_path / "m"
    K.prior_model(0).save(d)
    first = set(os.listdir(d))
    dead = _dead_pid()
    (d / f".params.0123456789abcdef.msgpack.surco-{dead}-00ff.tmp").write_bytes(b"x")
    (d / "params.fedcba9876543210.msgpack").write_bytes(b"orphan of a killed save")
    (d / "notes.txt").write_text("the user's own file")
    K.prior_model(1).save(d)
    assert set(os.listdir(d)) == K.KINDS["prior_model"]().files(d) | {"notes.txt"}
    assert set(os.listdir(d)) != first | {"notes.txt"}  # the parameters' file was renamed


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = _atomic.write_bytes(tmp_path / "a.bin", b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with _atomic.atomic_open(p) as fh:
            fh.write(b"half of the new")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.bin"]


def test_saved_file_has_the_permissions_of_a_plain_open(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    p = _atomic.write_bytes(tmp_path / "atomic", b"")
    assert (p.stat().st_mode & 0o777) == ((tmp_path / "plain").stat().st_mode & 0o777)


def test_figures_are_saved_atomically_with_the_format_of_their_name(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(2, 2))
    png = _atomic.save_figure(fig, tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _atomic.save_figure(fig, tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    assert _atomic.save_figure(fig, tmp_path / "g") == tmp_path / "g.png"  # as savefig does
    before = png.read_bytes()
    with pytest.raises(ValueError, match="nope"):
        _atomic.save_figure(fig, tmp_path / "f.nope")
    plt.close(fig)
    assert png.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["f.png", "f.svg", "g.png"]
    cmp = K.comparison(0)
    cmp.runs = [r for r in cmp.runs if r.instance < 3]
    cmp.n_instances = 3
    cmp.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_readers_concurrent_with_saves_see_whole_versions(tmp_path):
    """A restore racing with saves of the same checkpoint (whose old data file each save
    removes) is read again when the unit was replaced under it, and never mixes."""
    kind = K.KINDS["training_checkpoint"]()
    d = tmp_path / "ck"
    kind.save(0, d)
    stop, seen, errors = threading.Event(), collections.Counter(), []

    def read():
        while not stop.is_set():
            try:
                got = kind.load(d)
                seen[[v for v in (0, 1) if kind.same(got, v)][0]] += 1
            except Exception as exc:  # recorded: the test fails on any
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(40):
        kind.save(1 - i % 2, d)
    stop.set()
    reader.join()
    assert not errors, errors[:3]
    assert seen[0] + seen[1] >= 1


def test_reread_if_replaced_retries_only_when_the_manifest_changed(tmp_path):
    m = _atomic.write_bytes(tmp_path / "meta.json", b"{}")
    calls = []

    def read_missing():
        calls.append(1)
        raise FileNotFoundError("data file gone")

    with pytest.raises(FileNotFoundError, match="data file gone"):
        _atomic.reread_if_replaced(read_missing, m)
    assert len(calls) == 1  # the manifest did not change: no retry

    def replaced_once():
        calls.append(2)
        if calls.count(2) == 1:
            _atomic.write_bytes(m, b'{"v": 2}')
            raise FileNotFoundError("replaced meanwhile")
        return m.read_bytes()

    assert _atomic.reread_if_replaced(replaced_once, m) == b'{"v": 2}' and calls.count(2) == 2

