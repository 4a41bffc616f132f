"""`LinearSpec`: a solver-neutral description of a mixed-integer linear feasible set.

    Ω = { x ∈ R^n : A_ub x <= b_ub,  A_eq x = b_eq,  lb <= x <= ub,  x_i ∈ Z for i in integer }

``x`` is handled flat (length n = prod(shape)) by solvers and reshaped to ``shape`` for users,
or, for a spec built from named blocks (`LinearSpec.from_blocks`, `LinearSpec.from_mathopt`),
split into a dict of blocks (`LinearSpec.split`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from .blocks import Blocks, Rows, build_from_blocks


def _as_csr(name: str, A, n: int) -> sp.csr_matrix:
    if A is None:
        return sp.csr_matrix((0, n))
    A = sp.csr_matrix(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[1] != n:
        raise ValueError(f"LinearSpec.{name}: expected a matrix with {n} columns "
                         f"(one per entry of x), got shape {A.shape}")
    if A.nnz and not np.all(np.isfinite(A.data)):
        raise ValueError(f"LinearSpec.{name}: contains NaN or inf")
    A.sum_duplicates()
    A.eliminate_zeros()
    return A


def _as_rhs(name: str, b, m: int, matrix: str) -> np.ndarray:
    if b is None:
        b = np.zeros(0)
    b = np.asarray(b, dtype=np.float64).reshape(-1) if np.ndim(b) else np.full(m, float(b))
    if b.shape != (m,):
        raise ValueError(f"LinearSpec.{name}: expected {m} entries (rows of {matrix}), "
                         f"got {b.shape[0]}")
    if not np.all(np.isfinite(b)):
        raise ValueError(f"LinearSpec.{name}: contains NaN or inf")
    return b


def _as_bound(name: str, v, n: int, default: float) -> np.ndarray:
    if v is None:
        v = default
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 0:
        v = np.full(n, float(v))
    v = v.reshape(-1)
    if v.shape != (n,):
        raise ValueError(f"LinearSpec.{name}: expected a scalar or {n} entries, got {v.shape[0]}")
    if np.any(np.isnan(v)):
        raise ValueError(f"LinearSpec.{name}: contains NaN")
    return v


@dataclasses.dataclass(frozen=True, eq=False)
class LinearSpec:
    """Immutable mixed-integer linear feasible set Ω.

    Args:
      shape: shape of x as users see it, e.g. ``(tables, devices)``; n = prod(shape).
      A_ub, b_ub: inequality rows ``A_ub @ x <= b_ub`` (anything ``scipy.sparse.csr_matrix``
        accepts; ``None`` for none).
      A_eq, b_eq: equality rows ``A_eq @ x == b_eq``.
      lb, ub: bounds, scalars or length-n arrays (``-inf`` / ``inf`` allowed); default 0 and inf.
      integer: which entries are integer: a bool, or a bool mask with n entries (or shaped
        like x), or a sequence of flat indices.
      name: used in error messages.
      blocks: optional named blocks of x (`Blocks`, or ``{name: shape}``), usually set by
        `from_blocks`; then shape must be ``(n,)`` with n the blocks' total size.

    Raises:
      ValueError: naming the field, for wrong shapes, NaN/inf in matrices or right-hand
        sides, NaN bounds, ``lb > ub``, or lb = +inf / ub = -inf.
    """

    shape: tuple[int, ...]
    A_ub: sp.csr_matrix | None = None
    b_ub: np.ndarray | None = None
    A_eq: sp.csr_matrix | None = None
    b_eq: np.ndarray | None = None
    lb: np.ndarray | float | None = 0.0
    ub: np.ndarray | float | None = math.inf
    integer: np.ndarray | bool | Sequence[int] = False
    name: str = "LinearSpec"
    blocks: Blocks | None = None

    def __post_init__(self):
        shape = self.shape
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        try:
            dims = tuple(shape)
            if isinstance(shape, (str, bytes)) or not all(
                    isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in dims):
                raise TypeError
            shape = tuple(int(s) for s in dims)
        except TypeError:
            raise ValueError(f"LinearSpec.shape: expected a tuple of ints, got {self.shape!r}") from None
        if not shape or any(s <= 0 for s in shape):
            raise ValueError(f"LinearSpec.shape: expected positive dimensions, got {shape}")
        n = int(np.prod(shape))
        set_ = object.__setattr__
        set_(self, "shape", shape)
        A_ub = _as_csr("A_ub", self.A_ub, n)
        A_eq = _as_csr("A_eq", self.A_eq, n)
        set_(self, "A_ub", A_ub)
        set_(self, "A_eq", A_eq)
        set_(self, "b_ub", _as_rhs("b_ub", self.b_ub, A_ub.shape[0], "A_ub"))
        set_(self, "b_eq", _as_rhs("b_eq", self.b_eq, A_eq.shape[0], "A_eq"))
        lb = _as_bound("lb", self.lb, n, 0.0)
        ub = _as_bound("ub", self.ub, n, math.inf)
        if np.any(lb == math.inf):
            raise ValueError("LinearSpec.lb: +inf lower bound at index "
                             f"{int(np.argmax(lb == math.inf))}")
        if np.any(ub == -math.inf):
            raise ValueError("LinearSpec.ub: -inf upper bound at index "
                             f"{int(np.argmax(ub == -math.inf))}")
        bad = np.flatnonzero(lb > ub)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"LinearSpec.lb/ub: lb > ub at {bad.size} entries, first at flat "
                             f"index {i} ({lb[i]} > {ub[i]})")
        set_(self, "lb", lb)
        set_(self, "ub", ub)
        integer = self.integer
        if isinstance(integer, (bool, np.bool_)):
            mask = np.full(n, bool(integer))
        else:
            arr = np.asarray(integer)
            if arr.dtype == bool:
                if arr.size != n:
                    raise ValueError(f"LinearSpec.integer: bool mask has {arr.size} entries, "
                                     f"expected {n}")
                mask = arr.reshape(-1).copy()
            else:
                if arr.size and not np.issubdtype(arr.dtype, np.integer):
                    raise ValueError("LinearSpec.integer: expected a bool, a bool mask or integer "
                                     f"indices, got an array of dtype {arr.dtype}")
                mask = np.zeros(n, bool)
                idx = arr.reshape(-1).astype(np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    raise ValueError(f"LinearSpec.integer: indices must lie in [0, {n})")
                mask[idx] = True
        mask.setflags(write=False)
        for a in (lb, ub, self.b_ub, self.b_eq):
            a.setflags(write=False)
        set_(self, "integer", mask)
        if self.blocks is not None:
            layout = self.blocks if isinstance(self.blocks, Blocks) else Blocks(self.blocks)
            if shape != (layout.n,):
                raise ValueError(f"LinearSpec.blocks: the blocks {layout.describe()} hold "
                                 f"{layout.n} entries; shape must then be ({layout.n},), got "
                                 f"{shape}")
            set_(self, "blocks", layout)

    @classmethod
    def from_blocks(cls, blocks: Mapping[str, Any] | Blocks, rows: Sequence[Rows] = (), *,
                    lb: Any = 0.0, ub: Any = math.inf, integer: Any = False,
                    name: str = "LinearSpec") -> "LinearSpec":
        """Ω over named blocks of variables, with rows written block by block (`Rows`).

        Args:
          blocks: ``{name: shape}`` in layout order, e.g. ``{"open": (m,), "assign": (n, m)}``.
          rows: `Rows` groups (``Rows({"assign": A, "open": B}, "<=", b)``).
          lb, ub, integer: as for `LinearSpec` (scalar or flat), or per block:
            ``{name: scalar or array of the block's shape}`` (blocks not named: lb 0, ub inf,
            continuous).
          name: used in error messages.

        Returns:
          A flat `LinearSpec` of shape ``(n,)`` (what the solvers use) that keeps the layout in
          ``blocks``: `split` turns a flat x into the dict, `join` the dict back, and a
          `surco.Problem` on it calls f with the dict.

        Raises:
          ValueError: naming the row group and the block for rows that do not fit, or the
            field as for `LinearSpec`.

        Example: 2 facilities, 3 clients, each client on one open facility.

        >>> import numpy as np
        >>> from surco.solvers import LinearSpec, Rows, make_solver
        >>> m, n = 2, 3
        >>> each = np.zeros((n, n, m)); each[np.arange(n), np.arange(n)] = 1
        >>> link = np.eye(n * m).reshape(n * m, n, m)           # assign[i, j] - open[j] <= 0
        >>> spec = LinearSpec.from_blocks(
        ...     {"open": (m,), "assign": (n, m)},
        ...     rows=[Rows({"assign": each}, "==", 1),
        ...           Rows({"assign": link, "open": -np.tile(np.eye(m), (n, 1))}, "<=", 0)],
        ...     ub=1, integer=True)
        >>> cost = spec.join({"open": np.array([5.0, 3.0]), "assign": np.ones((n, m))})
        >>> x = spec.split(make_solver(spec).solve(cost).x)
        >>> x["open"], x["assign"][:, 1]
        (array([0., 1.]), array([1., 1., 1.]))
        """
        return cls(**build_from_blocks(blocks, rows, lb, ub, integer, name))

    @classmethod
    def from_mathopt(cls, model: Any, *, name: str | None = None) -> "LinearSpec":
        """Ω from an OR-Tools MathOpt model (`surco.solvers.mathopt_import`): every variable
        one flat position (with its bounds and integrality), every linear constraint a row;
        the objective is not part of Ω (`mathopt_cost` reads it as a linear cost).

        Variables named ``base[i,j,...]`` on a full index grid become a block ``base`` of
        that shape; any other variable a scalar block named by the variable (``x<id>``
        when unnamed or named twice). ``spec.blocks.position(variable)`` is the flat
        position of a MathOpt variable.

        Raises:
          TypeError: ``model`` is not a ``mathopt.Model``.
          ValueError: what cannot be imported, by name: a quadratic or indicator
            constraint, an auxiliary objective, a variable or row with an invalid bound.
        """
        from .mathopt_import import spec_kwargs_from_mathopt
        return cls(**spec_kwargs_from_mathopt(model, name))

    def split(self, x) -> dict[str, Any]:
        """``{block name: array}`` from a flat x (NumPy or JAX; leading batch axes kept).

        Raises:
          ValueError: the spec has no blocks, or x's last axis is not n long."""
        if self.blocks is None:
            raise ValueError(f"{self.name}: split needs a spec with named blocks "
                             "(LinearSpec.from_blocks)")
        return self.blocks.split(x)

    def join(self, blocks: Mapping[str, Any], xp=np):
        """The flat x from ``{block name: array}`` (``xp``: ``np`` or ``jax.numpy``).

        Raises:
          ValueError: the spec has no blocks, or blocks missing, unknown or misshapen."""
        if self.blocks is None:
            raise ValueError(f"{self.name}: join needs a spec with named blocks "
                             "(LinearSpec.from_blocks)")
        return self.blocks.join(blocks, xp)

    @property
    def n(self) -> int:
        """Number of scalar variables."""
        return int(np.prod(self.shape))

    @property
    def is_mip(self) -> bool:
        return bool(self.integer.any())

    def relaxed(self) -> "LinearSpec":
        """The LP relaxation: the same set without integrality."""
        return dataclasses.replace(self, integer=False, name=self.name + "[relaxed]")

    def violation(self, x) -> float:
        """Largest violation of any constraint, bound or integrality by ``x`` (0 if x ∈ Ω).

        Computed from the spec alone, independently of any solver, so that tests can check
        that a point returned by a solver or a heuristic is feasible.
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape != (self.n,):
            raise ValueError(f"{self.name}: x has {x.size} entries, expected {self.n}")
        v = [0.0, float(np.max(self.lb - x, initial=0.0)), float(np.max(x - self.ub, initial=0.0))]
        if self.A_ub.shape[0]:
            v.append(float(np.max(self.A_ub @ x - self.b_ub, initial=0.0)))
        if self.A_eq.shape[0]:
            v.append(float(np.max(np.abs(self.A_eq @ x - self.b_eq), initial=0.0)))
        if self.integer.any():
            xi = x[self.integer]
            v.append(float(np.max(np.abs(xi - np.round(xi)), initial=0.0)))
        return max(v)

    def contains(self, x, tol: float = 1e-6) -> bool:
        """Whether ``x`` lies in Ω up to ``tol`` (see `violation`)."""
        return self.violation(x) <= tol

    def __repr__(self) -> str:
        blocks = "" if self.blocks is None else f", blocks={self.blocks.describe()}"
        return (f"LinearSpec(name={self.name!r}, shape={self.shape}{blocks}, "
                f"ub_rows={self.A_ub.shape[0]}, "
                f"eq_rows={self.A_eq.shape[0]}, integer={int(self.integer.sum())}/{self.n})")
