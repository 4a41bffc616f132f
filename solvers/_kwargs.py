"""Unknown keyword arguments, refused with the valid names and a "did you mean" suggestion.

Shared by `make_solver` and the backends, and meant for any function that takes
``**kwargs``: import it from the package, ``from surco.solvers import check_kwargs``
(this module is the solver layer's own):

    >>> from surco.solvers import check_kwargs
    >>> check_kwargs("make_solver", {"tim_limit": 1}, ["time_limit", "threads"])
    Traceback (most recent call last):
      ...
    TypeError: make_solver: unknown keyword 'tim_limit' (did you mean 'time_limit'?); valid: ...
"""
from __future__ import annotations

import difflib
from typing import Iterable, Mapping


def suggest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the valid name closest to ``name`` (difflib's ratio at
    least 0.6), or ``""`` when none is close."""
    close = difflib.get_close_matches(name, sorted(set(valid)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_kwargs(func_name: str, given: Mapping[str, object], valid: Iterable[str]) -> None:
    """Refuse keywords of ``given`` that are not in ``valid``.

    Args:
      func_name: what the message starts with, e.g. ``"make_solver"``.
      given: the keyword arguments received (only the keys are read).
      valid: every keyword name the function takes.

    Raises:
      TypeError: naming each unknown keyword, the closest valid name where one is close
        (``difflib.get_close_matches``), and the valid names, e.g. ``make_solver: unknown
        keyword 'tim_limit' (did you mean 'time_limit'?); valid: ...``.
    """
    names = sorted(set(valid))
    unknown = [k for k in given if k not in names]
    if not unknown:
        return
    parts = [f"{k!r}{suggest(k, names)}" for k in unknown]
    what = "keyword" if len(unknown) == 1 else "keywords"
    raise TypeError(f"{func_name}: unknown {what} {', '.join(parts)}; valid: {', '.join(names)}")
