"""A result store for the comparison harness: every finished run appended as it completes,
so that a stopped comparison resumes where it was and a long bench survives Ctrl-C, a crash
or a lost machine, losing at most the runs in progress.

    cmp = surco.compare(family, tasks, methods, budget=b, store="runs.jsonl")  # stop any time
    cmp = surco.compare(family, tasks, methods, budget=b, store="runs.jsonl")  # reruns only
    #                                                          the runs that are not there yet
    cmp = surco.Comparison.from_store("runs.jsonl", family="sharding")       # report only

The file is JSON Lines, append-only: one object per finished run (method, instance id and
content hash, setting, budget, seed, commit, machine, host, load, value, seconds,
evaluations, status, error, the returned x and the anytime trace). Each record is written
with one ``write`` of a whole line, flushed and ``fsync``-ed before `put` returns; a process
killed while writing leaves at most one partial last line, which readers skip and the next
writer cuts off before appending. One writing process per file (the process that runs
`surco.compare`; runs sent to an executor come back to it to be written).

A run is identified by its *key*: family, method, setting, the instance's index and a hash of
its content, and the budget. A rerun with the same key is skipped; a changed instance or
budget is a new key, never a stale hit. The content hash rounds floating-point values to
`HASH_BITS` bits of mantissa (about 6 significant digits), so that the same generator on
another CPU, whose BLAS or LP solver differs in the last bits, gives the same key and a
store made on one machine resumes on another. Records written before hashes were rounded
are still found (`RunStore.find`).

    >>> import tempfile, pathlib, numpy as np
    >>> from surco.budget import Budget
    >>> from surco.runs import Run
    >>> s = RunStore(pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl")
    >>> k = s.key("toy", "greedy", 0, np.arange(3.0), Budget(evaluations=5))
    >>> s.get(k) is None
    True
    >>> s.put(k, Run("greedy", 0, np.ones(3), 1.5, 0.1, 2, "ok", None, [(1, 0.1, 1.5)],
    ...              Budget(evaluations=5)))
    >>> RunStore(s.path).get(k).value
    1.5
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from surco.atomic import write_bytes
from surco.budget import Budget
from surco.runs import Run

__all__ = ["RunStore", "instance_hash", "HASH_BITS"]

FORMAT = "surco-runs/1"


#: Mantissa bits an instance's floating-point values keep in `instance_hash`: 20 bits,
#: a relative resolution of about 1e-6. Values that differ in their last bits (a generator
#: whose BLAS or LP solves round differently on another CPU) fall on the same grid point,
#: unless one lies within those last bits of a grid boundary (about 1 in 10^7 per value).
HASH_BITS = 20


def _rounded_bytes(a: np.ndarray) -> bytes:
    """A float array as its mantissas rounded to `HASH_BITS` bits and its exponents; the
    non-finite values as themselves."""
    a = np.asarray(a, np.float64)
    finite = np.isfinite(a)
    m, e = np.frexp(np.where(finite, a, 0.0))
    q = np.round(m * 2.0 ** HASH_BITS)
    # a mantissa that rounds up to 1 is the next power of two: renormalise it
    up = np.abs(q) == 2.0 ** HASH_BITS
    q = np.where(up, q / 2, q)
    e = np.where(up, e + 1, e)
    return (np.ascontiguousarray(q.astype(np.int64)).tobytes()
            + np.ascontiguousarray(e.astype(np.int32)).tobytes()
            + np.ascontiguousarray(np.where(finite, 0.0, a)).tobytes())


def instance_hash(instance: Any, *, exact: bool = False) -> str:
    """A SHA-256 (16 hex digits) of an instance's content: the pytree structure, the shapes
    and dtypes of its array leaves with their values, and the ``repr`` of its other leaves,
    in pytree order.

    Floating-point values are rounded to `HASH_BITS` mantissa bits first, so the hash is the
    same on machines whose arithmetic differs in the last bits; ``exact=True`` hashes the
    bytes as they are (the hash of records written before rounding was introduced).
    """
    import jax
    h = hashlib.sha256()
    leaves, treedef = jax.tree_util.tree_flatten(instance)
    h.update(str(treedef).encode())
    for leaf in leaves:
        try:
            a = np.asarray(leaf)
        except Exception:  # an object numpy cannot hold: its repr stands for it
            a = None
        if a is not None and a.dtype != object:
            h.update(f"{a.shape}{a.dtype}".encode())
            if not exact and np.issubdtype(a.dtype, np.floating):
                h.update(_rounded_bytes(a))
            elif not exact and np.issubdtype(a.dtype, np.complexfloating):
                h.update(_rounded_bytes(a.real) + _rounded_bytes(a.imag))
            else:
                h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(repr(leaf).encode())
    return h.hexdigest()[:16]


def _budget_dict(budget: Any) -> dict:
    return {f.name: getattr(budget, f.name) for f in dataclasses.fields(budget)}


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return {"__array__": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(u) for k, u in v.items()}
    return v


def _from_json(v: Any) -> Any:
    if isinstance(v, dict):
        if "__array__" in v:
            return np.asarray(v["__array__"], dtype=v["dtype"]).reshape(v["shape"])
        if "__float__" in v:
            return float(v["__float__"])
        return {k: _from_json(u) for k, u in v.items()}
    if isinstance(v, list):
        return [_from_json(u) for u in v]
    return v


class RunStore:
    """An append-only JSON Lines file of finished harness runs (see the module docstring).

    Args:
      path: the file; created (with its folder) on the first `put`.

    Raises:
      ValueError: the file holds a line that is not a run record of this format (other than
        a partial last line), naming the file and the line number.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._records: dict[str, dict] = {}
        self._read()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}, runs={len(self._records)})"

    def __len__(self) -> int:
        return len(self._records)

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> None:
        if not self.path.exists():
            return
        for no, rec in read_json_lines(self.path, "run record"):
            if not isinstance(rec, dict) or rec.get("format") != FORMAT or "key" not in rec:
                raise ValueError(f"{self.path}, line {no}: not a {FORMAT} run record")
            self._records[rec["key"]] = rec

    def records(self, **match: Any) -> Iterator[dict]:
        """The stored records (dicts) whose fields equal ``match`` (e.g. ``family="x"``)."""
        for rec in self._records.values():
            if all(rec.get(k) == v for k, v in match.items()):
                yield rec

    def drop(self, method: str | None = None, **match: Any) -> int:
        """Remove the records of ``method`` (the run's method name; None: any) whose fields
        equal ``match`` (e.g. ``family="sharding"``), so that a rerun with the store
        computes them again; returns how many were removed.

        The key of a run names the method, not its code or settings: after changing what a
        method does, drop its runs, or a resumed bench reuses the old ones. The file is
        rewritten atomically (a crash leaves the old file or the new one); run it while no
        other process writes to the store, as a writer that has the old file open would go
        on appending to it.

        Raises:
          ValueError: neither ``method`` nor a field to match (that would drop everything).
        """
        if method is None and not match:
            raise ValueError(f"RunStore.drop: {self.path}: name a method or fields to match; "
                             "refusing to drop every record")

        def hit(rec: dict) -> bool:
            return ((method is None or rec.get("run", {}).get("method") == method)
                    and all(rec.get(k) == v for k, v in match.items()))

        if not self.path.exists():
            return 0
        self._records = {}
        self._read()                          # what is on disk now, other writers' runs too
        gone = [k for k, rec in self._records.items() if hit(rec)]
        for k in gone:
            del self._records[k]
        if gone:
            write_bytes(self.path, b"".join(json.dumps(rec, allow_nan=False).encode() + b"\n"
                                            for rec in self._records.values()))
        return len(gone)

    # -- keys ------------------------------------------------------------------------------
    @staticmethod
    def key(family: str, method: str, instance: int, content: Any, budget: Budget,
            setting: str | None = None, seed: int | None = None, *,
            exact: bool = False) -> str:
        """The key of one run: ``family/setting/method/instance index/content hash/budget``
        (the instance's content hash: `instance_hash`, with its ``exact``)."""
        b = json.dumps(_jsonable(_budget_dict(budget)), sort_keys=True)
        return json.dumps([family, setting, method, int(instance),
                           instance_hash(content, exact=exact), b, seed])

    def find(self, family: str, method: str, instance: int, content: Any, budget: Budget,
             setting: str | None = None, seed: int | None = None) -> str:
        """The key under which this run is stored, or is to be stored: `key`'s, unless only
        a record written before content hashes were rounded (``exact=True``) holds it."""
        key = self.key(family, method, instance, content, budget, setting, seed)
        if key not in self._records:
            old = self.key(family, method, instance, content, budget, setting, seed,
                           exact=True)
            if old in self._records:
                return old
        return key

    @staticmethod
    def instance_of(rec: dict) -> tuple[int, str]:
        """The instance index and content hash in a stored record's key."""
        key = json.loads(rec["key"])
        return int(key[3]), str(key[4])

    def get(self, key: str) -> Run | None:
        """The stored `surco.runs.Run` of ``key``, or None."""
        rec = self._records.get(key)
        return None if rec is None else self.to_run(rec)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    @staticmethod
    def to_run(rec: dict) -> Run:
        """The `surco.runs.Run` a record holds."""
        run = _from_json(rec["run"])
        kw = {}
        for f in dataclasses.fields(Run):
            if f.name in run:
                kw[f.name] = run[f.name]
        kw["budget"] = Budget(**run["budget"])
        if kw.get("commit") is None:      # written before runs carried it: the record's
            kw["commit"] = rec.get("commit")
        kw["curve"] = [tuple(p) for p in run.get("curve", [])]
        if kw.get("x") is not None:
            kw["x"] = np.asarray(kw["x"])
        return Run(**kw)

    # -- writing ---------------------------------------------------------------------------
    def put(self, key: str, run: Run, **meta: Any) -> None:
        """Append the finished ``run`` (a `surco.runs.Run`) under ``key``, with ``meta``
        (family, setting, commit, machine, ...), durably (flushed and fsync-ed)."""
        fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
        fields["budget"] = _budget_dict(run.budget)
        try:
            load = round(os.getloadavg()[0], 2)
        except OSError:
            load = None
        rec = {"format": FORMAT, "key": key, **_jsonable(meta), "host": socket.gethostname(),
               "load_avg_1min": load, "run": _jsonable(fields)}
        append_json_line(self.path, rec)
        self._records[key] = rec


def read_json_lines(path: str | Path, what: str) -> Iterator[tuple[int, Any]]:
    """The objects of a JSON Lines file written by `append_json_line`, as (line number,
    object) pairs in file order. Blank lines are skipped, and so is a partial last line (the
    part after the last newline: a write cut short by a killed process).

    Args:
      path: the file (it must exist).
      what: what one line holds, for the error message (e.g. ``"run record"``).

    Raises:
      ValueError: a complete line that is not JSON, naming the file and the line number.
    """
    path = Path(path)
    complete = path.read_bytes().split(b"\n")[:-1]   # after the last newline: partial or empty
    for no, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            yield no, json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}, line {no}: not a {what} ({exc})") from None


def append_json_line(path: str | Path, obj: Any) -> None:
    """Append ``obj`` as one JSON line to ``path`` (created with its folder), durably: one
    ``write`` of the whole line, flushed and ``fsync``-ed, under an exclusive lock so that
    appends of several processes never interleave. A partial last line left by a killed
    writer is cut off first, so that it never glues onto the new line.

    Raises:
      ValueError: ``obj`` holds NaN or infinity (not JSON).
    """
    path = Path(path)
    line = json.dumps(obj, allow_nan=False).encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as fh:
        _lock(fh)                             # several processes may append to one file
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":           # a partial line of a killed writer: cut it off
                fh.seek(0)
                data = fh.read()
                fh.truncate(data.rfind(b"\n") + 1)
        fh.seek(0, os.SEEK_END)
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _lock(fh) -> None:
    """An exclusive advisory lock on ``fh`` until it is closed (POSIX ``flock``; a no-op
    where the platform has none), so that appends from several processes never interleave
    and the cut-off of a killed writer's partial line never cuts a live writer's line."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
