"""The brush-constrained design generator of Schubert et al. (ACS Photonics 2022), as a SurCo
oracle.

Given a real reward image r (H×W), the generator places *touches* of a brush, solid or void,
until every pixel is assigned; a solid touch turns its footprint solid, a void touch void.
The result is feasible by construction: every solid pixel lies in a placed solid touch whose
footprint is all solid, and likewise for void. Ferber et al. (SurCo, ICML 2023, §5.2) use this
generator as the "solver" ``g_Ω(c)`` of the fabrication-constrained design space Ω.

Algorithm (written from the paper's description; the state names follow it):

* A solid touch is *valid* while no pixel of its footprint is void (and conversely). Validity
  only ever goes from valid to invalid; it is updated incrementally, touch by touch, when a
  pixel is assigned, together with the per-pixel counts of valid solid / void touches that
  cover the pixel.
* An unassigned pixel that no valid void touch covers any more is *solid-required* (it can
  only end up solid); symmetrically void-required.
* A touch is *resolving* if it is valid and covers a required pixel of its type, and *free*
  if, moreover, every unassigned pixel of its footprint is required of its type (placing it
  removes no option from any other pixel).
* Loop: resolve every required pixel (placing, for each, the best resolving touch that
  covers it, free touches first, then highest reward); otherwise place the valid touch with
  the highest reward that still assigns at least one pixel. The reward of a solid touch
  anchored at p is ``r[p]``, of a void touch ``-r[p]``.

Why it never gets stuck: initially every pixel is covered by valid solid and void touches.
A solid placement only invalidates void touches, so it can create solid-required pixels but
no void-required ones, and no covered pixel loses its valid solid touches; resolving them
with solid touches keeps it that way. Required pixels are resolved before any other choice,
so an unassigned pixel is never left without a valid touch of either type. Because validity
and the set of unassigned pixels only shrink, one pass over the touches sorted by reward
suffices (a touch skipped once is never placeable later).

Sign convention as a SurCo oracle: the solver *minimises* c·x with x ∈ {0,1}^{H×W}, 1 = solid;
the generator is run on the reward ``r = -c`` (solid where c is negative). The generator is a
greedy heuristic for ``max r·x`` over Ω (the exact problem is a hard covering problem), so
its `Solution` carries ``Status.FEASIBLE`` and ``stats["heuristic"] = True``.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from surco.solvers import Solver, Status

from .brush import Brush, as_brush

_UNASSIGNED, _SOLID, _VOID = 0, 1, 2


@functools.lru_cache(maxsize=32)
def _tables(shape: tuple[int, int], brush_key: tuple, offsets_bytes: bytes):
    """Footprints and covering touches of every anchor, as tuples of flat indices."""
    H, W = shape
    offsets = np.frombuffer(offsets_bytes, dtype=np.int64).reshape(-1, 2)
    ii, jj = np.divmod(np.arange(H * W), W)
    fp_i = ii[:, None] + offsets[None, :, 0]
    fp_j = jj[:, None] + offsets[None, :, 1]
    inside = (fp_i >= 0) & (fp_i < H) & (fp_j >= 0) & (fp_j < W)
    flat = np.where(inside, fp_i * W + fp_j, -1)
    cv_i = ii[:, None] - offsets[None, :, 0]
    cv_j = jj[:, None] - offsets[None, :, 1]
    inside_c = (cv_i >= 0) & (cv_i < H) & (cv_j >= 0) & (cv_j < W)
    flat_c = np.where(inside_c, cv_i * W + cv_j, -1)
    footprint = tuple(tuple(int(v) for v in row if v >= 0) for row in flat)
    covering = tuple(tuple(int(v) for v in row if v >= 0) for row in flat_c)
    return footprint, covering


def _check_reward(reward, shape: tuple[int, int] | None) -> np.ndarray:
    r = np.asarray(reward, dtype=np.float64)
    if r.ndim != 2 or min(r.shape) < 1:
        raise ValueError(f"brush_generate: reward must be a non-empty 2-D image (H, W), got "
                         f"shape {r.shape}")
    if shape is not None and r.shape != tuple(shape):
        raise ValueError(f"brush_generate: reward has shape {r.shape}, expected {tuple(shape)}")
    if not np.all(np.isfinite(r)):
        bad = int(np.flatnonzero(~np.isfinite(r).reshape(-1))[0])
        raise ValueError(f"brush_generate: reward contains NaN or inf (first at flat index "
                         f"{bad}, pixel {np.unravel_index(bad, r.shape)})")
    return r


def brush_generate(reward, brush: Brush | str | None = None, *, return_stats: bool = False):
    """Generate a brush-feasible binary design from a reward image (Schubert et al. 2022).

    Args:
      reward: ``(H, W)`` finite real array; a positive entry favours a solid touch anchored
        there, a negative one a void touch; larger magnitudes are placed first.
      brush: a `Brush`, a name like ``"cross3"``, a boolean mask, or None (3×3 cross).
      return_stats: also return a dict with the number of touches placed by kind.

    Returns:
      ``x``: ``(H, W)`` uint8 array, 1 = solid, 0 = void, feasible for ``brush``; with
      ``return_stats``, ``(x, stats)``.

    Raises:
      ValueError: reward not 2-D, empty, or containing NaN/inf; bad brush.
      RuntimeError: an internal invariant failed (would be a bug; never silently returned).

    Deterministic: ties in reward are broken by the pixel's row-major index, solid first.
    """
    b = as_brush(brush)
    r = _check_reward(reward, None)
    H, W = r.shape
    N = H * W
    offsets = np.ascontiguousarray(b.offsets, dtype=np.int64)
    footprint, covering = _tables((H, W), b.key(), offsets.tobytes())

    rflat = r.reshape(-1)
    # Entries 0..N-1: solid touch anchored at p (reward r[p]); N..2N-1: void touch (-r[p]).
    scores = np.concatenate([rflat, -rflat])
    order = np.argsort(-scores, kind="stable").tolist()
    rlist = rflat.tolist()

    px = bytearray(N)                      # pixel state
    valid = [bytearray(b"\x01") * N, bytearray(b"\x01") * N]   # [solid, void] touch validity
    count = [[len(c) for c in covering], [len(c) for c in covering]]  # valid touches per pixel
    n_left = N
    placed = {"free": 0, "resolving": 0, "chosen": 0}

    def place(t: int, kind: int) -> list[int]:
        """Place a touch of ``kind`` (0 solid, 1 void) at anchor t; return newly required."""
        nonlocal n_left
        state = _SOLID if kind == 0 else _VOID
        other_valid = valid[1 - kind]
        other_count = count[1 - kind]
        required = []
        for p in footprint[t]:
            if px[p] == _UNASSIGNED:
                px[p] = state
                n_left -= 1
                for u in covering[p]:            # touches of the other kind covering p die
                    if other_valid[u]:
                        other_valid[u] = 0
                        for q in footprint[u]:
                            c = other_count[q] - 1
                            other_count[q] = c
                            if c == 0 and px[q] == _UNASSIGNED:
                                required.append(q)
        return required

    def resolve(required: list[int], kind: int) -> None:
        """Resolve pixels required to be of ``kind`` (LIFO), free touches first."""
        my_valid = valid[kind]
        other_count = count[1 - kind]
        sign = 1.0 if kind == 0 else -1.0
        while required:
            q = required.pop()
            if px[q] != _UNASSIGNED:
                continue
            best, best_key = -1, None
            for t in covering[q]:
                if not my_valid[t]:
                    continue
                free = True
                for p in footprint[t]:
                    if px[p] == _UNASSIGNED and other_count[p] != 0:
                        free = False
                        break
                key = (free, sign * rlist[t], -t)
                if best_key is None or key > best_key:
                    best, best_key = t, key
            if best < 0:  # cannot happen (see module docstring); never return a bad design
                raise RuntimeError(f"brush_generate: pixel {divmod(q, W)} has no valid touch "
                                   "left; generator invariant violated")
            placed["free" if best_key[0] else "resolving"] += 1
            required.extend(place(best, kind))

    for e in order:
        if n_left == 0:
            break
        kind, t = (0, e) if e < N else (1, e - N)
        if not valid[kind][t]:
            continue
        for p in footprint[t]:
            if px[p] == _UNASSIGNED:
                break
        else:
            continue  # would assign nothing
        placed["chosen"] += 1
        req = place(t, kind)
        if req:
            resolve(req, kind)

    if n_left != 0:
        raise RuntimeError(f"brush_generate: {n_left} pixels left unassigned; generator invariant "
                           "violated")
    x = (np.frombuffer(bytes(px), dtype=np.uint8) == _SOLID).astype(np.uint8).reshape(H, W)
    if return_stats:
        return x, dict(placed)
    return x


class BrushGenerator(Solver):
    """Ω = brush-feasible binary designs, as a SurCo oracle: ``x = brush_generate(-c, brush)``.

    x has shape ``(H, W)`` (1 = solid); the cost c has the same shape. The oracle minimises
    ``c·x`` greedily (the generator of Schubert et al., ACS Photonics 2022): solid where c is
    negative, largest |c| decided first. Solutions have ``Status.FEASIBLE`` (a heuristic, not
    a proven optimum) and are always feasible for the brush.

    Args:
      shape: design shape ``(H, W)``.
      brush: a `Brush`, a name such as ``"cross3"``, or None (3×3 cross).
      name: used in error messages.

    Raises:
      ValueError: bad shape or brush; at solve time, a cost of the wrong shape or with NaN/inf.
    """

    def __init__(self, shape, brush: Brush | str | None = None, name: str = "brush_generator"):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"{name}: shape must be (H, W) with H, W >= 1, got {shape}")
        super().__init__(shape, name)
        self.brush = as_brush(brush)

    def factory(self):
        return functools.partial(BrushGenerator, self.shape, self.brush, self.name)

    def solve_flat(self, c: np.ndarray) -> tuple[np.ndarray, float, Status, dict[str, Any]]:
        x, stats = brush_generate(-c.reshape(self.shape), self.brush, return_stats=True)
        xf = x.reshape(-1).astype(np.float64)
        stats = {"heuristic": True, "touches": stats}
        return xf, float(c @ xf), Status.FEASIBLE, stats

    def __repr__(self) -> str:
        return f"BrushGenerator(shape={self.shape}, brush={self.brush.name})"
