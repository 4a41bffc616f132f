"""The built documentation site, as a browser shows it (`make docs` builds site/, then runs
this file with ``-m docs``; `make test` leaves it out, since a fresh machine has no browser).

Pages are rendered by headless Chromium (Debian's ``chromium`` package) and checked in the
DOM it dumps after loading them: the API page lists the public entry points, ``surco.zero``
first, and each notebook page shows its plot (an inline image, or an svg). Without Chromium
or without a built site the tests fail, saying what to install or run.
"""
import base64
import binascii
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
NOTEBOOK_PAGES = [f"notebooks/{p.stem}" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
API_NAMES = ["surco.zero", "surco.ZeroConfig", "surco.hybrid", "surco.prior.train", "surco.Problem", "surco.Family",
             "surco.compare", "surco.Budget", "surco.solvers", "surco.solvers.LinearSpec",
             "surco.solvers.make_solver", "surco.solvers.Status"]


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed, so the site cannot be checked in a browser: "
                "install Debian's package (`apt-get install -y chromium`), then run `make docs`")


def render(page: str) -> str:
    """The DOM of ``site/<page>/index.html`` after headless Chromium has loaded it."""
    html = SITE / page / "index.html"
    if not html.is_file():
        pytest.fail(f"{html.relative_to(ROOT)} is missing: build the site with `make docs`")
    cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--dump-dom", html.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "<html" in out.stdout, (
        f"{' '.join(cmd)} exited {out.returncode}: {out.stderr[-2000:]}")
    return out.stdout


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class _Page(HTMLParser):
    """Headings of documented objects (mkdocstrings' ``doc-heading``), and the images and
    svgs inside notebook outputs (``jp-OutputArea-output``; the theme's icons are svgs too)."""

    def __init__(self):
        super().__init__()
        self.headings: list[str] = []
        self.images: list[str] = []
        self.svgs = 0
        self._heading = 0      # open elements inside the current doc heading
        self._output = 0       # open elements inside the current notebook output
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        void = tag in VOID
        if self._heading:
            self._heading += not void
        elif tag in ("h1", "h2", "h3", "h4") and "doc-heading" in cls:
            self._heading, self._text = 1, []
        if self._output:
            self._output += not void
            if tag == "img":
                self.images.append(a.get("src") or "")
            elif tag == "svg":
                self.svgs += 1
        elif "jp-OutputArea-output" in cls and not void:
            self._output = 1

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self._output:
            self._output -= 1
        if self._heading:
            self._heading -= 1
            if not self._heading:
                self.headings.append(" ".join("".join(self._text).split()).rstrip("¶ "))

    def handle_data(self, data):
        if self._heading:
            self._text.append(data)


def _parse(dom: str) -> _Page:
    page = _Page()
    page.feed(dom)
    return page


def _png_size(src: str) -> tuple[int, int]:
    """Width and height of an inline PNG (``data:image/png;base64,...``)."""
    try:
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
    except (IndexError, binascii.Error) as exc:
        raise AssertionError(f"not a base64 data URI: {src[:60]}...") from exc
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the inline image is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_api_page_lists_the_entry_points():
    page = _parse(render("api"))
    heads = [h.split()[0] for h in page.headings if h]
    assert heads and heads[0] == "surco.zero", heads[:5]
    missing = [n for n in API_NAMES if n not in heads]
    assert not missing, f"the API page does not document {missing}; it has {heads}"


def test_api_page_shows_the_docstrings():
    dom = render("api")
    # text from surco.zero's docstring and signature, as rendered
    assert "SurCo-zero" in dom and "estimator" in dom and "steps" in dom


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_shows_its_plot(page):
    p = _parse(render(page))
    pngs = [s for s in p.images if s.startswith("data:image/png;base64,")]
    sizes = [_png_size(s) for s in pngs]
    big = [wh for wh in sizes if wh[0] >= 200 and wh[1] >= 100]
    assert big or p.svgs, (f"{page}: no plot on the page ({len(p.images)} images, "
                           f"PNG sizes {sizes}, {p.svgs} svg): run `make notebooks`, then "
                           "`make docs`")


# --- the two pieces of build code the site depends on (docs/hooks.py, docs/griffe_doctests.py)

def _load(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fence_examples_wraps_doctests_only():
    fence = _load("griffe_doctests").fence_examples
    text = ("Text.\n\n>>> x = [1, 2]\n>>> x[0][-1:]\n1\n\nMore.\n\n"
            "    >>> indented  # a code block already\n\n```python\n>>> fenced\n```")
    assert fence(text) == ("Text.\n\n```pycon\n>>> x = [1, 2]\n>>> x[0][-1:]\n1\n```\n\nMore."
                           "\n\n    >>> indented  # a code block already\n\n```python\n"
                           ">>> fenced\n```")


def test_api_names_resolve_to_their_definitions():
    hooks = _load("hooks")
    import surco
    zero = hooks.defining_path("surco.zero")           # the function, not a module
    assert zero.endswith(".zero") and zero != "surco.zero", zero
    assert hooks.defining_path("surco.solvers") == "surco.solvers"   # a module stays
    assert hooks.defining_path("surco.Budget") == f"{surco.Budget.__module__}.Budget"
    with pytest.raises(AttributeError, match="no attribute or submodule 'nope'"):
        hooks.defining_path("surco.nope")
