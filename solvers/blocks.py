"""Named variable blocks of a `LinearSpec`: Ω written over ``{"open": (m,), "assign": (n, m)}``.

Solvers see one flat x (length n = Σ of the blocks' sizes, the blocks laid out one after
the other in the order given, each row-major); users see a dict of arrays, one per block.
`Blocks` is the layout (it splits a flat x into the dict and joins it back), `Rows` a group
of constraint rows written block by block, and `build_from_blocks` the body of
`LinearSpec.from_blocks`.

    >>> import numpy as np
    >>> from surco.solvers import LinearSpec, Rows
    >>> m, n = 2, 3                       # facilities, clients
    >>> one = np.zeros((n, n, m)); one[np.arange(n), np.arange(n)] = 1   # row i: Σ_j assign[i, j]
    >>> spec = LinearSpec.from_blocks({"open": (m,), "assign": (n, m)},
    ...     rows=[Rows({"assign": one}, "==", 1)], ub=1, integer=True)
    >>> spec.shape, spec.blocks.slice("assign")
    ((8,), slice(2, 8, None))
    >>> {k: v.shape for k, v in spec.split(np.arange(8.0)).items()}
    {'open': (2,), 'assign': (3, 2)}
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["Blocks", "Rows", "SENSES", "build_from_blocks"]

#: the senses of a `Rows`
SENSES = ("<=", "==", ">=")


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in dims):
            raise TypeError
    except TypeError:
        raise ValueError(f"Blocks: block {name!r} has shape {shape!r}; expected a tuple of "
                         "ints") from None
    if any(s <= 0 for s in dims):
        raise ValueError(f"Blocks: block {name!r} has shape {dims}; expected positive "
                         "dimensions (or () for a scalar)")
    return tuple(int(s) for s in dims)


class Blocks:
    """The layout of named blocks in a flat x: block ``name`` occupies ``x[slice(name)]``,
    reshaped (row-major) to its shape.

    Args:
      shapes: ``{name: shape}`` in layout order; a shape is a tuple of positive ints, an int
        (a vector) or ``()`` (one scalar).
      variables: optional, one key per flat position (e.g. the MathOpt variables a spec was
        imported from, `LinearSpec.from_mathopt`); `position` looks them up. They are not
        pickled (a spec sent to a worker process keeps the layout only).

    Raises:
      ValueError: no block, a name that is not a non-empty str, a bad shape, or
        ``variables`` of the wrong length.
    """

    def __init__(self, shapes: Mapping[str, Any], variables: Sequence[Any] | None = None):
        if isinstance(shapes, Blocks):
            shapes = shapes.shapes
        if not isinstance(shapes, Mapping) or not shapes:
            raise ValueError(f"Blocks: expected a non-empty dict {{name: shape}}, got {shapes!r}")
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._slices: dict[str, slice] = {}
        off = 0
        for name, shape in shapes.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Blocks: block names must be non-empty strings, got {name!r}")
            s = _shape(name, shape)
            size = math.prod(s)
            self.shapes[name] = s
            self._slices[name] = slice(off, off + size)
            off += size
        self.n = off
        self.variables = None if variables is None else tuple(variables)
        if self.variables is not None and len(self.variables) != self.n:
            raise ValueError(f"Blocks: variables has {len(self.variables)} entries, expected "
                             f"{self.n} (one per flat position)")
        self._pos = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    def _check(self, name: str) -> None:
        if name not in self.shapes:
            raise KeyError(f"Blocks: no block {name!r}; the blocks are {list(self.shapes)}")

    def slice(self, name: str) -> slice:
        """The flat positions of block ``name``."""
        self._check(name)
        return self._slices[name]

    def indices(self, name: str) -> np.ndarray:
        """The flat position of each entry of block ``name``, shaped like the block."""
        s = self.slice(name)
        return np.arange(s.start, s.stop).reshape(self.shapes[name])

    def position(self, key: Any) -> int:
        """The flat position of ``key``: one of ``variables`` (see the constructor), or a
        ``(name, index)`` pair, e.g. ``("assign", (2, 0))``.

        Raises:
          KeyError: an unknown key."""
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) \
                and key[0] in self.shapes:
            name, idx = key
            return int(self.indices(name)[idx])
        if self.variables is not None:
            if self._pos is None:
                self._pos = {v: i for i, v in enumerate(self.variables)}
            if key in self._pos:
                return self._pos[key]
        raise KeyError(f"Blocks: {key!r} is neither a (block name, index) pair nor one of "
                       "the layout's variables")

    def split(self, x) -> dict[str, Any]:
        """``{name: block}`` from x whose last axis is flat (length n); leading axes (a
        batch) are kept. Works on NumPy and JAX arrays (slices and reshapes only, so
        ``jax.grad`` flows through).

        Raises:
          ValueError: the last axis of x does not have n entries."""
        shape = getattr(x, "shape", None)
        if shape is None:
            x = np.asarray(x)
            shape = x.shape
        if len(shape) == 0 or shape[-1] != self.n:
            raise ValueError(f"Blocks.split: x has shape {tuple(shape)}, expected a last axis "
                             f"of {self.n} entries (the blocks {self.describe()})")
        lead = tuple(shape[:-1])
        return {k: x[..., self._slices[k]].reshape(lead + s) for k, s in self.shapes.items()}

    def join(self, blocks: Mapping[str, Any], xp=np):
        """The flat x (last axis n) from ``{name: block}``; ``xp`` the array module
        (``np`` or ``jax.numpy``). Every block must be given, with its shape (after any
        common leading axes).

        Raises:
          ValueError: a missing or unknown block, or a block of the wrong shape."""
        if not isinstance(blocks, Mapping):
            raise ValueError(f"Blocks.join: expected a dict {{name: array}}, got "
                             f"{type(blocks).__name__}")
        extra = [k for k in blocks if k not in self.shapes]
        missing = [k for k in self.shapes if k not in blocks]
        if extra or missing:
            raise ValueError(f"Blocks.join: blocks {self.names} expected; missing {missing}, "
                             f"unknown {extra}")
        parts, lead = [], None
        for k, s in self.shapes.items():
            v = xp.asarray(blocks[k])
            if tuple(v.shape[v.ndim - len(s):]) != s or v.ndim < len(s):
                raise ValueError(f"Blocks.join: block {k!r} has shape {tuple(v.shape)}, "
                                 f"expected {s} (after any leading axes)")
            here = tuple(v.shape[:v.ndim - len(s)])
            if lead is None:
                lead = here
            elif here != lead:
                raise ValueError(f"Blocks.join: block {k!r} has leading axes {here}, the "
                                 f"others {lead}")
            parts.append(v.reshape(lead + (-1,)))
        return xp.concatenate(parts, axis=-1)

    def __getstate__(self) -> dict:
        # the variables (e.g. MathOpt's, tied to their model) stay in this process: a spec
        # sent to a worker process solves without them
        return {**self.__dict__, "variables": None, "_pos": None}

    def describe(self) -> str:
        return "{" + ", ".join(f"{k!r}: {s}" for k, s in self.shapes.items()) + "}"

    def __eq__(self, other) -> bool:
        return isinstance(other, Blocks) and list(self.shapes.items()) == list(
            other.shapes.items())

    def __hash__(self) -> int:
        return hash(tuple(self.shapes.items()))

    def __repr__(self) -> str:
        return f"Blocks({self.describe()})"


@dataclasses.dataclass(frozen=True)
class Rows:
    """One or more constraint rows written over blocks: ``Σ_b <coefs[b], x_b> sense rhs``.

    Args:
      coefs: ``{block name: coefficients}``; for one row an array of the block's shape,
        for k rows an array of shape ``(k, *block shape)`` or a ``scipy.sparse`` matrix
        ``(k, block size)`` (row-major entries of the block). Blocks not named have
        coefficient 0.
      sense: "<=", "==" or ">=".
      rhs: a scalar or k right-hand sides.
      name: used in error messages.
    """

    coefs: Mapping[str, Any]
    sense: str
    rhs: Any
    name: str = ""

    def matrix(self, layout: Blocks, where: str) -> tuple[sp.csr_matrix, np.ndarray]:
        """``(A, b)`` over the flat x of ``layout`` (sense not applied).

        Raises:
          ValueError: naming the row group and the block: an unknown block, a shape that fits
            neither one row nor k rows, row counts that differ between blocks, a bad rhs."""
        where = f"{where} ({self.name!r})" if self.name else where
        if self.sense not in SENSES:
            raise ValueError(f"{where}: sense must be one of {SENSES}, got {self.sense!r}")
        if not isinstance(self.coefs, Mapping) or not self.coefs:
            raise ValueError(f"{where}: coefs must be a non-empty dict {{block name: array}}")
        k, cols = None, []
        for name, c in self.coefs.items():
            if name not in layout.shapes:
                raise ValueError(f"{where}: no block {name!r}; the blocks are "
                                 f"{list(layout.shapes)}")
            s, size = layout.shapes[name], math.prod(layout.shapes[name])
            if sp.issparse(c):
                M = sp.csr_matrix(c, dtype=np.float64)
                if M.shape[1] != size:
                    raise ValueError(f"{where}: block {name!r}: sparse coefficients have "
                                     f"{M.shape[1]} columns, expected {size} (the block's size)")
            else:
                a = np.asarray(c, dtype=np.float64)
                if a.shape == s:
                    M = sp.csr_matrix(a.reshape(1, size))
                elif a.ndim == len(s) + 1 and a.shape[1:] == s:
                    M = sp.csr_matrix(a.reshape(a.shape[0], size))
                else:
                    raise ValueError(f"{where}: block {name!r}: coefficients of shape {a.shape}"
                                     f"; expected {s} (one row) or (k, *{s}) (k rows)")
            if k is None:
                k = M.shape[0]
            elif M.shape[0] != k:
                raise ValueError(f"{where}: block {name!r} gives {M.shape[0]} rows, another "
                                 f"block {k}")
            sl = layout.slice(name)
            M = M.tocoo()
            cols.append(sp.csr_matrix((M.data, (M.row, M.col + sl.start)), shape=(k, layout.n)))
        b = np.asarray(self.rhs, dtype=np.float64)
        b = np.full(k, float(b)) if b.ndim == 0 else b.reshape(-1)
        if b.shape != (k,):
            raise ValueError(f"{where}: rhs has {b.size} entries, expected 1 or {k} (the rows)")
        A = cols[0]
        for M in cols[1:]:
            A = A + M
        return A.tocsr(), b


def _per_block(what: str, value: Any, layout: Blocks, default: float | bool):
    """A flat array from a scalar / flat array (as `LinearSpec` takes it), or from
    ``{block: scalar or array of its shape}`` (blocks not named take ``default``)."""
    if not isinstance(value, Mapping):
        return value
    dtype = bool if isinstance(default, bool) else np.float64
    out = np.full(layout.n, default, dtype=dtype)
    for name, v in value.items():
        if name not in layout.shapes:
            raise ValueError(f"LinearSpec.from_blocks: {what} names no block {name!r}; the "
                             f"blocks are {list(layout.shapes)}")
        a = np.asarray(v, dtype=dtype)
        s = layout.shapes[name]
        if a.shape not in ((), s):
            raise ValueError(f"LinearSpec.from_blocks: {what}[{name!r}] has shape {a.shape}, "
                             f"expected a scalar or the block's shape {s}")
        out[layout.slice(name)] = np.broadcast_to(a, s).reshape(-1)
    return out


def build_from_blocks(blocks: Mapping[str, Any] | Blocks, rows: Sequence[Rows], lb, ub, integer,
                      name: str) -> dict[str, Any]:
    """The keyword arguments of the flat `LinearSpec` for `LinearSpec.from_blocks`."""
    layout = blocks if isinstance(blocks, Blocks) else Blocks(blocks)
    if isinstance(rows, Rows):
        rows = [rows]
    ub_parts, eq_parts = [], []
    for i, r in enumerate(rows):
        if not isinstance(r, Rows):
            raise ValueError(f"LinearSpec.from_blocks: rows[{i}] is a {type(r).__name__}, "
                             "expected a surco.solvers.Rows")
        A, b = r.matrix(layout, f"LinearSpec.from_blocks: rows[{i}]")
        if r.sense == "==":
            eq_parts.append((A, b))
        else:
            s = 1.0 if r.sense == "<=" else -1.0
            ub_parts.append((s * A, s * b))

    def stack(parts):
        if not parts:
            return None, None
        return sp.vstack([A for A, _ in parts]).tocsr(), np.concatenate([b for _, b in parts])

    A_ub, b_ub = stack(ub_parts)
    A_eq, b_eq = stack(eq_parts)
    return dict(shape=(layout.n,), A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq,
                lb=_per_block("lb", lb, layout, 0.0), ub=_per_block("ub", ub, layout, math.inf),
                integer=_per_block("integer", integer, layout, False), name=name, blocks=layout)
