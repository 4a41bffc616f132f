"""The notebooks: each runs top to bottom (at the small size, SURCO_SMALL=1, on a copy: the
committed files are never rewritten here), and the committed ones carry fresh outputs.

Fresh means (notebooks/execute.py, `stale`): executed by `make notebooks`, which records in
``metadata.surco`` the commit it ran at and every module of the repository the notebook
loaded while it ran (transitively: ``import surco`` loads most of surco/ and solvers/), and
no such module file changed in a commit after that one. Files under notebooks/ are not
modules, so the commit that stores re-executed notebooks keeps them fresh. The check needs
the repository's history: outside a git work tree it fails, saying so.
"""
import importlib.util
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _load_executor():
    spec = importlib.util.spec_from_file_location("notebooks_execute",
                                                  ROOT / "notebooks" / "execute.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ex = _load_executor()


def test_there_are_the_five_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_"], NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, tmp_path):
    before = path.read_bytes()
    nb = nbformat.read(path, as_version=4)
    run = ex.execute(nb, small=True, timeout=600, workdir=tmp_path,
                     extra_env={"JAX_PLATFORMS": "cpu"})
    assert path.read_bytes() == before, "the committed notebook must not be rewritten"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    assert run["small"] is True
    assert "surco" in run["imports"] and "surco" in run["modules"], run
    assert all((ROOT / f).is_file() for f in run["modules"].values()), run["modules"]
    assert not any(WIDGET_MIME in o.get("data", {}) for c in nb.cells
                   if c.cell_type == "code" for o in c.outputs), "widget output saved"
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), counts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs(path):
    """Saved by `make notebooks`: every code cell ran, in order, without an error; at least
    one plot; progress as text, no widget state."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        f"{path.name}: not executed top to bottom: run `make notebooks`")
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name}: an error is saved"
    assert any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
               for o in outputs), f"{path.name}: no plot in the saved outputs"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state saved"
    assert not any(WIDGET_MIME in o.get("data", {}) for o in outputs), f"{path.name}: widget output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_are_fresh(path):
    nb = nbformat.read(path, as_version=4)
    reasons = ex.stale(nb, path.name)
    assert not reasons, "\n".join(reasons)


# --- the record and the freshness check themselves, on small synthetic cases ---

def test_direct_imports_reads_the_cells():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os, surco\n%matplotlib inline\n"
                                  "from surco.problems import routing as R\n"
                                  "from surco.solvers import LinearSpec"),
        nbformat.v4.new_markdown_cell("import surco.lns"),
        nbformat.v4.new_code_cell("import numpy as np")])
    loaded = {"surco", "surco.problems", "surco.problems.routing", "surco.solvers"}
    assert ex.direct_imports(nb, loaded) == ["surco", "surco.problems",
                                             "surco.problems.routing", "surco.solvers"]
    # a name that is not a module (a class) is not listed
    assert ex.direct_imports(nb, loaded - {"surco.problems.routing"}) == [
        "surco", "surco.problems", "surco.solvers"]


def test_progress_is_saved_as_the_text_a_terminal_shows():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="run:  10%|#   | 1/10\r"),
        nbformat.v4.new_output("stream", name="stderr", text="run: 100%|####| 10/10\n"),
        nbformat.v4.new_output("stream", name="stderr", text="bar:  50%\r          \r"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    ex._tidy_streams(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [
        ("stderr", "run: 100%|####| 10/10\n"), ("stdout", "done\n")]


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                    "-c", "commit.gpgsign=false", *args], cwd=repo, check=True,
                   capture_output=True)


def _commit(repo, files: dict, message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return ex.git("rev-parse", "HEAD", repo=repo)


def test_freshness_check_on_a_small_history(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    c1 = _commit(repo, {"pkg/mod.py": "x = 1\n", "pkg/other.py": "y = 1\n",
                        "notebooks/a.ipynb": "{}"}, "code")
    nb = nbformat.v4.new_notebook()
    ex.record(nb, {"modules": {"pkg.mod": "pkg/mod.py"}, "imports": ["pkg"], "small": False,
                   "seconds": 1.0}, c1, repo=repo)
    assert nb.metadata.surco["executed_at_commit"] == c1
    assert nb.metadata.surco["uncommitted"] == []
    assert ex.stale(nb, "a", repo=repo) == []
    _commit(repo, {"notebooks/a.ipynb": '{"outputs": 1}'}, "notebook outputs only")
    _commit(repo, {"pkg/other.py": "y = 2\n"}, "a module the notebook does not load")
    assert ex.stale(nb, "a", repo=repo) == []
    _commit(repo, {"pkg/mod.py": "x = 2\n"}, "change a loaded module")
    (reason,) = ex.stale(nb, "a", repo=repo)
    assert "change a loaded module" in reason and "pkg/mod.py" in reason, reason
    # a module file with uncommitted changes when the notebook ran
    (repo / "pkg" / "mod.py").write_text("x = 3\n")
    nb2 = nbformat.v4.new_notebook()
    ex.record(nb2, {"modules": {"pkg.mod": "pkg/mod.py"}}, ex.head_commit(repo), repo=repo)
    assert nb2.metadata.surco["uncommitted"] == ["pkg/mod.py"]
    (reason,) = ex.stale(nb2, "b", repo=repo)
    assert "uncommitted changes to pkg/mod.py" in reason, reason
    # a commit that is not in the history, and no record at all
    nb.metadata.surco["executed_at_commit"] = "0" * 40
    (reason,) = ex.stale(nb, "a", repo=repo)
    assert "not in the history" in reason, reason
    (reason,) = ex.stale(nbformat.v4.new_notebook(), "c", repo=repo)
    assert "make notebooks" in reason


def test_freshness_check_outside_a_git_work_tree_fails_clearly(tmp_path):
    if subprocess.run(["git", "rev-parse"], cwd=tmp_path, capture_output=True).returncode == 0:
        pytest.fail(f"{tmp_path} is inside a git work tree; this test needs one that is not")
    with pytest.raises(ex.NotebookError, match="not a git work tree"):
        ex.stale(nbformat.v4.new_notebook(), "a", repo=tmp_path)
