"""A measured dataset for learning the sharding cost model (DreamShard, Zha et al. 2022, §4).

Random subsets of a table pool (usually the train pool of `tables.split_pool`) are placed
on one device each and measured by the profiler (`measure.profile_sets`, 16 per session):
forward and backward time of the fused embedding-bag step. A share of the pool's tables
can be held out (``held_out_tables``): some subsets are drawn among them only, the others
among the rest only, so that a model can be evaluated on tables it never saw
(`training.split_by_table`); `remeasure` measures subsets again (a new draw: the
profiler's repeatability on them). Each subset also carries the modelled
communication time it would send in a ``num_devices``-device plan (`send_ms`, see
`comm.alltoall_ms`; modelled, not measured). Measurements go through the SQLite
`cache.MeasurementCache`, so an interrupted build resumes where it stopped: subsets are a
deterministic function of (seed, index), and those already measured are read back instead
of measured again.

The result, a `ProfiledDataset`, holds the pool's tables and DreamShard features, the
subsets and their costs; `save` / `load` write one compressed ``.npz`` file, small enough
to commit, so that `training.train_cost_model` can run without the accelerator.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from surco.checks import check_int, check_number
from surco.config import Config, settings_of

from ..comm import exchange_ms, pooled_bytes
from ..tables import TablePool, scale_features, table_features
from ..tasks import DEFAULT_CAPACITY
from .cache import MeasurementCache
from .measure import SESSION_SETS, profile_sets
from .memory import default_device
from .timing import ProfilerConfig

FORMAT = "surco-profiled-dataset"
FORMAT_VERSION = 1
__all__ = ["DATA_DIR", "DatasetConfig", "ProfiledDataset", "build_dataset", "bundled_dataset",
           "default_cache_path", "draw_subset", "remeasure"]


def default_cache_path() -> Path:
    """``$SURCO_PROFILER_CACHE`` or ``~/.cache/surco/profiler.sqlite``."""
    env = os.environ.get("SURCO_PROFILER_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "surco" / "profiler.sqlite"


@dataclasses.dataclass(frozen=True, eq=False)
class ProfiledDataset:
    """Measured table subsets of one pool.

    Attributes:
      rows, dim, pooling, skew: ``(N,)`` the pool's tables (the subsets index them).
      features: ``(N, F)`` their scaled DreamShard features
        (``scale_features(table_features(pool))``, the columns of `tables.FEATURE_NAMES`).
      subsets: ``(S, K)`` int32 table indices per subset, padded with -1.
      fwd_ms, bwd_ms: ``(S,)`` measured medians; fwd_iqr_ms, bwd_iqr_ms: their spread.
      send_ms: ``(S,)`` modelled (not measured) all-to-all send time of the subset as one
        device of a ``meta["num_devices"]``-device plan, bandwidth term only (forward +
        backward): ``2 B (D-1)/D * sum(dim) * bytes / link``.
      meta: device kind and platform, batch size, dtype, profiler version, num_devices, link
        parameters, pool seed, how many subsets were measured / read from the cache, seconds.
    """

    rows: np.ndarray
    dim: np.ndarray
    pooling: np.ndarray
    skew: np.ndarray
    features: np.ndarray
    subsets: np.ndarray
    fwd_ms: np.ndarray
    bwd_ms: np.ndarray
    fwd_iqr_ms: np.ndarray
    bwd_iqr_ms: np.ndarray
    send_ms: np.ndarray
    meta: dict

    _ARRAYS = ("rows", "dim", "pooling", "skew", "features", "subsets", "fwd_ms", "bwd_ms",
               "fwd_iqr_ms", "bwd_iqr_ms", "send_ms")

    def __post_init__(self):
        n, s = self.rows.shape[0], self.subsets.shape[0]
        for name in ("dim", "pooling", "skew"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"ProfiledDataset.{name} must have shape ({n},)")
        if self.features.ndim != 2 or self.features.shape[0] != n:
            raise ValueError(f"ProfiledDataset.features must have shape ({n}, F), got "
                             f"{self.features.shape}")
        if self.subsets.ndim != 2:
            raise ValueError("ProfiledDataset.subsets must be 2-D (subsets, max tables)")
        for name in ("fwd_ms", "bwd_ms", "fwd_iqr_ms", "bwd_iqr_ms", "send_ms"):
            a = getattr(self, name)
            if a.shape != (s,) or not np.all(np.isfinite(a)):
                raise ValueError(f"ProfiledDataset.{name} must be ({s},) finite numbers")
        if s and (self.subsets.max() >= n or np.any(self.mask.sum(1) == 0)):
            raise ValueError("ProfiledDataset.subsets must index the pool and be non-empty")

    def __len__(self) -> int:
        return int(self.subsets.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """``(S, K)`` True where ``subsets`` holds a table."""
        return self.subsets >= 0

    @property
    def compute_ms(self) -> np.ndarray:
        """Measured forward + backward per subset."""
        return self.fwd_ms + self.bwd_ms

    def pool(self) -> TablePool:
        return TablePool(self.rows, self.dim, self.pooling, self.skew,
                         int(self.meta.get("pool_seed", 0)))

    def subset_features(self) -> tuple[np.ndarray, np.ndarray]:
        """``(S, K, F)`` features of each subset's tables (zeros at padding) and the mask."""
        m = self.mask
        f = self.features[np.where(m, self.subsets, 0)] * m[..., None]
        return f, m

    def take(self, idx: np.ndarray) -> "ProfiledDataset":
        """The subsets at ``idx`` (same pool)."""
        idx = np.asarray(idx)
        kw = {k: getattr(self, k) for k in ("rows", "dim", "pooling", "skew", "features")}
        for k in ("subsets", "fwd_ms", "bwd_ms", "fwd_iqr_ms", "bwd_iqr_ms", "send_ms"):
            kw[k] = getattr(self, k)[idx]
        return ProfiledDataset(meta=dict(self.meta), **kw)

    def save(self, path: str | os.PathLike) -> Path:
        """Write one compressed ``.npz`` (arrays plus the meta as JSON), atomically (a
        reader finds the previous file or the new one, never a part); ``.npz`` is appended
        to a path that does not end in it, and an existing file is replaced."""
        from surco.atomic import atomic_open
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **self.meta}
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        arrays["subsets"] = arrays["subsets"].astype(np.int16 if len(self.rows) < 2 ** 15
                                                     else np.int32)
        with atomic_open(path) as fh:
            np.savez_compressed(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                                **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ProfiledDataset":
        """Read a file written by `save`.

        Raises:
          ValueError: the file is not a profiled dataset (or of another format version).
        """
        path = Path(path)
        if path.suffix != ".npz":     # the name `save` wrote
            path = path.with_name(path.name + ".npz")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                arrays = {k: z[k] for k in cls._ARRAYS}
        except (KeyError, ValueError, OSError) as e:
            raise ValueError(f"{path}: not a profiled dataset ({e})") from e
        if meta.pop("format", None) != FORMAT or meta.pop("format_version", None) != FORMAT_VERSION:
            raise ValueError(f"{path}: not a {FORMAT} file of version {FORMAT_VERSION}")
        arrays["subsets"] = arrays["subsets"].astype(np.int32)
        return cls(meta=meta, **arrays)


#: The sharding package's data folder (measured datasets, the shipped SurCo-prior).
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def bundled_dataset(name: str = "cpu") -> ProfiledDataset:
    """A measured dataset shipped with the package: ``data/profiled_<name>.npz``.

    ``"cpu"`` is measured on a CPU at small batch (``python -m bench.profiler``);
    ``"gpu"`` is measured on a CUDA GPU when such a run has been committed.

    Raises:
      FileNotFoundError: no such file, with the names that exist.
    """
    path = DATA_DIR / f"profiled_{name}.npz"
    if not path.exists():
        have = sorted(p.stem.removeprefix("profiled_") for p in DATA_DIR.glob("profiled_*.npz"))
        raise FileNotFoundError(f"no bundled dataset {path.name}; available: {have}")
    return ProfiledDataset.load(path)


def draw_subset(pool: TablePool, index: int, *, seed: int, min_tables: int, max_tables: int,
                max_bytes: float, bytes_per_element: int = 4,
                tables: np.ndarray | None = None) -> np.ndarray:
    """The ``index``-th random subset: a deterministic function of (seed, index, tables).

    Its size is uniform on ``[min_tables, max_tables]`` (at most ``len(tables)``), its
    tables uniform without replacement among ``tables`` (default: the whole pool); a draw
    over ``max_bytes`` of weights is redrawn (rejection, not clipping).

    Raises:
      ValueError: no subset of ``min_tables`` tables fits ``max_bytes`` after 1000 draws.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    size = pool.size_bytes(bytes_per_element)
    cand = np.arange(len(pool)) if tables is None else np.asarray(tables, np.int64)
    hi = min(int(max_tables), cand.size)
    for _ in range(1000):
        k = int(rng.integers(min_tables, hi + 1))
        ids = np.sort(rng.choice(cand, size=k, replace=False))
        if size[ids].sum() <= max_bytes:
            return ids
    raise ValueError(f"no subset of {min_tables}-{max_tables} tables under "
                     f"{max_bytes / 1e9:.3g} GB found in 1000 draws")


@dataclasses.dataclass(frozen=True)
class DatasetConfig(Config):
    """How `build_dataset` draws and measures the subsets: checked once, here;
    ``build_dataset(pool, n, config)`` and ``build_dataset(pool, n, max_tables=8)`` are the
    same call (as `surco.zero` and `surco.ZeroConfig`).

    Attributes:
      min_tables, max_tables: subset sizes, uniform (integers, 1 <= min <= max; max at most
        the pool's size, checked by `build_dataset`).
      max_bytes: largest weight memory of a subset (> 0; default: one device of the tasks,
        `tasks.DEFAULT_CAPACITY`).
      seed: seed of the subsets (an integer >= 0).
      num_devices: D of the plans whose communication ``send_ms`` models (an integer >= 2).
      held_out_every: with held-out tables, every ``held_out_every``-th subset is drawn
        among them only (an integer >= 1).
      draw: which measurement of each subset (0, or >= 1 for fresh re-measurements of the
        same subsets: same seed and sizes give the same subsets).
      max_seconds: stop measuring after this much wall time (>= 0) and return the subsets
        done so far (``meta["complete"]`` is False); run again to continue. None: no limit.
      progress: show a tqdm bar.
      profiler: the `ProfilerConfig` (batch size, dtype, runs, link of the comm model).

    Raises:
      ValueError: naming the field and the bad value.
    """

    min_tables: int = 1
    max_tables: int = 15
    max_bytes: float = DEFAULT_CAPACITY
    seed: int = 0
    num_devices: int = 4
    held_out_every: int = 5
    draw: int = 0
    max_seconds: float | None = None
    progress: bool = True
    profiler: ProfilerConfig = ProfilerConfig()
    _given: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                          compare=False)

    _who = "build_dataset"

    def __post_init__(self) -> None:
        who, put = self._who, lambda k, v: object.__setattr__(self, k, v)
        for name, low in (("min_tables", 1), ("max_tables", 1), ("seed", 0),
                          ("held_out_every", 1), ("draw", 0)):
            put(name, check_int(name, getattr(self, name), low, who=who))
        if self.min_tables > self.max_tables:
            raise ValueError(f"{who}: need min_tables <= max_tables, got {self.min_tables}, "
                             f"{self.max_tables}")
        d = self.num_devices
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
            raise ValueError(f"{who}: num_devices must be an integer >= 2 (plans with "
                             f"communication), got {d!r}")
        put("num_devices", int(d))
        put("max_bytes", check_number("max_bytes", self.max_bytes, who=who))
        m = self.max_seconds
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float, np.number))
                              or not np.isfinite(m) or m < 0):
            raise ValueError(f"{who}: max_seconds must be a finite number >= 0 or None, got "
                             f"{m!r}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"{who}: progress must be True or False, got {self.progress!r}")
        if not isinstance(self.profiler, ProfilerConfig):
            raise TypeError(f"{who}: profiler must be a ProfilerConfig, got "
                            f"{type(self.profiler).__name__}")


def build_dataset(pool: TablePool, n_subsets: int, config: DatasetConfig | None = None, /, *,
                  cache: MeasurementCache | str | os.PathLike | None = None,
                  device: jax.Device | None = None,
                  held_out_tables: np.ndarray | None = None,
                  **settings: Any) -> ProfiledDataset:
    """Measure ``n_subsets`` random table subsets of ``pool`` (resumable).

    Args:
      pool: the tables to draw from (the train pool).
      n_subsets: how many subsets (``draw_subset(pool, i)`` for ``i < n_subsets``).
      config: a `DatasetConfig` (subset sizes and seed, D, draw, time limit, the
        `ProfilerConfig`), or None.
      cache: a `MeasurementCache`, a path to one, or None for `default_cache_path`.
        Subsets found there are not measured again.
      device: the accelerator (default `memory.default_device`).
      held_out_tables: table indices kept for a held-out split by table
        (`training.split_by_table`): every ``held_out_every``-th subset is drawn among them
        only, the others among the remaining tables only.
      **settings: fields of `DatasetConfig` as keywords (``max_tables=8``,
        ``profiler=ProfilerConfig(runs=3)``), replacing ``config``'s.

    Returns:
      A `ProfiledDataset` (the subsets in index order).

    Raises:
      TypeError: an unknown keyword (with the closest valid name).
      ValueError: bad sizes or settings (naming them); `memory.TableTooLargeError` when a
        subset does not fit the device (lower ``max_bytes``).
    """
    cfg = settings_of(config, settings, DatasetConfig, "build_dataset")
    min_tables, max_tables, max_bytes, seed = (cfg.min_tables, cfg.max_tables, cfg.max_bytes,
                                               cfg.seed)
    num_devices, held_out_every, draw = cfg.num_devices, cfg.held_out_every, cfg.draw
    max_seconds, progress, profiler = cfg.max_seconds, cfg.progress, cfg.profiler
    if int(n_subsets) < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    if not 1 <= int(min_tables) <= int(max_tables) <= len(pool):
        raise ValueError(f"need 1 <= min_tables <= max_tables <= {len(pool)}, got "
                         f"{min_tables}, {max_tables}")
    device = device or default_device()
    own_cache = not isinstance(cache, MeasurementCache)
    store = MeasurementCache(default_cache_path() if cache is None else cache) \
        if own_cache else cache
    batch = profiler.batch_for(device)
    held = None if held_out_tables is None else np.unique(np.asarray(held_out_tables))
    rest = None if held is None else np.setdiff1d(np.arange(len(pool)), held)
    t0 = time.perf_counter()
    subsets, recs = [], []
    measured = cached = 0
    measure_s = 0.0
    try:
        bar = tqdm(total=int(n_subsets), desc=f"profiling subsets on {device.device_kind}",
                   disable=not progress, unit="set")
        for at in range(0, int(n_subsets), SESSION_SETS):
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
            part = []
            for i in range(at, min(at + SESSION_SETS, int(n_subsets))):
                among = None if held is None else (held if i % held_out_every == 0 else rest)
                part.append(draw_subset(pool, i, seed=seed, min_tables=int(min_tables),
                                        max_tables=int(max_tables), max_bytes=max_bytes,
                                        bytes_per_element=profiler.bytes_per_element,
                                        tables=among))
            t1 = time.perf_counter()
            ms = profile_sets([pool.subset(ids) for ids in part], profiler, cache=store,
                              device=device, draw=draw)
            new = sum(not m.cached for m in ms)
            measured, cached = measured + new, cached + len(ms) - new
            if new:
                measure_s += time.perf_counter() - t1
            subsets += part
            recs += ms
            bar.update(len(part))
            bar.set_postfix(measured=measured, cached=cached)
        bar.close()
    finally:
        if own_cache:
            store.close()
    if not subsets:
        raise ValueError(f"no subset was measured within max_seconds={max_seconds}")
    K = max(len(s) for s in subsets)
    sub = np.full((len(subsets), K), -1, np.int32)
    for r, ids in enumerate(subsets):
        sub[r, :len(ids)] = ids
    dim_sum = np.array([pool.dim[ids].sum() for ids in subsets], np.float64)
    D = int(num_devices)
    send = exchange_ms(pooled_bytes(dim_sum, batch, D, profiler.bytes_per_element),
                       profiler.link_gbps * 1e9)
    meta: dict[str, Any] = {
        "device_kind": device.device_kind, "platform": device.platform, "batch_size": batch,
        "dtype": profiler.dtype, "profiler_version": profiler.version,
        "setting": profiler.setting(device), "draw": int(draw), "engine": profiler.engine,
        "held_out_tables": None if held is None else held.tolist(),
        "held_out_every": int(held_out_every),
        "num_devices": D, "link_gbps": profiler.link_gbps,
        "link_latency_us": profiler.link_latency_us, "pool_seed": int(pool.seed),
        "subset_seed": int(seed), "min_tables": int(min_tables),
        "max_tables": int(max_tables), "max_bytes": float(max_bytes),
        "warmup": profiler.warmup, "runs": profiler.runs, "requested": int(n_subsets),
        "complete": len(subsets) == int(n_subsets), "measured_now": measured,
        "from_cache": cached, "measure_seconds": measure_s,
        "seconds": time.perf_counter() - t0,
        "comm": "send_ms is modelled (bytes over link bandwidth), not measured"}
    return ProfiledDataset(
        rows=pool.rows.copy(), dim=pool.dim.copy(), pooling=pool.pooling.copy(),
        skew=pool.skew.copy(), features=scale_features(table_features(pool)), subsets=sub,
        fwd_ms=np.array([m.fwd_ms for m in recs]), bwd_ms=np.array([m.bwd_ms for m in recs]),
        fwd_iqr_ms=np.array([m.fwd_iqr_ms for m in recs]),
        bwd_iqr_ms=np.array([m.bwd_iqr_ms for m in recs]), send_ms=send, meta=meta)


def remeasure(data: ProfiledDataset, index: np.ndarray, *, draw: int,
              config: ProfilerConfig = ProfilerConfig(),
              cache: MeasurementCache | None = None,
              device: jax.Device | None = None) -> np.ndarray:
    """Measured compute (fwd + bwd, ms) of the subsets ``data.subsets[index]`` again, as
    measurement ``draw`` (>= 1: fresh, stored apart in the cache): the profiler's
    repeatability on the same subsets.

    Raises:
      ValueError: ``draw`` is 0 (that is the dataset's own measurement).
    """
    if int(draw) < 1:
        raise ValueError(f"remeasure: draw must be >= 1 (0 is the dataset's), got {draw}")
    pool = data.pool()
    pools = [pool.subset(s[s >= 0]) for s in data.subsets[np.asarray(index)]]
    out = []
    for at in range(0, len(pools), SESSION_SETS):
        out += [m.compute_ms for m in profile_sets(pools[at:at + SESSION_SETS], config,
                                                   cache=cache, device=device, draw=draw)]
    return np.asarray(out, np.float64)
