"""SurCo-prior's networks: Flax modules from (normalised) instance features to surrogate
parameters.

Both default networks are *set* networks when the features are per row ``(R, F)``: the same
weights map every row, and rows see each other only through a pooled (mean / max) context,
so the output for a permutation of the rows is the same permutation of the output, and one
set of parameters serves any number of rows R (Deep Sets, Zaheer et al., NeurIPS 2017).

A custom network is any ``flax.linen.Module`` ``features -> parameters``; a field ``out``
left at ``None`` is set by `surco.prior.train` to the width the problem needs (the number
of entries of one row of x, or of x). Its class and fields are saved with the model, so
`surco.prior.load` rebuilds it without being told (fields must be JSON values, tuples,
dtypes or importable functions).

    >>> import jax, jax.numpy as jnp
    >>> net = SetCostNet(out=2, hidden=(8,))
    >>> z = jax.random.normal(jax.random.key(0), (5, 3))
    >>> params = net.init(jax.random.key(1), z)
    >>> net.apply(params, z).shape, net.apply(params, z[:2]).shape
    ((5, 2), (2, 2))
    >>> perm = jnp.array([4, 2, 0, 1, 3])
    >>> bool(jnp.allclose(net.apply(params, z[perm]), net.apply(params, z)[perm], atol=1e-6))
    True
"""
from __future__ import annotations

import operator

import flax.linen as nn
import jax
import jax.numpy as jnp


class CostNet(nn.Module):
    """Default prior network: an MLP from features to surrogate parameters.

    With per-row features ``(R, F)`` the same MLP maps each row to ``out`` values (one row of
    x each, DreamShard-style per-table network); each row also sees the mean of all rows'
    features as context, since in a nonlinear problem a row's best cost depends on the others.
    With one feature vector ``(F,)`` it maps it to the whole x.

    Attributes:
      out: outputs per row (per-row features) or in all (one vector); None: set by
        `surco.prior.train`.
      hidden: widths of the hidden layers (GELU).
    """

    out: int | None = None
    hidden: tuple[int, ...] = (64, 64)

    @nn.compact
    def __call__(self, feats: jax.Array) -> jax.Array:
        _check_out(self)
        h = feats
        if feats.ndim == 2:
            ctx = jnp.broadcast_to(feats.mean(axis=0, keepdims=True), feats.shape)
            h = jnp.concatenate([feats, ctx], axis=-1)
        for w in self.hidden:
            h = nn.gelu(nn.Dense(w)(h))
        return nn.Dense(self.out)(h)


class SetCostNet(nn.Module):
    """A Deep Sets network over rows (Zaheer et al., NeurIPS 2017): a shared encoder
    ``e_r = φ(z_r)``, a context pooled over rows ``[mean_r e_r, max_r e_r]``, and a shared
    decoder ``θ_r = ρ(e_r, context)``. Unlike `CostNet`, whose context is the mean of the raw
    features, the pooled context is learned (what a row needs to know about the others, e.g.
    the largest table's load), and the max keeps it independent of the number of rows.

    Attributes:
      out: outputs per row; None: set by `surco.prior.train`.
      hidden: widths of the encoder's hidden layers (GELU), and of the decoder's.
      pool: context pooling, any of ``"mean"``, ``"max"``.

    Raises:
      ValueError: features that are not per row ``(R, F)``, or an unknown ``pool``.
    """

    out: int | None = None
    hidden: tuple[int, ...] = (64, 64)
    pool: tuple[str, ...] = ("mean", "max")

    @nn.compact
    def __call__(self, feats: jax.Array) -> jax.Array:
        _check_out(self)
        if feats.ndim != 2:
            raise ValueError(f"SetCostNet: features must be per row (R, F), got shape "
                             f"{tuple(feats.shape)}; use CostNet for one feature vector")
        bad = [p for p in self.pool if p not in _POOLS]
        if bad or not self.pool:
            raise ValueError(f"SetCostNet: pool must be a non-empty tuple of {sorted(_POOLS)}, "
                             f"got {self.pool!r}")
        e = feats
        for w in self.hidden:
            e = nn.gelu(nn.Dense(w)(e))
        ctx = jnp.concatenate([_POOLS[p](e, axis=0, keepdims=True) for p in self.pool], axis=-1)
        h = jnp.concatenate([e, jnp.broadcast_to(ctx, (e.shape[0], ctx.shape[-1]))], axis=-1)
        for w in self.hidden:
            h = nn.gelu(nn.Dense(w)(h))
        return nn.Dense(self.out)(h)


_POOLS = {"mean": jnp.mean, "max": jnp.max}


def _check_out(module: nn.Module) -> None:
    try:
        ok = not isinstance(module.out, bool) and operator.index(module.out) >= 1
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{type(module).__name__}: out must be an integer >= 1, got "
                         f"{module.out!r} (surco.prior.train sets it when left at None)")
