"""A family dropped into ``problems/`` is run by the conformance test with no test edit.

The conformance test (``tests/harness/test_conformance.py``) takes its families from
`surco.problems.FAMILIES`. Here a temporary family package is put on the package's path in a
fresh interpreter, FAMILIES is discovered again (as it is at import), and pytest runs the
unedited conformance test: its four checks must be collected and pass for the new family.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_FAMILY_PKG = '''
"""A family made in a test: choose 2 of 5 items, f = (v·z − 0.7)²."""
import jax.numpy as jnp
import numpy as np

import surco
from surco.solvers import LinearSpec

SPEC = LinearSpec((5,), A_eq=np.ones((1, 5)), b_eq=[2], lb=0, ub=1, integer=True)


def generate(count, seed=0):
    r = np.random.default_rng(seed)
    return [{"v": jnp.asarray(r.uniform(0, 1, 5), jnp.float32)} for _ in range(count)]


PROBLEM = surco.Problem("choose-two", SPEC, lambda z, y: (y["v"] @ z - 0.7) ** 2,
                        features=lambda y: y["v"][:, None])
FAMILY = surco.family_for(PROBLEM, generate, name="choose_two")
'''

_RUN = '''
import sys
import surco.problems as P
P.__path__.append({folder!r})
P.FAMILIES = P.discover_families()
assert "choose_two" in P.FAMILIES, P.FAMILIES
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", {test!r},
                      "-k", "choose_two", "-o", "addopts="]))
'''


def test_a_new_family_is_run_by_the_unedited_conformance_test(tmp_path):
    pkg = tmp_path / "choose_two"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(_FAMILY_PKG))
    code = _RUN.format(folder=str(tmp_path),
                       test=str(REPO / "tests" / "harness" / "test_conformance.py"))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=1200)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "4 passed" in text, text[-3000:]
