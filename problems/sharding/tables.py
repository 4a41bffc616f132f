"""Embedding tables of a DLRM-like recommendation model: a seeded pool generator, the index
sampler, and DreamShard-style per-table features.

The pool imitates the 856-table DLRM pool used by DreamShard (Zha et al., NeurIPS 2022) and
SurCo (Ferber et al., ICML 2023, §5.1). The real traces are not redistributable, so the pool
is *generated*; every distribution below is a documented choice, and the generator's
statistics are checked by ``tests/sharding/test_sharding_tables.py``.

Distributions (all drawn from ``numpy.random.default_rng(seed)``, in this order):

* ``dim``: uniform over {4, 8, 16, 32, 64, 128}. DreamShard samples embedding dimensions the
  same way because the public DLRM traces do not record them.
* ``rows`` (hash size): heavy-tailed. ``log10(rows) ~ Normal(ROWS_LOG10_MEAN=5.7,
  ROWS_LOG10_STD=1.1)`` truncated to ``[ROWS_LOG10_MIN=1, ROWS_LOG10_MAX=7.3]`` (10 to 2e7
  rows) and to ``rows * dim * 4 B <= MAX_TABLE_BYTES = 3 GB``, by rejection (resampling,
  not clipping). Hash sizes of production DLRM features span from tens of rows to tens of
  millions; the size bound keeps every table well inside one 5 GB device. Median about 3.6e5 rows, 90th percentile about 4e6 (the
  truncations pull the median below 10^5.7).
* ``pooling`` (mean lookups per sample): a mixture. With probability ``ONE_HOT_FRACTION=0.3``
  the feature is one-hot (pooling exactly 1, e.g. user/item ids); otherwise
  ``pooling = 1 + LogNormal(log(POOLING_MEDIAN - 1)=log 7, POOLING_SIGMA=1.0)`` truncated to
  ``<= POOLING_MAX=200`` by rejection: heavy-tailed multi-hot features (histories) with
  median about 8 and a tail of a few tables with 50-200 lookups per sample.
* ``skew``: the exponent s of a Zipf-like access law ``P(rank r) ∝ r^-s``, uniform on
  ``[SKEW_MIN=0.2, SKEW_MAX=1.4]``: from nearly uniform access (s = 0.2) to strongly
  concentrated traffic (s > 1); a modelling choice (the public traces are not shipped).

With these choices a 50-table task holds 10.4 GB of embeddings at the median (4-byte
elements; 5th-95th percentile 5.9-16 GB, 99th 19 GB), so 4 devices of 5 GB have room in
total, and memory binds in a share of tasks: the cost-model greedy placement computed
without memory limits overflows a 5 GB device in about a quarter of DLRM-50 tasks (it
stacks large, rarely accessed tables together), so the limit changes the plan there. At
T = 60 about 3 % of table draws exceed 20 GB; `tasks.generate_tasks` redraws those.

Larger pools (tasks of hundreds of tables): `extended_pools(blocks)` stacks independent
blocks of 856 tables drawn from the same distributions (`generate_pool(seed, block=k)`),
each split in halves as the first; block 0 is today's pool, unchanged, so tasks drawn
from one block are the tasks they always were. `blocks_for(T)` is how many blocks keep a
task of T tables within half of a split (1 up to T = 214, 2 up to 428, 4 up to 856).
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

import numpy as np

DIMS = (4, 8, 16, 32, 64, 128)
ROWS_LOG10_MEAN = 5.7
ROWS_LOG10_STD = 1.1
ROWS_LOG10_MIN = 1.0
ROWS_LOG10_MAX = 7.3
MAX_TABLE_BYTES = 3e9
ONE_HOT_FRACTION = 0.3
POOLING_MEDIAN = 8.0
POOLING_SIGMA = 1.0
POOLING_MAX = 200.0
SKEW_MIN = 0.2
SKEW_MAX = 1.4
N_HIST_BINS = 17
#: Tables in the generated pool and in each block of an extended pool (`extended_pools`):
#: DreamShard's DLRM pool size.
POOL_BLOCK_TABLES = 856
FEATURE_NAMES = ("dim", "rows", "pooling", "size_bytes") + tuple(
    f"hist{k}" for k in range(N_HIST_BINS))


@dataclasses.dataclass(frozen=True, eq=False)
class TablePool:
    """A pool of embedding tables; numpy arrays with one entry per table.

    Attributes:
      rows: int64 hash sizes (number of rows), >= 1.
      dim: int64 embedding dimensions, each in {4, 8, 16, 32, 64, 128}.
      pooling: float64 pooling factors (mean lookups per sample), > 0.
      skew: float64 Zipf-like access exponents s >= 0 (``P(rank r) ∝ r^-s``).
      seed: the seed the pool was generated from (provenance only).

    Raises:
      ValueError: arrays of different lengths, non-1-D arrays, or values outside the ranges
        above.
    """

    rows: np.ndarray
    dim: np.ndarray
    pooling: np.ndarray
    skew: np.ndarray
    seed: int = 0

    def __post_init__(self):
        arrays = {"rows": np.asarray(self.rows, dtype=np.int64),
                  "dim": np.asarray(self.dim, dtype=np.int64),
                  "pooling": np.asarray(self.pooling, dtype=np.float64),
                  "skew": np.asarray(self.skew, dtype=np.float64)}
        n = None
        for name, a in arrays.items():
            if a.ndim != 1:
                raise ValueError(f"TablePool.{name} must be 1-D, got shape {a.shape}")
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ValueError(f"TablePool.{name} has {a.shape[0]} entries, rows has {n}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"TablePool.{name} contains NaN or inf")
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if np.any(self.rows < 1):
            raise ValueError(f"TablePool.rows must be >= 1, got min {self.rows.min()}")
        bad = ~np.isin(self.dim, DIMS)
        if np.any(bad):
            raise ValueError(f"TablePool.dim must be in {DIMS}, got {np.unique(self.dim[bad])}")
        if np.any(self.pooling <= 0):
            raise ValueError(f"TablePool.pooling must be > 0, got min {self.pooling.min()}")
        if np.any(self.skew < 0):
            raise ValueError(f"TablePool.skew must be >= 0, got min {self.skew.min()}")

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def subset(self, idx: Sequence[int] | np.ndarray) -> "TablePool":
        """The tables at ``idx`` (integer indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype != bool and idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(f"subset: indices must lie in [0, {len(self)}), got "
                             f"[{idx.min()}, {idx.max()}]")
        return TablePool(self.rows[idx], self.dim[idx], self.pooling[idx], self.skew[idx],
                         self.seed)

    def size_bytes(self, bytes_per_element: int = 4) -> np.ndarray:
        """Memory of each table, ``rows * dim * bytes_per_element`` (int64 bytes)."""
        if int(bytes_per_element) <= 0:
            raise ValueError(f"bytes_per_element must be positive, got {bytes_per_element}")
        return self.rows * self.dim * int(bytes_per_element)

    @property
    def lookup(self) -> np.ndarray:
        """``dim * pooling``: the floats gathered per sample (DreamShard's lookup heuristic)."""
        return self.dim * self.pooling


def _truncated(rng: np.random.Generator, draw, lo: float, hi: float, n: int) -> np.ndarray:
    """n draws of ``draw(rng, m)`` restricted to [lo, hi] by rejection (no clipping)."""
    out = np.empty(0)
    while out.size < n:
        x = draw(rng, 2 * (n - out.size) + 8)
        out = np.concatenate([out, x[(x >= lo) & (x <= hi)]])
    return out[:n]


def generate_pool(seed: int = 0, n_tables: int = POOL_BLOCK_TABLES, *,
                  block: int = 0) -> TablePool:
    """A DLRM-like pool of ``n_tables`` embedding tables, deterministic per ``seed``.

    The distributions and their constants are documented in the module docstring.

    Args:
      seed: numpy seed; the same seed gives the same pool.
      n_tables: number of tables (856 as in DreamShard's DLRM pool).
      block: 0 (the pool of ``seed``, as it always was) or k >= 1: an independent draw
        from the same distributions, seeded by ``(seed, k)`` (`extended_pools` stacks such
        blocks into larger pools).

    Returns:
      A `TablePool`.

    Raises:
      ValueError: ``n_tables < 1`` or ``block < 0``.
    """
    if int(n_tables) < 1:
        raise ValueError(f"n_tables must be >= 1, got {n_tables}")
    if int(block) < 0:
        raise ValueError(f"block must be >= 0, got {block}")
    n = int(n_tables)
    rng = np.random.default_rng(seed if int(block) == 0 else [int(seed), int(block)])
    dim = rng.choice(np.asarray(DIMS, dtype=np.int64), size=n)
    # log10(rows) truncated to [ROWS_LOG10_MIN, min(ROWS_LOG10_MAX, log10(3 GB / (4 dim)))]
    hi = np.minimum(ROWS_LOG10_MAX, np.log10(MAX_TABLE_BYTES / (4.0 * dim)))
    log_rows = rng.normal(ROWS_LOG10_MEAN, ROWS_LOG10_STD, n)
    bad = (log_rows < ROWS_LOG10_MIN) | (log_rows > hi)
    while np.any(bad):  # rejection: redraw out-of-range entries
        log_rows[bad] = rng.normal(ROWS_LOG10_MEAN, ROWS_LOG10_STD, int(bad.sum()))
        bad = (log_rows < ROWS_LOG10_MIN) | (log_rows > hi)
    rows = np.floor(10.0 ** log_rows).astype(np.int64)
    one_hot = rng.random(n) < ONE_HOT_FRACTION
    multi = 1.0 + _truncated(
        rng, lambda r, m: r.lognormal(np.log(POOLING_MEDIAN - 1.0), POOLING_SIGMA, m),
        0.0, POOLING_MAX - 1.0, n)
    pooling = np.where(one_hot, 1.0, multi)
    skew = rng.uniform(SKEW_MIN, SKEW_MAX, n)
    return TablePool(rows=rows, dim=dim, pooling=pooling, skew=skew, seed=int(seed))


def split_pool(pool: TablePool, train_fraction: float = 0.5,
               seed: int = 0) -> tuple[TablePool, TablePool]:
    """Split a pool at random into a train pool and a test pool (disjoint tables).

    Args:
      pool: the pool to split.
      train_fraction: share of tables in the train pool, in (0, 1).
      seed: numpy seed of the permutation.

    Returns:
      ``(train, test)`` with ``round(train_fraction * len(pool))`` tables in ``train``.

    Raises:
      ValueError: ``train_fraction`` outside (0, 1) or a split that leaves a side empty.
    """
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n_train = int(round(train_fraction * len(pool)))
    if n_train < 1 or n_train >= len(pool):
        raise ValueError(f"split of {len(pool)} tables with train_fraction={train_fraction} "
                         "leaves one side empty")
    perm = np.random.default_rng(seed).permutation(len(pool))
    return pool.subset(np.sort(perm[:n_train])), pool.subset(np.sort(perm[n_train:]))


def concat_pools(pools: Sequence[TablePool]) -> TablePool:
    """The tables of ``pools``, in order, as one pool (the first pool's seed).

    Raises:
      ValueError: no pools.
    """
    if not pools:
        raise ValueError("concat_pools: no pools given")
    return TablePool(*(np.concatenate([getattr(p, k) for p in pools])
                       for k in ("rows", "dim", "pooling", "skew")), seed=pools[0].seed)


def extended_pools(blocks: int, seed: int = 0, train_fraction: float = 0.5,
                   split_seed: int = 0) -> tuple[TablePool, TablePool]:
    """Train and test pools ``blocks`` times as large as the generated 856-table pool's
    halves, drawn from the same distributions: block 0 is `generate_pool(seed)`, block
    k >= 1 `generate_pool(seed, block=k)`; each block is split by `split_pool` (the same
    ``train_fraction`` and ``split_seed``), and the train halves (test halves) are
    concatenated in block order. With ``blocks=1`` these are today's pools, bit for bit;
    with more, today's tables come first and new ones follow.

    Raises:
      ValueError: ``blocks < 1`` (or a bad split, as `split_pool`).
    """
    if int(blocks) < 1:
        raise ValueError(f"extended_pools: blocks must be >= 1, got {blocks}")
    halves = [split_pool(generate_pool(seed, block=k), train_fraction, seed=split_seed)
              for k in range(int(blocks))]
    if len(halves) == 1:
        return halves[0]
    return concat_pools([h[0] for h in halves]), concat_pools([h[1] for h in halves])


def blocks_for(n_tables: int, train_fraction: float = 0.5) -> int:
    """How many pool blocks `extended_pools` needs so that a task of ``n_tables`` tables
    takes at most half of a split's tables (tasks drawn from one split then differ in
    at least half their tables): ``ceil(2 T / half)``, at least 1; with 428 tables per
    half, 1 block up to T = 214 (today's pool: tasks unchanged), 2 up to 428, 4 up to 856.

    Raises:
      ValueError: ``n_tables < 1``.
    """
    if int(n_tables) < 1:
        raise ValueError(f"blocks_for: n_tables must be >= 1, got {n_tables}")
    half = min(round(train_fraction * POOL_BLOCK_TABLES),
               POOL_BLOCK_TABLES - round(train_fraction * POOL_BLOCK_TABLES))
    return max(1, -(-2 * int(n_tables) // half))


def _table_hash(*values) -> int:
    h = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def _row_permutation(rows: int, skew: float) -> tuple[int, int]:
    """A fixed affine permutation ``rank -> (a * rank + b) mod rows`` of a table's rows.

    ``a`` is coprime with ``rows`` so the map is a bijection; (a, b) derive from a hash of
    the table's (rows, skew), so the hot rows of a table are the same on every call and are
    scattered over the table rather than packed at its start.
    """
    if rows == 1:
        return 1, 0
    h = _table_hash("perm", rows, float(skew))
    a = 1 + h % (rows - 1)
    while np.gcd(a, rows) != 1:
        a = 1 + a % (rows - 1)
    b = (h >> 32) % rows
    return int(a), int(b)


def sample_lookups(rows: int, pooling: float, skew: float, batch_size: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample one batch of embedding-bag lookups of a table: the project's one index sampler.

    Lookups per sample: ``1 + Poisson(pooling - 1)`` when ``pooling >= 1`` (every sample
    looks up at least one row, mean ``pooling``), ``Poisson(pooling)`` when
    ``pooling < 1``. Each lookup's popularity rank r in {1, ..., rows} follows a bounded
    Zipf-like law ``P(r) ∝ r^-skew``, drawn by inverting the continuous power-law CDF on
    [1, rows + 1) and flooring (exact for the continuous law, O(L) time and memory for any
    table size). Ranks map to row indices through a fixed per-table permutation
    (``_row_permutation``), so hot rows are spread over the table.

    Args:
      rows: hash size of the table, >= 1.
      pooling: mean lookups per sample, > 0.
      skew: Zipf exponent, >= 0 (0 is uniform access).
      batch_size: samples in the batch, >= 1.
      rng: numpy generator (the only source of randomness).

    Returns:
      ``(indices, segment_ids)``: int32 arrays of length L; ``indices`` in [0, rows);
      ``segment_ids`` sorted, in [0, batch_size), the sample each lookup belongs to.

    Raises:
      ValueError: an argument outside its range.
    """
    rows, batch_size = int(rows), int(batch_size)
    pooling, skew = float(pooling), float(skew)
    if rows < 1 or rows > np.iinfo(np.int32).max:
        raise ValueError(f"rows must be in [1, 2^31), got {rows}")
    if not np.isfinite(pooling) or pooling <= 0:
        raise ValueError(f"pooling must be a positive finite number, got {pooling}")
    if not np.isfinite(skew) or skew < 0:
        raise ValueError(f"skew must be a finite number >= 0, got {skew}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if pooling >= 1.0:
        counts = 1 + rng.poisson(pooling - 1.0, batch_size)
    else:
        counts = rng.poisson(pooling, batch_size)
    seg = np.repeat(np.arange(batch_size, dtype=np.int32), counts)
    u = rng.random(seg.shape[0])
    top = rows + 1.0
    if abs(skew - 1.0) < 1e-9:
        r = np.exp(u * np.log(top))
    else:
        e = 1.0 - skew
        r = (1.0 + u * (top ** e - 1.0)) ** (1.0 / e)
    rank = np.minimum(np.floor(r).astype(np.int64), rows) - 1  # float round-off guard
    a, b = _row_permutation(rows, skew)
    idx = (a * rank + b) % rows
    return idx.astype(np.int32), seg


def access_histogram(indices: np.ndarray) -> np.ndarray:
    """DreamShard's 17-bin distribution of index access counts.

    Each accessed row's count c (how often it appears in ``indices``) falls in bin
    ``min(floor(log2 c), 16)``: bins [1], [2, 3], [4, 7], ..., [2^15, 2^16), [2^16, inf).
    The histogram is the share of *lookups* in each bin (so it sums to 1): mass in high
    bins means traffic concentrated on a few hot rows (good cache behaviour), mass in bin 0
    means mostly distinct rows. An empty batch gives all zeros.
    """
    indices = np.asarray(indices)
    hist = np.zeros(N_HIST_BINS)
    if indices.size == 0:
        return hist
    _, counts = np.unique(indices, return_counts=True)
    bins = np.minimum(np.floor(np.log2(counts)).astype(np.int64), N_HIST_BINS - 1)
    np.add.at(hist, bins, counts)
    return hist / indices.size


def table_features(pool: TablePool, *, batch_size: int = 4096, seed: int = 0) -> np.ndarray:
    """DreamShard-style per-table features (Zha et al., NeurIPS 2022, §4.1).

    Columns (see ``FEATURE_NAMES``): dim, rows, pooling, size in bytes (4-byte elements), and
    the 17-bin access histogram (`access_histogram`) of one batch of ``batch_size`` samples
    drawn with `sample_lookups`. Raw units: scale them (e.g. `scale_features`) before a
    neural network. A table's histogram depends only on the table and ``seed``, not on its
    position in the pool, so subsets of a pool get the same rows.

    Returns:
      ``(len(pool), 21)`` float64 array.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(pool)
    out = np.zeros((n, 4 + N_HIST_BINS))
    out[:, 0] = pool.dim
    out[:, 1] = pool.rows
    out[:, 2] = pool.pooling
    out[:, 3] = pool.size_bytes()
    for i in range(n):
        key = _table_hash("feat", int(seed), int(pool.rows[i]), int(pool.dim[i]),
                          float(pool.pooling[i]), float(pool.skew[i]))
        rng = np.random.default_rng(key)
        idx, _ = sample_lookups(int(pool.rows[i]), float(pool.pooling[i]),
                                float(pool.skew[i]), batch_size, rng)
        out[i, 4:] = access_histogram(idx)
    return out


def scale_features(features: np.ndarray) -> np.ndarray:
    """Map `table_features` columns to O(1) scale for a neural network.

    dim / 128, log10(rows) / 7, log10(1 + pooling) / 2, log10(size) / 10, histogram as is.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != 4 + N_HIST_BINS:
        raise ValueError(f"features must have shape (N, {4 + N_HIST_BINS}), got {f.shape}")
    out = f.copy()
    out[:, 0] = f[:, 0] / 128.0
    out[:, 1] = np.log10(f[:, 1]) / 7.0
    out[:, 2] = np.log10(1.0 + f[:, 2]) / 2.0
    out[:, 3] = np.log10(f[:, 3]) / 10.0
    return out
