"""The SQLite measurement cache: round trip, concurrent writers, kill-and-reopen, bad files."""
import multiprocessing as mp
import os
import signal
import sqlite3
import time

import pytest

from surco.problems.sharding.measured.cache import CacheError, CacheKey, MeasurementCache


def _key(i, device="cpu", batch=256, dtype="float32", version=1):
    return CacheKey(device, f"sig{i:06d}", batch, dtype, version)


def test_round_trip_and_key_fields(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    with MeasurementCache(path) as c:
        assert len(c) == 0 and c.get(_key(1)) is None
        assert c.put(_key(1), {"fwd": {"median_ms": 1.5}, "runs": [1, 2]})
        assert c.get(_key(1)) == {"fwd": {"median_ms": 1.5}, "runs": [1, 2]}
        # each key field separates entries
        for other in (_key(1, device="NVIDIA H100"), _key(1, batch=512),
                      _key(1, dtype="float16"), _key(1, version=2), _key(2)):
            assert c.get(other) is None
            assert c.put(other, {"v": other.as_tuple()[0]})
        assert len(c) == 6
        # the first stored value wins
        assert not c.put(_key(1), {"fwd": {"median_ms": 99.0}})
        assert c.get(_key(1))["fwd"]["median_ms"] == 1.5
    with MeasurementCache(path) as c:           # persists across reopen
        assert len(c) == 6 and _key(1) in c
        assert [k for k, _ in c.items()][0] == _key(1)
        with pytest.raises(ValueError):
            c.put(_key(3), {"x": float("nan")})   # not JSON: refused, not stored as junk
        assert _key(3) not in c
    with pytest.raises(ValueError, match="batch_size"):
        CacheKey("cpu", "s", 0, "float32", 1)
    with pytest.raises(ValueError, match="device_kind"):
        CacheKey("", "s", 1, "float32", 1)


def _writer(path, start, n, overlap, barrier):
    c = MeasurementCache(path, timeout_s=60)
    barrier.wait()
    for i in range(start, start + n):
        c.put(_key(i), {"writer": start, "i": i})
    for i in range(overlap):                    # keys both writers store
        c.put(_key(10_000 + i), {"writer": start})
    c.close()


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "cache.sqlite"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(path, s, 150, 40, barrier))
             for s in (0, 1000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with MeasurementCache(path) as c:
        assert len(c) == 150 + 150 + 40
        for i in list(range(150)) + list(range(1000, 1150)):
            assert c.get(_key(i))["i"] == i
        for i in range(40):
            assert c.get(_key(10_000 + i))["writer"] in (0, 1000)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def _endless_writer(path, done_path):
    c = MeasurementCache(path)
    i = 0
    with open(done_path, "a") as log:
        while True:
            c.put(_key(i), {"i": i, "pad": "x" * 500})
            log.write(f"{i}\n")                 # written only after the commit returned
            log.flush()
            i += 1


def test_kill_mid_run_loses_nothing_stored(tmp_path):
    path, done = tmp_path / "cache.sqlite", tmp_path / "done.txt"
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_endless_writer, args=(path, done))
    p.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        if done.exists() and len(done.read_text().splitlines()) >= 200:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    stored = [int(s) for s in done.read_text().splitlines() if s.strip()]
    assert len(stored) >= 200
    with MeasurementCache(path) as c:           # reopen replays the WAL
        for i in stored:
            assert c.get(_key(i)) == {"i": i, "pad": "x" * 500}
        assert len(c) >= len(stored)
        assert c.put(_key(10 ** 6), {"after": True})   # and it still takes writes


def test_corrupt_or_foreign_files_raise_and_are_left_alone(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all " * 200)
    before = junk.read_bytes()
    with pytest.raises(CacheError, match="not an SQLite database or damaged.*left untouched"):
        MeasurementCache(junk)
    assert junk.read_bytes() == before

    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    before = foreign.read_bytes()
    with pytest.raises(CacheError, match="another program.*users"):
        MeasurementCache(foreign)
    assert foreign.read_bytes() == before

    other = tmp_path / "other.sqlite"
    MeasurementCache(other).close()
    con = sqlite3.connect(other)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(CacheError, match="schema version '99'"):
        MeasurementCache(other)

    damaged = tmp_path / "damaged.sqlite"
    with MeasurementCache(damaged) as c:
        for i in range(400):
            c.put(_key(i), {"i": i, "pad": "y" * 300})
    con = sqlite3.connect(damaged)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(damaged.read_bytes())
    assert len(data) > 40_000
    data[20_000:36_000] = os.urandom(16_000)     # overwrite pages in the middle
    damaged.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="damaged"):
        MeasurementCache(damaged)

    with pytest.raises(CacheError, match="not a file"):
        MeasurementCache(tmp_path)


def test_version_1_file_is_upgraded_in_place_keeping_its_rows(tmp_path):
    """A cache written by schema version 1 (no setting, no draw) opens: its rows read back
    as (setting "", draw 0), its old table is kept, and new draws go next to them."""
    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("CREATE TABLE measurements (device_kind TEXT NOT NULL, signature TEXT NOT "
                "NULL, batch_size INTEGER NOT NULL, dtype TEXT NOT NULL, profiler_version "
                "INTEGER NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY "
                "(device_kind, signature, batch_size, dtype, profiler_version))")
    con.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("application", "surco-profiler-cache"), ("schema_version", "1")])
    con.executemany("INSERT INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?)", [
        ("cpu", f"sig{i:06d}", 256, "float32", 1, f'{{"i": {i}}}', 1.0) for i in range(5)])
    con.commit()
    con.close()
    with MeasurementCache(path) as c:
        assert len(c) == 5
        assert c.get(_key(3)) == {"i": 3}
        assert c.get(CacheKey("cpu", "sig000003", 256, "float32", 1, "", 1)) is None
        assert c.put(CacheKey("cpu", "sig000003", 256, "float32", 1, "", 1), {"i": 33})
        assert c.put(CacheKey("cpu", "sig000003", 256, "float32", 1, "arena/w1", 0), {"i": 4})
        assert c.get(_key(3)) == {"i": 3} and len(c) == 7
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 5   # kept
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    con.close()
    with MeasurementCache(path) as c:                  # reopening a version-2 file
        assert len(c) == 7 and c.get(CacheKey("cpu", "sig000003", 256, "float32", 1, "",
                                              1)) == {"i": 33}
    with pytest.raises(ValueError, match="draw"):
        CacheKey("cpu", "s", 1, "float32", 1, "", -1)
