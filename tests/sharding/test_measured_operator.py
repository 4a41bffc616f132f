"""The fused embedding-bag step of the profiler against a plain NumPy reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.problems.sharding.measured import (FusedLayout, embedding_bag_backward,
                                             embedding_bag_forward, embedding_bag_step,
                                             pack_lookups, pack_weights, unpack_weights)
from surco.problems.sharding.tables import sample_lookups

B = 16
# Two tables share dim 8 (one fused buffer), one of dim 4, one of dim 16.
ROWS = [37, 5, 64, 23]
DIMS = [8, 4, 8, 16]
POOLING = [3.0, 1.0, 6.5, 0.6]   # the last one leaves some samples without lookups
SKEW = [1.1, 0.3, 0.0, 0.8]


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    tables = [rng.standard_normal((r, d)).astype(np.float32) for r, d in zip(ROWS, DIMS)]
    idx, seg = [], []
    for r, p, s in zip(ROWS, POOLING, SKEW):
        i, g = sample_lookups(r, p, s, B, rng)
        idx.append(i)
        seg.append(g)
    return tables, idx, seg


def _ref_forward(tables, idx, seg):
    outs = []
    for w, i, s in zip(tables, idx, seg):
        out = np.zeros((B, w.shape[1]), np.float64)
        for j in range(i.size):            # one lookup at a time: the definition
            out[s[j]] += w[i[j]]
        outs.append(out)
    return outs


def _ref_update(tables, idx, seg, upstream_blocks, lr):
    new = []
    for w, i, s, g in zip(tables, idx, seg, upstream_blocks):
        w = w.astype(np.float64).copy()
        for j in range(i.size):
            w[i[j]] -= lr * g[s[j]]
        new.append(w)
    return new


def _device(layout, tables, gi, gs):
    return ([jnp.asarray(w) for w in pack_weights(layout, tables)],
            [jnp.asarray(i) for i in gi], [jnp.asarray(s) for s in gs])


def test_layout_groups_by_dim_and_round_trips():
    tables, idx, seg = _problem()
    layout, gi, gs = pack_lookups(ROWS, DIMS, idx, seg, B)
    assert layout.group_dims == (4, 8, 16)
    assert layout.group_slots == (1, 2, 1)
    assert layout.group_rows == (5, 37 + 64, 23)
    assert layout.output_dim == sum(DIMS)
    for g, s in enumerate(gs):
        assert np.all(np.diff(s) >= 0), "segment ids must stay sorted"
        assert s.max() < B * layout.group_slots[g]
    assert sum(i.size for i in gi) == sum(i.size for i in idx)
    back = unpack_weights(layout, pack_weights(layout, tables))
    for a, b in zip(back, tables):
        np.testing.assert_array_equal(a, b)
    # every table's columns are disjoint and cover the output
    cols = sorted((layout.columns(t).start, layout.columns(t).stop) for t in range(4))
    assert cols[0][0] == 0 and cols[-1][1] == sum(DIMS)
    assert all(a[1] == b[0] for a, b in zip(cols, cols[1:]))


def test_forward_matches_numpy():
    tables, idx, seg = _problem(1)
    layout, gi, gs = pack_lookups(ROWS, DIMS, idx, seg, B)
    w, i, s = _device(layout, tables, gi, gs)
    out = np.asarray(jax.jit(lambda w, i, s: embedding_bag_forward(w, i, s, layout=layout))(
        w, i, s))
    assert out.shape == (B, sum(DIMS))
    ref = _ref_forward(tables, idx, seg)
    for t in range(len(ROWS)):
        np.testing.assert_allclose(out[:, layout.columns(t)], ref[t], rtol=1e-5, atol=1e-5)
    # a sample without lookups of the sparse table pools to exactly zero
    empty = np.setdiff1d(np.arange(B), seg[3])
    assert empty.size > 0
    assert np.all(out[empty][:, layout.columns(3)] == 0)


def test_backward_update_matches_numpy():
    tables, idx, seg = _problem(2)
    layout, gi, gs = pack_lookups(ROWS, DIMS, idx, seg, B)
    w, i, s = _device(layout, tables, gi, gs)
    upstream = np.random.default_rng(5).standard_normal((B, sum(DIMS))).astype(np.float32)
    lr = 0.3
    new = jax.jit(lambda w, i, s, g: embedding_bag_backward(w, i, s, g, layout=layout, lr=lr),
                  donate_argnums=0)(w, i, s, jnp.asarray(upstream))
    got = unpack_weights(layout, [np.asarray(a) for a in new])
    ref = _ref_update(tables, idx, seg, [upstream[:, layout.columns(t)] for t in range(4)], lr)
    for t in range(4):
        np.testing.assert_allclose(got[t], ref[t], rtol=1e-5, atol=1e-5)
    # rows nobody looked up are untouched, rows looked up twice got both updates
    for t in range(4):
        untouched = np.setdiff1d(np.arange(ROWS[t]), idx[t])
        np.testing.assert_array_equal(got[t][untouched], tables[t][untouched])


def test_fused_step_matches_numpy_and_updates_in_place():
    tables, idx, seg = _problem(3)
    layout, gi, gs = pack_lookups(ROWS, DIMS, idx, seg, B)
    w, i, s = _device(layout, tables, gi, gs)
    target = np.random.default_rng(7).standard_normal((B, sum(DIMS))).astype(np.float32)
    lr = 0.1
    step = jax.jit(lambda w, i, s, y: embedding_bag_step(w, i, s, y, layout=layout, lr=lr),
                   donate_argnums=0)
    compiled = step.lower(w, i, s, jnp.asarray(target)).compile()
    copies = [ln for ln in compiled.as_text().splitlines() if " copy(" in ln
              and any(f"f32[{r},{d}]" in ln for r, d in zip(layout.group_rows,
                                                            layout.group_dims))]
    assert not copies, f"the weights must be updated in place, not copied: {copies}"
    pooled, loss, new = compiled(w, i, s, jnp.asarray(target))
    ref_out = _ref_forward(tables, idx, seg)
    ref_pooled = np.zeros((B, sum(DIMS)))
    for t in range(4):
        ref_pooled[:, layout.columns(t)] = ref_out[t]
    np.testing.assert_allclose(np.asarray(pooled), ref_pooled, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss), 0.5 * np.sum((ref_pooled - target) ** 2) / B,
                               rtol=1e-5)
    upstream = (ref_pooled - target) / B   # d loss / d pooled
    ref = _ref_update(tables, idx, seg, [upstream[:, layout.columns(t)] for t in range(4)], lr)
    got = unpack_weights(layout, [np.asarray(a) for a in new])
    for t in range(4):
        np.testing.assert_allclose(got[t], ref[t], rtol=1e-5, atol=1e-6)


def test_float16_weights_accumulate_in_float32():
    tables, idx, seg = _problem(4)
    layout, gi, gs = pack_lookups(ROWS, DIMS, idx, seg, B)
    t16 = [t.astype(np.float16) for t in tables]
    w, i, s = _device(layout, t16, gi, gs)
    out = embedding_bag_forward(w, i, s, layout=layout)
    assert out.dtype == jnp.float16
    ref = _ref_forward([t.astype(np.float64) for t in t16], idx, seg)
    for t in range(4):
        np.testing.assert_allclose(np.asarray(out[:, layout.columns(t)], np.float64), ref[t],
                                   rtol=2e-3, atol=2e-3)
    new = embedding_bag_backward(w, i, s, jnp.zeros((B, sum(DIMS)), jnp.float16),
                                 layout=layout, lr=0.1)
    assert all(a.dtype == jnp.float16 for a in new)


def test_bad_lookups_are_refused():
    tables, idx, seg = _problem()
    bad = [i.copy() for i in idx]
    bad[0][0] = ROWS[0]
    with pytest.raises(ValueError, match=r"table 0: indices must lie in \[0, 37\)"):
        pack_lookups(ROWS, DIMS, bad, seg, B)
    unsorted = [s.copy() for s in seg]
    unsorted[2] = unsorted[2][::-1].copy()
    with pytest.raises(ValueError, match="table 2: segment_ids must be sorted"):
        pack_lookups(ROWS, DIMS, idx, unsorted, B)
    with pytest.raises(ValueError, match="one of each per table"):
        pack_lookups(ROWS, DIMS[:3], idx, seg, B)
    layout, gi, gs = pack_lookups(ROWS, DIMS, idx, seg, B)
    w, i, s = _device(layout, tables, gi, gs)
    with pytest.raises(ValueError, match="group 1: weight buffer has shape"):
        embedding_bag_forward([w[0], w[0], w[2]], i, s, layout=layout)
    assert isinstance(hash(layout), int) and isinstance(layout, FusedLayout)
