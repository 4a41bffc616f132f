"""On-disk cache of profiler measurements: one SQLite file (standard library ``sqlite3``).

Measuring a table set is expensive, so every measurement of the profiler
(`measure.profile_sets`) is stored under a key made of

    (device kind, table-set signature, batch size, dtype, profiler version, setting, draw)

and reused by later runs (the dataset builder resumes from it, plan evaluation skips what
is already measured, a bench that stopped resumes). The *setting* names the timing protocol
(`timing.ProfilerConfig.setting`); the *draw* numbers repeated measurements of one set:
draw 0 is the one searches read, draws 1, 2, ... are fresh re-measurements (of final plans,
of the repeatability check), each kept as well. Nothing is ever overwritten or deleted.

Schema version 2 (one table ``samples``, keyed by all seven fields) replaced version 1 (one
table ``measurements``, without setting and draw): a version-1 file is upgraded in place on
opening, its rows copied into ``samples`` as (setting ``""``, draw 0) and the old table left
as it was.

Guarantees:

* **Several writers.** The file is in WAL mode; each write is its own short ``BEGIN
  IMMEDIATE`` transaction and waits (``busy_timeout``) instead of failing when another
  process holds the write lock. Two processes writing the same key store one row (the
  first one wins, ``INSERT OR IGNORE``), as both measured the same thing.
* **Crash safety.** A write returns only after its transaction committed; a process killed
  afterwards (even by SIGKILL) loses nothing it stored: SQLite's WAL replays on reopen.
* **No silent reset.** A file that is not an SQLite database, a damaged database, a
  database written by another program, or a cache of another schema version raises
  `CacheError` naming the file and what is wrong. Nothing is ever deleted or recreated
  behind the user's back: move the file away to start a new cache.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

APPLICATION = "surco-profiler-cache"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 60.0

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SAMPLES = (
    "CREATE TABLE IF NOT EXISTS samples ("
    " device_kind TEXT NOT NULL,"
    " signature TEXT NOT NULL,"
    " batch_size INTEGER NOT NULL,"
    " dtype TEXT NOT NULL,"
    " profiler_version INTEGER NOT NULL,"
    " setting TEXT NOT NULL,"
    " draw INTEGER NOT NULL,"
    " payload TEXT NOT NULL,"
    " created REAL NOT NULL,"
    " PRIMARY KEY (device_kind, signature, batch_size, dtype, profiler_version, setting,"
    " draw))")
_COLUMNS = ["device_kind", "signature", "batch_size", "dtype", "profiler_version", "setting",
            "draw", "payload", "created"]
_V1_COLUMNS = ["device_kind", "signature", "batch_size", "dtype", "profiler_version",
               "payload", "created"]
_WHERE = ("device_kind = ? AND signature = ? AND batch_size = ? AND dtype = ? AND "
          "profiler_version = ? AND setting = ? AND draw = ?")


class CacheError(RuntimeError):
    """The cache file cannot be used as it is (corrupt, foreign, other version)."""


@dataclasses.dataclass(frozen=True)
class CacheKey:
    """What a measurement depends on.

    Attributes:
      device_kind: e.g. ``"NVIDIA H100 80GB HBM3"`` or ``"cpu"`` (``jax.Device.device_kind``).
      signature: a hash of the table set (`measure.table_signature`).
      batch_size: samples per batch.
      dtype: weight dtype name, ``"float32"`` or ``"float16"``.
      profiler_version: the profiler version that produced the measurement
        (`timing.ProfilerConfig.version`).
      setting: the timing protocol (`timing.ProfilerConfig.setting`; ``""`` for the fused
        engine's measurements, which predate it).
      draw: which measurement of the set: 0 is the one searches read, 1, 2, ... fresh
        re-measurements.
    """

    device_kind: str
    signature: str
    batch_size: int
    dtype: str
    profiler_version: int
    setting: str = ""
    draw: int = 0

    def __post_init__(self):
        for name in ("device_kind", "signature", "dtype"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ValueError(f"CacheKey.{name} must be a non-empty string, got {v!r}")
        if not isinstance(self.setting, str):
            raise ValueError(f"CacheKey.setting must be a string, got {self.setting!r}")
        for name in ("batch_size", "profiler_version", "draw"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"CacheKey.{name} must be an int, got {v!r}")
        if self.batch_size < 1:
            raise ValueError(f"CacheKey.batch_size must be >= 1, got {self.batch_size}")
        if self.draw < 0:
            raise ValueError(f"CacheKey.draw must be >= 0, got {self.draw}")

    def as_tuple(self) -> tuple:
        return (self.device_kind, self.signature, self.batch_size, self.dtype,
                self.profiler_version, self.setting, self.draw)


class MeasurementCache:
    """A process-safe SQLite store of measurements (JSON-able dicts) by `CacheKey`.

    Args:
      path: the cache file; created (with its parent folder) when missing. An existing
        empty (0-byte) file is initialised.
      timeout_s: how long a writer waits for another process's lock before failing.

    Raises:
      CacheError: the file is not an SQLite database, is damaged, belongs to another
        program (tables but no cache metadata) or to another schema version.

    Use as a context manager or call `close`. One object per process; each process opens
    its own (SQLite connections must not cross ``fork``).
    """

    def __init__(self, path: str | os.PathLike, *, timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise CacheError(f"measurement cache {self.path}: exists and is not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = float(timeout_s)
        try:
            self._con = sqlite3.connect(str(self.path), timeout=self._timeout,
                                        isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise CacheError(f"measurement cache {self.path}: cannot open ({e})") from e
        try:
            self._open()
        except BaseException:
            self._con.close()
            raise

    # -- opening ----------------------------------------------------------------------
    def _fail(self, what: str, err: Exception | None = None) -> CacheError:
        msg = (f"measurement cache {self.path}: {what}"
               + (f" ({err})" if err is not None else "")
               + ". The file was left untouched; move it away or delete it to start a new "
                 "cache, or pass another path.")
        return CacheError(msg)

    def _open(self) -> None:
        con = self._con
        try:
            con.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            # Reading the schema is the first access to the file's content: a file that is
            # not a database fails here ("file is not a database").
            names = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            raise self._fail("not an SQLite database or damaged", e) from e
        if names and "meta" not in names:
            raise self._fail(f"an SQLite database of another program (tables {sorted(names)}, "
                             "no cache metadata)")
        if names:
            self._check_integrity()
        try:
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise self._fail("cannot switch to WAL mode", e) from e
        if str(mode).lower() != "wal":
            raise self._fail(f"journal mode is {mode!r}, WAL is required (is the file on a "
                             "file system without shared memory?)")
        con.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                meta = self._init_or_upgrade()
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            raise self._fail("cannot initialise or read the cache tables", e) from e
        cols = [r[1] for r in con.execute("PRAGMA table_info(samples)")]
        if cols != _COLUMNS:
            raise self._fail(f"table 'samples' has columns {cols}, expected {_COLUMNS}")

    def _init_or_upgrade(self) -> dict:
        """In the open write transaction: a new file gets the version-2 tables; a version-1
        file is upgraded (rows copied into ``samples``, the old table kept). Returns the
        metadata; raises `CacheError` for a foreign or unknown-version file."""
        con = self._con
        con.execute(_META)
        meta = dict(con.execute("SELECT key, value FROM meta"))
        if not meta:
            con.execute(_SAMPLES)
            con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                            [("application", APPLICATION),
                             ("schema_version", str(SCHEMA_VERSION)),
                             ("created", repr(time.time()))])
            return {"application": APPLICATION, "schema_version": str(SCHEMA_VERSION)}
        if meta.get("application") != APPLICATION:
            raise self._fail(f"metadata says application={meta.get('application')!r}, "
                             f"expected {APPLICATION!r}")
        if meta.get("schema_version") == "1":
            cols = [r[1] for r in con.execute("PRAGMA table_info(measurements)")]
            if cols != _V1_COLUMNS:
                raise self._fail(f"schema version 1 with table 'measurements' columns "
                                 f"{cols}, expected {_V1_COLUMNS}")
            con.execute(_SAMPLES)
            con.execute("INSERT OR IGNORE INTO samples SELECT device_kind, signature, "
                        "batch_size, dtype, profiler_version, '', 0, payload, created "
                        "FROM measurements")
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                        (str(SCHEMA_VERSION),))
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        ("upgraded_from_1", repr(time.time())))
            meta["schema_version"] = str(SCHEMA_VERSION)
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise self._fail(f"schema version {meta.get('schema_version')!r}, this code "
                             f"reads version {SCHEMA_VERSION} (and upgrades version 1)")
        return meta

    def _check_integrity(self) -> None:
        try:
            rows = [r[0] for r in self._con.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as e:
            raise self._fail("damaged database", e) from e
        if rows != ["ok"]:
            raise self._fail("damaged database: " + "; ".join(rows[:5]))

    # -- access -----------------------------------------------------------------------
    def get(self, key: CacheKey) -> dict[str, Any] | None:
        """The stored measurement for ``key``, or None when there is none."""
        try:
            row = self._con.execute(f"SELECT payload FROM samples WHERE {_WHERE}",
                                    key.as_tuple()).fetchone()
        except sqlite3.DatabaseError as e:
            raise self._fail("read failed", e) from e
        return None if row is None else json.loads(row[0])

    def put(self, key: CacheKey, payload: Mapping[str, Any]) -> bool:
        """Store ``payload`` (a JSON-able mapping) under ``key``; committed on return.

        Returns True when stored, False when the key was already present (the stored value
        is kept: another process measured the same thing first).

        Raises:
          TypeError: the payload is not JSON-serialisable.
          CacheError: the write failed (lock held longer than ``timeout_s``, disk full ...).
        """
        text = json.dumps(dict(payload), allow_nan=False)
        try:
            cur = self._con.execute(
                f"INSERT OR IGNORE INTO samples ({', '.join(_COLUMNS)}) VALUES "
                f"({', '.join('?' * len(_COLUMNS))})", (*key.as_tuple(), text, time.time()))
        except sqlite3.DatabaseError as e:
            raise self._fail("write failed", e) from e
        return cur.rowcount == 1

    def __contains__(self, key: CacheKey) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def items(self) -> Iterator[tuple[CacheKey, dict[str, Any]]]:
        """All (key, payload) pairs, in insertion order."""
        for row in self._con.execute(
                f"SELECT {', '.join(_COLUMNS[:-1])} FROM samples ORDER BY rowid").fetchall():
            yield CacheKey(*row[:7]), json.loads(row[7])

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "MeasurementCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
