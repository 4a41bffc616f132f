"""Atomic writes of saved artifacts: a reader (or a later `load`) finds the previous version
or the new one, never a part of one nor a mix of two, even when the saving process is killed
(SIGKILL, power loss after the call returned) at any moment.

* One file (`atomic_open`, `write_bytes`, `save_figure`): the content goes to a temporary
  file beside the target, is flushed and ``fsync``-ed, and replaces the target by
  ``os.replace`` (a rename: atomic on POSIX and on Windows); on POSIX the directory is then
  ``fsync``-ed too, so the rename itself survives a crash.
* Several files saved as a unit (`save_unit`, read back with `unit_file`): each data file is
  written under a name holding its content's SHA-256 (``params.<16 hex>.msgpack``), then the
  JSON *manifest* naming them (with their full SHA-256) is written, last; the manifest's
  rename is the one moment the unit switches from the old version to the new. Data files
  of earlier versions are removed after it.

A save killed midway leaves a temporary file (``.NAME.surco-PID-XXXX.tmp``) or an unnamed
data file; neither is ever read, and the next save in that folder removes those of processes
that are no longer running. One writer at a time per target is assumed; readers may run
concurrently (`reread_if_replaced` retries a read of a unit replaced meanwhile). The liveness
check of a temporary file's writer holds on one machine.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_bytes(d / "a.txt", b"old").read_bytes()
b'old'
>>> write_bytes(d / "a.txt", b"new").read_bytes()   # replaced atomically
b'new'
>>> write_bytes(d / "a.txt", b"x", overwrite=False)
Traceback (most recent call last):
...
FileExistsError: .../a.txt: already exists (overwrite=False)
>>> sorted(p.name for p in d.iterdir())                # no temporary file left
['a.txt']
>>> import shutil; shutil.rmtree(d)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import IO, Any, Callable, Iterator, TypeVar

__all__ = ["atomic_open", "write_bytes", "save_figure", "save_unit", "unit_file",
           "reread_if_replaced"]

T = TypeVar("T")
_TMP = re.compile(r"\.(?P<name>.+)\.surco-(?P<pid>\d+)-[0-9a-f]+\.tmp")


# -- one file -------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_open(path: str | Path, *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """A binary file to write the new content of ``path`` to; when the ``with`` block ends
    without an error, the content replaces ``path`` atomically (see the module docstring).
    When it raises, ``path`` is left as it was and the temporary file is removed.

    Args:
      path: the target file; its folder is created if missing.
      overwrite: replace an existing ``path`` (True), or refuse to (False): then an existing
        ``path`` raises `FileExistsError`, checked again at the final rename, which does not
        clobber a file created meanwhile.

    Raises:
      FileExistsError: ``overwrite=False`` and ``path`` exists (the message names it).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: already exists (overwrite=False)")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent, re.escape(path.name))
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, created with the permissions a plain ``open``
    gives (0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.surco-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue


def write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (`atomic_open`); returns ``path``.

    Raises:
      FileExistsError: ``overwrite=False`` and ``path`` exists.
    """
    with atomic_open(path, overwrite=overwrite) as fh:
        fh.write(data)
    return Path(path)


def save_figure(fig: Any, path: str | Path, **savefig_kw: Any) -> Path:
    """``fig.savefig(path, **savefig_kw)`` (a matplotlib figure), written atomically. The
    format is the one of ``path``'s extension, as for ``savefig``; without an extension,
    matplotlib's default (``savefig.format``, PNG) is used and its extension appended, as
    ``savefig`` does. Returns the path written.

    Raises:
      ValueError: a format matplotlib cannot write (the target is left as it was).
    """
    path = Path(path)
    fmt = path.suffix[1:].lower()
    if not fmt:
        import matplotlib
        fmt = matplotlib.rcParams["savefig.format"]
        path = path.with_name(f"{path.name}.{fmt}")
    with atomic_open(path) as fh:
        fig.savefig(fh, format=fmt, **savefig_kw)
    return path


def _link_new(tmp: str, path: Path) -> None:
    """Rename ``tmp`` to ``path`` unless ``path`` exists, without a window in which another
    process could create ``path`` and have it replaced (a hard link fails on an existing
    name); where the file system has no hard links, an existence check and a rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: already exists (overwrite=False)") from None
    except OSError:  # no hard links here (some network or FAT file systems)
        if path.exists():
            raise FileExistsError(f"{path}: already exists (overwrite=False)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; elsewhere a rename needs nothing)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a folder this process may write to but not open: nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory; the rename stays atomic
        pass
    finally:
        os.close(fd)


def clean_stale_temps(directory: Path, name_pattern: str) -> int:
    """Remove the temporary files that killed saves left in ``directory`` for targets whose
    name matches the regular expression ``name_pattern``: those of processes no longer
    running (POSIX only: elsewhere none is removed). Returns how many were removed."""
    if os.name != "posix":
        return 0
    target = re.compile(name_pattern)
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        m = _TMP.fullmatch(entry.name)
        if m is None or not target.fullmatch(m["name"]) or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


# -- several files saved as a unit -----------------------------------------------------------
def _split(name: str) -> tuple[str, str]:
    stem, dot, suffix = name.partition(".")
    return stem, dot + suffix


def _data_pattern(name: str) -> str:
    stem, suffix = _split(name)
    return re.escape(stem) + r"\.[0-9a-f]{16}" + re.escape(suffix)


def save_unit(directory: str | Path, manifest: str, meta: dict, data: dict[str, bytes], *,
              overwrite: bool = True) -> dict:
    """Save a multi-file artifact in ``directory`` as a unit: after a kill at any moment,
    the manifest names a complete earlier or a complete new version.

    Each ``data[name]`` (e.g. ``"params.msgpack"``) is written to ``STEM.<first 16 hex of
    its SHA-256>.SUFFIX`` (e.g. ``params.0123456789abcdef.msgpack``); then the JSON file
    ``manifest`` is written, holding ``meta`` plus, per data file, ``STEM_file`` (its name)
    and ``STEM_sha256`` (its full SHA-256); then data files of earlier versions, the
    fixed-name files of the layout before content addressing (``params.msgpack``) included,
    and temporary files of killed saves are removed. Other files in ``directory`` are left
    alone. Read back with `unit_file`.

    Args:
      directory: created if missing. manifest: the manifest's file name.
      meta: JSON-serialisable entries of the manifest.
      data: file name -> content; names are ``STEM.SUFFIX`` with distinct stems.
      overwrite: replace an existing manifest (True) or raise (False).

    Returns:
      The manifest written (``meta`` with the data files' entries).

    Raises:
      FileExistsError: ``overwrite=False`` and the manifest exists (nothing is written).
    """
    directory = Path(directory)
    if not overwrite and (directory / manifest).exists():
        raise FileExistsError(f"{directory / manifest}: already exists (overwrite=False)")
    meta, files = dict(meta), {}
    for name, blob in data.items():
        stem, suffix = _split(name)
        digest = hashlib.sha256(blob).hexdigest()
        fname = f"{stem}.{digest[:16]}{suffix}"
        meta[f"{stem}_file"], meta[f"{stem}_sha256"] = fname, digest
        files[fname] = blob
    text = json.dumps(meta).encode()  # before anything is written: a TypeError writes nothing
    directory.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(directory, "|".join([re.escape(manifest)]
                                          + [_data_pattern(n) for n in data]))
    for fname, blob in files.items():
        write_bytes(directory / fname, blob)
    write_bytes(directory / manifest, text, overwrite=overwrite)
    old = re.compile("|".join(_data_pattern(n) + "|" + re.escape(n) for n in data))
    for entry in os.scandir(directory):
        if entry.name not in files and old.fullmatch(entry.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
    return meta


def unit_file(directory: str | Path, meta: dict, name: str,
              manifest: Path) -> tuple[Path, str | None]:
    """The data file that the manifest ``meta`` (read from ``manifest``) names for ``name``,
    and its recorded SHA-256 (None when not recorded). A manifest written before content
    addressing names none: then the fixed name ``name`` itself.

    Raises:
      ValueError: the manifest names something other than such a data file of
        ``directory`` (the message names the manifest).
    """
    stem, _ = _split(name)
    fname = meta.get(f"{stem}_file", name)
    if not isinstance(fname, str) or not (fname == name
                                          or re.fullmatch(_data_pattern(name), fname)):
        raise ValueError(f"{manifest}: {stem}_file is {fname!r}, expected {name!r} or a "
                         f"content-addressed {_split(name)[0]}.<16 hex>{_split(name)[1]}")
    return Path(directory) / fname, meta.get(f"{stem}_sha256")


def reread_if_replaced(read: Callable[[], T], manifest: str | Path, tries: int = 3) -> T:
    """``read()`` (which reads the unit whose manifest is ``manifest``), run again when it
    raised `FileNotFoundError` while a concurrent save replaced the manifest (and removed
    the data file the old one named); at most ``tries`` runs.

    Raises:
      FileNotFoundError: from ``read``, when the manifest did not change meanwhile or after
        ``tries`` runs.
    """
    for attempt in range(tries):
        before = _stamp(manifest)
        try:
            return read()
        except FileNotFoundError:
            if attempt == tries - 1 or _stamp(manifest) in (before, None):
                raise
    raise AssertionError("unreachable")


def _stamp(path: str | Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
