"""An independent feasibility checker for brush fabrication constraints.

A binary design x (1 = solid, 0 = void) is feasible for a brush b (Schubert et al., ACS
Photonics 2022) when the solid set S and the void set V are each the union of the touches of b
that they contain. The union of all touches contained in a set is its morphological
*opening* by b, so the test is

    open_b(S) == S   and   open_b(V) == V        (V = not S; open_b(V) == V is close_b(S) == S)

computed with `scipy.ndimage` erosion and dilation. Touches are anchored on design pixels and
the outside of the design is "don't care" (see `surco.problems.photonics.brush`): erosion
treats out-of-design pixels as belonging to the set (``border_value=1``), and dilation only
spreads from in-design anchors. This module shares no code with the generator, so tests can
use it to check the generator.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from .brush import Brush, as_brush


@dataclasses.dataclass(frozen=True)
class FeasibilityReport:
    """Result of `check_design`.

    Attributes:
      feasible: True iff every solid and every void pixel lies in a touch of the brush that
        is contained in its own region.
      solid_violations: boolean mask of solid pixels not covered by a contained solid touch.
      void_violations: boolean mask of void pixels not covered by a contained void touch.
    """

    feasible: bool
    solid_violations: np.ndarray
    void_violations: np.ndarray

    @property
    def n_violations(self) -> int:
        """Number of pixels that violate the constraint."""
        return int(self.solid_violations.sum() + self.void_violations.sum())


def _as_binary_design(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"{name} must be a non-empty 2-D design (H, W), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric or boolean, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        bad = np.flatnonzero(~((arr == 0) | (arr == 1)).reshape(-1))[0]
        raise ValueError(f"{name} must be binary (0 = void, 1 = solid); value "
                         f"{arr.reshape(-1)[bad]!r} at flat index {bad}")
    return arr.astype(bool)


def opening(region: np.ndarray, brush: Brush | str | None = None) -> np.ndarray:
    """The union of all touches of ``brush`` anchored in the design and contained in
    ``region`` (out-of-design pixels are ignored).

    Args:
      region: ``(H, W)`` boolean array.
      brush: a `Brush` (default: 3×3 cross).

    Returns:
      ``(H, W)`` boolean array, a subset of ``region``.
    """
    b = as_brush(brush)
    region = np.asarray(region, dtype=bool)
    # Anchors whose whole in-design footprint lies in the region.
    anchors = ndimage.binary_erosion(region, structure=b.mask, border_value=1)
    # Footprints of those anchors: scipy's dilation by the mask (origin 0) marks p + offsets
    # for every marked anchor p, for odd and even brush sizes alike.
    return ndimage.binary_dilation(anchors, structure=b.mask, border_value=0)


def check_design(x, brush: Brush | str | None = None) -> FeasibilityReport:
    """Check that a binary design satisfies the brush constraint.

    Args:
      x: ``(H, W)`` array of 0/1 (or bool); 1 = solid.
      brush: a `Brush`, a name such as ``"cross3"``, or None for the 3×3 cross.

    Returns:
      A `FeasibilityReport`.

    Raises:
      ValueError: x is not a 2-D binary array.
    """
    s = _as_binary_design(x)
    v = ~s
    bad_s = s & ~opening(s, brush)
    bad_v = v & ~opening(v, brush)
    return FeasibilityReport(feasible=not (bad_s.any() or bad_v.any()),
                             solid_violations=bad_s, void_violations=bad_v)


def is_feasible(x, brush: Brush | str | None = None) -> bool:
    """True iff the binary design ``x`` satisfies the brush constraint (see `check_design`)."""
    return check_design(x, brush).feasible
