"""Brushes and the independent feasibility checker (Schubert et al., ACS Photonics 2022)."""
import itertools

import numpy as np
import pytest

from surco.problems.photonics import Brush, as_brush, check_design, is_feasible, make_brush, opening


def brute_opening(region, brush):
    """Union of the in-design footprints of anchors whose footprint lies in the region."""
    H, W = region.shape
    out = np.zeros_like(region, dtype=bool)
    for i in range(H):
        for j in range(W):
            fp = [(i + di, j + dj) for di, dj in brush.offsets if 0 <= i + di < H and 0 <= j + dj < W]
            if all(region[p] for p in fp):
                for p in fp:
                    out[p] = True
    return out


BRUSHES = ([make_brush(k, s) for k in ("cross", "notched_square") for s in (3, 4, 5, 6)]
           + [make_brush(k, s) for k in ("square", "circle") for s in (1, 2, 3, 4, 5)]
           + [Brush(np.array([[0, 1, 1], [1, 1, 0], [0, 0, 0]]), "skew")])


def test_standard_brushes_have_expected_pixels():
    assert make_brush("cross", 3).mask.astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert make_brush("square", 3).size == 9
    assert np.array_equal(make_brush("circle", 3).mask, make_brush("square", 3).mask)
    c5 = make_brush("circle", 5).mask.astype(int)
    assert c5.tolist() == [[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1],
                           [0, 1, 1, 1, 0]]
    n6 = make_brush("notched_square", 6)          # notch = 6 // 4 = 1
    assert n6.size == 36 - 4 and not n6.mask[0, 0] and n6.mask[0, 1]
    x9 = make_brush("cross", 9)                   # corners of 3×3 removed
    assert x9.size == 81 - 4 * 9
    assert make_brush("cross", 4).anchor == (2, 2)
    assert sorted(map(tuple, make_brush("cross", 3).offsets)) == [(-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)]


def test_brush_errors():
    with pytest.raises(ValueError, match="kind"):
        make_brush("hexagon", 3)
    with pytest.raises(ValueError, match="size"):
        make_brush("square", 0)
    with pytest.raises(ValueError, match="size >= 3"):
        make_brush("cross", 2)
    with pytest.raises(ValueError, match="notch"):
        make_brush("notched_square", 5, notch=3)
    with pytest.raises(ValueError, match="anchor"):
        Brush(np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="parse"):
        as_brush("blob7")
    assert as_brush("notched_square5") == make_brush("notched_square", 5)
    assert as_brush(None) == make_brush("cross", 3)


@pytest.mark.parametrize("brush", BRUSHES, ids=lambda b: b.name)
def test_opening_matches_brute_force(brush):
    rng = np.random.default_rng(hash(brush.name) % 2**32)
    for _ in range(25):
        H, W = rng.integers(1, 9, 2)
        region = rng.random((H, W)) < rng.uniform(0.3, 0.95)
        np.testing.assert_array_equal(opening(region, brush), brute_opening(region, brush))


def test_checker_known_designs():
    cross = make_brush("cross", 3)
    x = np.zeros((7, 7), int)
    assert is_feasible(x, cross) and is_feasible(1 - x, cross)
    x[3, 3] = 1                                   # an isolated pixel is too small
    rep = check_design(x, cross)
    assert not rep.feasible and rep.solid_violations.sum() == 1 and rep.void_violations.sum() == 0
    x[2:5, 3] = 1
    x[3, 2:5] = 1                                 # exactly one cross: feasible
    assert is_feasible(x, cross)
    assert not is_feasible(x, make_brush("square", 3))
    line = np.zeros((7, 7), int)
    line[3, :] = 1                                # a 1-pixel line is too thin for the cross
    assert not is_feasible(line, cross)
    line[2:5, :] = 1                              # a 3-pixel strip fits it
    assert is_feasible(line, cross)
    gap = 1 - line
    gap[3, :] = 1                                 # a 1-pixel void slot between solids
    assert is_feasible(np.ones((7, 7)), cross)
    slot = np.ones((7, 7), int)
    slot[3, :] = 0
    rep = check_design(slot, cross)
    assert not rep.feasible and rep.void_violations[3].all()
    checker = np.indices((6, 6)).sum(0) % 2
    assert check_design(checker, cross).n_violations == 36
    # Features cut by the design boundary: a touch anchored on the edge counts.
    edge = np.zeros((5, 5), int)
    edge[0, 0:3] = 1
    edge[1, 1] = 1                               # the in-design part of a cross at (0, 1)
    assert is_feasible(edge, cross)


def test_checker_bad_input():
    with pytest.raises(ValueError, match="binary"):
        check_design(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="2-D"):
        check_design(np.zeros(5))
    with pytest.raises(ValueError, match="2-D"):
        check_design(np.zeros((0, 3)))


def test_checker_all_small_designs_against_enumeration():
    """Every 3×4 design: the checker agrees with the brute-force definition."""
    cross = make_brush("cross", 3)
    for bits in itertools.product((0, 1), repeat=12):
        x = np.array(bits).reshape(3, 4).astype(bool)
        ok = (np.array_equal(brute_opening(x, cross), x)
              and np.array_equal(brute_opening(~x, cross), ~x))
        assert is_feasible(x, cross) == ok
