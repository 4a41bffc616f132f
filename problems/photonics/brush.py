"""Brushes: the minimum-feature shapes of the fabrication constraint.

Schubert et al., "Inverse design of photonic devices with strict foundry fabrication
constraints", ACS Photonics 9 (2022) 2327, define a design as *feasible for a brush b* when
its solid region and its void region are each a union of placements ("touches") of b. A
brush is a small binary image with an *anchor* pixel; a touch at pixel p covers the pixels
``p + o`` for every offset o of the brush relative to its anchor.

Conventions used throughout `surco.problems.photonics`:

* The anchor of an ``h×w`` brush is the pixel ``(h // 2, w // 2)`` (the centre for odd sizes;
  for even sizes the lower-right of the four central pixels). It must belong to the brush.
* A touch is *centred inside the design* (its anchor on a design pixel); the part of its
  footprint that falls outside the design is ignored. Features touching the design boundary
  can therefore be cut by the boundary, but each is still at least the in-design part of a
  whole brush placed on the boundary.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

BrushKind = Literal["cross", "square", "notched_square", "circle"]
BRUSH_KINDS: tuple[str, ...] = ("cross", "square", "notched_square", "circle")


@dataclasses.dataclass(frozen=True, eq=False)
class Brush:
    """A brush: a binary footprint with an anchor at ``(h // 2, w // 2)``.

    Attributes:
      mask: ``(h, w)`` boolean array (read-only), True on the brush's pixels.
      name: a readable name such as ``"cross3"``.
    """

    mask: np.ndarray
    name: str = "brush"

    def __post_init__(self):
        m = np.asarray(self.mask)
        if m.ndim != 2 or min(m.shape) < 1:
            raise ValueError(f"Brush {self.name!r}: mask must be a non-empty 2-D array, got "
                             f"shape {m.shape}")
        if m.dtype != bool:
            if not np.all((m == 0) | (m == 1)):
                raise ValueError(f"Brush {self.name!r}: mask must be boolean or 0/1")
            m = m.astype(bool)
        if not m[m.shape[0] // 2, m.shape[1] // 2]:
            raise ValueError(f"Brush {self.name!r}: the anchor pixel {(m.shape[0] // 2, m.shape[1] // 2)} "
                             "must belong to the brush")
        m = np.array(m, dtype=bool)
        m.setflags(write=False)
        object.__setattr__(self, "mask", m)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)  # type: ignore[return-value]

    @property
    def anchor(self) -> tuple[int, int]:
        return self.mask.shape[0] // 2, self.mask.shape[1] // 2

    @property
    def offsets(self) -> np.ndarray:
        """``(K, 2)`` int array of the brush pixels relative to the anchor (row-major order)."""
        ii, jj = np.nonzero(self.mask)
        return np.stack([ii - self.anchor[0], jj - self.anchor[1]], axis=1)

    @property
    def size(self) -> int:
        """Number of pixels K of the brush."""
        return int(self.mask.sum())

    def key(self) -> tuple:
        """A hashable key (shape and pixel pattern) identifying the brush."""
        return (self.mask.shape, self.mask.tobytes())

    def __eq__(self, other) -> bool:
        return isinstance(other, Brush) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"Brush({self.name!r}, shape={self.shape}, pixels={self.size})"


def make_brush(kind: BrushKind = "cross", size: int = 3, *, notch: int | None = None) -> Brush:
    """Build one of the standard brushes.

    Args:
      kind: ``"cross"`` — the ``size×size`` square without its four ``⌊size/3⌋×⌊size/3⌋``
        corners (size 3 gives the 5-pixel plus, the default brush); ``"square"`` — the full
        square; ``"notched_square"`` — the square without ``notch×notch`` corners (default
        ``notch = max(1, size // 4)``); ``"circle"`` — the pixels whose centres lie within
        ``size / 2`` of the brush centre (``circle`` of size 3 equals the 3×3 square).
      size: side length in pixels, >= 1 (``cross`` and ``notched_square`` need >= 3).
      notch: corner notch size for ``notched_square`` only.

    Returns:
      A `Brush`.

    Raises:
      ValueError: unknown kind, size too small, or a notch that would empty the brush.
    """
    if kind not in BRUSH_KINDS:
        raise ValueError(f"make_brush: kind must be one of {BRUSH_KINDS}, got {kind!r}")
    size = int(size)
    if size < 1:
        raise ValueError(f"make_brush: size must be >= 1, got {size}")
    if notch is not None and kind != "notched_square":
        raise ValueError("make_brush: notch applies to kind='notched_square' only")
    ii, jj = np.mgrid[:size, :size]
    if kind == "square":
        mask = np.ones((size, size), bool)
    elif kind == "circle":
        c = (size - 1) / 2.0
        mask = (ii - c) ** 2 + (jj - c) ** 2 <= (size / 2.0) ** 2 + 1e-9
    else:
        if size < 3:
            raise ValueError(f"make_brush: {kind} needs size >= 3, got {size}")
        k = size // 3 if kind == "cross" else (max(1, size // 4) if notch is None else int(notch))
        if k < 0 or 2 * k >= size:
            raise ValueError(f"make_brush: notch must be in [0, {(size - 1) // 2}] for size "
                             f"{size}, got {k}")
        near_i = (ii < k) | (ii >= size - k)
        near_j = (jj < k) | (jj >= size - k)
        mask = ~(near_i & near_j)
    return Brush(mask, name=f"{kind}{size}")


def as_brush(brush: Brush | str | np.ndarray | None) -> Brush:
    """Coerce ``brush`` to a `Brush`: a Brush, None (the default 3×3 cross), a name such as
    ``"cross3"``/``"circle5"``, or a boolean mask array."""
    if brush is None:
        return make_brush("cross", 3)
    if isinstance(brush, Brush):
        return brush
    if isinstance(brush, str):
        for kind in sorted(BRUSH_KINDS, key=len, reverse=True):
            if brush.startswith(kind) and brush[len(kind):].isdigit():
                return make_brush(kind, int(brush[len(kind):]))  # type: ignore[arg-type]
        raise ValueError(f"as_brush: cannot parse brush name {brush!r}; expected e.g. 'cross3', "
                         f"'square4', 'notched_square5', 'circle6'")
    return Brush(np.asarray(brush), name="custom")
