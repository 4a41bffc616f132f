"""Execute the notebooks of this folder, and check that their saved outputs are fresh.

    python notebooks/execute.py [NOTEBOOK ...]      # `make notebooks`: all of them, in place

Each notebook runs top to bottom in a fresh kernel, in a temporary working folder (files a
notebook writes, such as 02's plot, do not land in the repository), and is saved with its
outputs and, in ``metadata.surco``, a record of what it was executed at:

- ``executed_at_commit``: ``git rev-parse HEAD`` when it ran;
- ``imports``: the modules of the package that its cells import directly (read from the
  cells' ``import`` statements);
- ``modules``: every module of the repository that was loaded while it ran (``import surco``
  loads most of surco/ and solvers/), mapped to its file: the code its outputs come from;
- ``uncommitted``: those files that had uncommitted changes when it ran (then the outputs
  are not those of ``executed_at_commit``, and `stale` says so);
- ``small``: whether it ran at the small size (``SURCO_SMALL=1``, what the tests use).

`stale` is the freshness check that tests/test_notebooks.py applies: a notebook is stale
when a file in ``modules`` changed in a commit after ``executed_at_commit``
(``git log <commit>..HEAD -- <files>``). It looks at the module files only, so a commit that
stores only re-executed notebooks (the usual one right after `make notebooks`) keeps them
fresh. It checks the modules loaded transitively, at run time, not only those a cell names:
a notebook's outputs depend on every module its calls go through.

Progress bars are saved as plain text: the kernel starts with ``tqdm.auto`` pointed at the
text bar ``tqdm.std`` (ipywidgets bars would be saved as widget state, which viewers without
widgets show as "0%"), and carriage-return updates are reduced to what a terminal would
show last. Plots are saved as the inline backend's PNG images.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: the top-level package the record is about (its modules live in surco/, solvers/, problems/)
PACKAGE = "surco"
#: code run by the kernel before the first cell (not saved): text progress bars
KERNEL_SETUP = ["import tqdm.auto, tqdm.autonotebook, tqdm.std",
                "tqdm.auto.tqdm = tqdm.autonotebook.tqdm = tqdm.std.tqdm",
                "tqdm.auto.trange = tqdm.autonotebook.trange = tqdm.std.trange"]
_MARK = "SURCO-LOADED-MODULES:"
#: run after the last cell (and removed from the saved notebook): the repository's modules
_LIST_MODULES = f"""\
import json as _j, sys as _s, os as _o
_r = {str(ROOT)!r} + _o.sep
print({_MARK!r} + _j.dumps(sorted((n, _o.path.realpath(m.__file__)) for n, m in list(_s.modules.items())
      if getattr(m, "__file__", None) and _o.path.realpath(m.__file__).startswith(_r))))
"""


class NotebookError(RuntimeError):
    """A notebook could not be executed or recorded (the message names it and why)."""


def git(*args: str, repo: Path = ROOT) -> str:
    """``git args`` in ``repo``; its stdout, trailing white space stripped.

    Raises:
      NotebookError: git is missing or fails (e.g. the folder is not a git work tree),
        with git's message.
    """
    try:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                             check=False)
    except FileNotFoundError as exc:
        raise NotebookError("git is not installed: the notebooks' record and freshness "
                            "check need the repository's history") from exc
    if out.returncode != 0:
        raise NotebookError(f"`git {' '.join(args)}` failed in {repo}: {out.stderr.strip()}")
    return out.stdout.rstrip()


def head_commit(repo: Path = ROOT) -> str:
    """The commit checked out in ``repo`` (``git rev-parse HEAD``).

    Raises:
      NotebookError: the repository is not a git work tree (the record needs a commit).
    """
    try:
        git("rev-parse", "--is-inside-work-tree", repo=repo)
    except NotebookError as exc:
        raise NotebookError(f"{repo} is not a git work tree (a clone of the repository): "
                            f"executed notebooks record the commit they ran at, and their "
                            f"freshness check reads the history. {exc}") from exc
    return git("rev-parse", "HEAD", repo=repo)


def direct_imports(nb: Any, modules: Collection[str]) -> list[str]:
    """The modules of the package that the notebook's code cells import, by name, read from
    their ``import`` / ``from ... import`` statements; ``from surco.problems import routing``
    names ``surco.problems.routing`` too when that is a module (one of ``modules``, the
    names of the modules loaded while the notebook ran). Lines of magics are skipped."""
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(line for line in cell.source.splitlines()
                        if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names
                             if f"{node.module}.{a.name}" in modules)
    return sorted(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))


def _tidy_streams(nb: Any) -> None:
    """Merge consecutive stream outputs and keep, on each line, what a terminal shows after
    its carriage returns (a text progress bar's last state; a bar cleared at its end leaves
    nothing). Stream outputs left blank are dropped."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor
    pre = CoalesceStreamsPreprocessor()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        pre.preprocess_cell(cell, {}, i)
        kept = []
        for out in cell.outputs:
            if out.output_type == "stream":
                lines = []
                for line in re.findall(r"[^\n]*\n|[^\n]+$", out.text):
                    text = line.rstrip("\n")
                    if "\r" in text:
                        text = text.split("\r")[-1]
                        if not text.strip():
                            continue
                    lines.append(text + line[len(line.rstrip("\n")):])
                out.text = "".join(lines)
                if not out.text.strip():
                    continue
            kept.append(out)
        cell.outputs = kept


def _renumber(nb: Any) -> None:
    """Number the code cells 1, 2, ... in order (they ran top to bottom; the kernel's setup
    lines took the first count)."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
            for out in cell.outputs:
                if out.output_type == "execute_result":
                    out.execution_count = count


def execute(nb: Any, *, small: bool, timeout: int = 1800, workdir: str | Path | None = None,
            extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Execute ``nb`` (an nbformat notebook, changed in place) in a fresh ``python3`` kernel
    and return the record of the run (see the module docstring; ``executed_at_commit`` and
    ``uncommitted`` are added by `record`).

    Args:
      nb: the notebook.
      small: run at the small size (``SURCO_SMALL=1``).
      timeout: seconds allowed per cell.
      workdir: the kernel's working folder (default: a new temporary folder).
      extra_env: more environment variables for the kernel.

    Raises:
      NotebookError: a cell raised (the message names the cell and the error).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    import nbformat

    env_saved = {k: os.environ.get(k) for k in ("SURCO_SMALL", "MPLBACKEND", *(extra_env or {}))}
    os.environ.pop("MPLBACKEND", None)          # the kernel's inline backend saves the plots
    os.environ.pop("SURCO_SMALL", None)
    if small:
        os.environ["SURCO_SMALL"] = "1"
    os.environ.update(extra_env or {})
    nb.cells.append(nbformat.v4.new_code_cell(_LIST_MODULES))
    tmp = tempfile.TemporaryDirectory(prefix="surco-nb-") if workdir is None else None
    try:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=False,
            record_timing=False, store_widget_state=False,
            resources={"metadata": {"path": str(workdir or tmp.name)}},
            extra_arguments=[f"--IPKernelApp.exec_lines={KERNEL_SETUP!r}"])
        t0 = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as exc:
            raise NotebookError(str(exc)) from exc
        seconds = time.perf_counter() - t0
    finally:
        for k, v in env_saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tmp is not None:
            tmp.cleanup()
    listing = nb.cells.pop()
    text = "".join(o.get("text", "") for o in listing.outputs if o.output_type == "stream")
    line = next((ln for ln in text.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        raise NotebookError(f"the module listing printed nothing usable: {text!r}")
    modules = {name: os.path.relpath(path, ROOT) for name, path in json.loads(line[len(_MARK):])}
    _tidy_streams(nb)
    _renumber(nb)
    modules = {n: p for n, p in sorted(modules.items())
               if n == PACKAGE or n.startswith(PACKAGE + ".")}
    return {"small": bool(small), "seconds": round(seconds, 1),
            "imports": direct_imports(nb, modules), "modules": modules}


def record(nb: Any, run: dict[str, Any], commit: str, repo: Path = ROOT) -> None:
    """Store ``run`` and the commit in ``nb.metadata.surco``, with the module files that
    have uncommitted changes (``git status --porcelain``)."""
    files = sorted(set(run["modules"].values()))
    dirty = git("status", "--porcelain", "--", *files, repo=repo) if files else ""
    uncommitted = sorted(line[3:] for line in dirty.splitlines() if line.strip())
    nb.metadata["surco"] = {"executed_at_commit": commit,
                            "executed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            **run, "uncommitted": uncommitted}


def stale(nb: Any, name: str = "notebook", repo: Path = ROOT) -> list[str]:
    """Why the saved outputs of ``nb`` may not be those of the code at HEAD (empty: fresh).

    Reasons: no record (never run by `make notebooks`); the recorded commit is not an
    ancestor of HEAD (e.g. a shallow clone, or history rewritten); a module file it loaded
    changed in a commit after the recorded one (each commit and file named); a module file
    had uncommitted changes when it ran.

    Raises:
      NotebookError: the repository is not a git work tree.
    """
    head_commit(repo)
    meta = nb.metadata.get("surco")
    if not meta or "executed_at_commit" not in meta or "modules" not in meta:
        return [f"{name} has no execution record (metadata.surco): run `make notebooks`"]
    commit = meta["executed_at_commit"]
    try:
        git("merge-base", "--is-ancestor", commit, "HEAD", repo=repo)
    except NotebookError:
        shallow = git("rev-parse", "--is-shallow-repository", repo=repo) == "true"
        return [f"{name} was executed at commit {commit[:12]}, which is not in the history of "
                + ("HEAD in this shallow clone: `git fetch --unshallow` to check it"
                   if shallow else "HEAD (rewritten history?): run `make notebooks` again")]
    reasons = []
    if meta.get("uncommitted"):
        reasons.append(f"{name} was executed with uncommitted changes to "
                       f"{', '.join(meta['uncommitted'])}: commit them and run `make notebooks` again")
    files = sorted(set(meta["modules"].values()))
    if not files:
        return reasons + [f"{name}'s record lists no modules of the repository: run `make "
                          f"notebooks` again"]
    log = git("log", "--format=%x1e%h %s", "--name-only", f"{commit}..HEAD", "--", *files,
              repo=repo)
    for block in filter(str.strip, log.split("\x1e")):
        head, *changed = [ln for ln in block.splitlines() if ln.strip()]
        reasons.append(f"{name} was executed at {commit[:12]}; commit {head} changed "
                       f"{', '.join(changed)}, which it loads: run `make notebooks`")
    return reasons


def main(argv: list[str] | None = None) -> int:
    """Execute the given notebooks (default: every ``notebooks/*.ipynb``) in place."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path)
    p.add_argument("--small", action="store_true",
                   help="run at the small size the tests use (SURCO_SMALL=1)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = p.parse_args(argv)
    import nbformat

    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    commit = head_commit()
    dirty_any = []
    for path in paths:
        print(f"{path.name}: executing ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        try:
            run = execute(nb, small=args.small, timeout=args.timeout)
        except NotebookError as exc:
            print(f"{path.name}: FAILED (left unchanged)\n{exc}", file=sys.stderr)
            return 1
        record(nb, run, commit)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        m = nb.metadata["surco"]
        dirty_any += m["uncommitted"]
        print(f"{path.name}: {m['seconds']:.0f} s, {len(m['modules'])} modules of the "
              f"repository loaded, recorded at {commit[:12]}", flush=True)
    if dirty_any:
        print("WARNING: these module files had uncommitted changes, so the outputs are not "
              f"those of {commit[:12]} and tests/test_notebooks.py will call them stale: "
              f"{', '.join(sorted(set(dirty_any)))}. Commit them, then run `make notebooks` "
              "again.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
