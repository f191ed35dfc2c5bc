"""Memory retrieval at scale: exact / approximate top-k and dense attention streamed over memory blocks.

A memory of millions of keys never has all its scores materialised: the key axis is walked in blocks by
lax.scan, keeping a running top-k (merge of the block's top-k with the carry) or a running online softmax.
Approximate top-k is the bin-max algorithm behind lax.approx_max_k (split the scores into bins, keep each
bin's max, take the top-k of the bin maxima): on TPU lax.approx_max_k runs it in hardware; elsewhere XLA
lowers approx_max_k to an exact sort, so `binned_max_k` writes the same algorithm in jnp.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

NEG = -jnp.inf


def bins_for_recall(k: int, recall_target: float) -> int:
  """Bins so that the expected recall of bin-max top-k is >= recall_target.

  A true top-k element is lost only when another top-k element shares its bin and is larger; with L bins the
  expected recall is about (1 - 1/L)^(k-1) >= recall_target.
  """
  if not 0 < recall_target < 1:
    raise ValueError(f"recall_target must be in (0, 1), found {recall_target}")
  if k <= 1:
    return 1
  return int(math.ceil(1.0 / (1.0 - recall_target ** (1.0 / (k - 1)))))


def binned_max_k(scores: jax.Array, k: int, recall_target: float = 0.95) -> tuple[jax.Array, jax.Array]:
  """Approximate top-k over the last axis by bin maxima. Returns (values [..., k], indices [..., k])."""
  m = scores.shape[-1]
  # A power of two: memory blocks are powers of two, so the bins tile them without a padding copy.
  bins = min(1 << (max(bins_for_recall(k, recall_target), k) - 1).bit_length(), m)
  width = -(-m // bins)
  bins = -(-m // width)
  if width < 2 or bins < k:  # bins of one key (or too few bins): exact is as cheap and returns k results
    return jax.lax.top_k(scores, k)
  pad = bins * width - m
  if pad:
    scores = jnp.concatenate([scores, jnp.full(scores.shape[:-1] + (pad,), NEG, scores.dtype)], axis=-1)
  # Bin b holds the contiguous positions [b*width, (b+1)*width). A max-reduce finds the best bins (argmax over
  # everything is ~5x slower on CPU), then argmax runs only inside the k chosen bins.
  grid = scores.reshape(scores.shape[:-1] + (bins, width))
  values, which_bins = jax.lax.top_k(jnp.max(grid, axis=-1), min(k, bins))  # [..., k]
  chosen = jnp.take_along_axis(grid, which_bins[..., None], axis=-2)  # [..., k, width]
  positions = which_bins * width + jnp.argmax(chosen, axis=-1)
  return values, positions


def top_k(scores: jax.Array, k: int, approx: bool = False, recall_target: float = 0.95):
  """Exact lax.top_k, or approximate: lax.approx_max_k on TPU, binned_max_k elsewhere."""
  if not approx:
    return jax.lax.top_k(scores, k)
  if jax.default_backend() == "tpu":
    return jax.lax.approx_max_k(scores, k, recall_target=recall_target)
  return binned_max_k(scores, k, recall_target)


def _blocks(keys: jax.Array, valid: jax.Array, block: int):
  """[M, D] keys -> [nb, block, D] with padding marked invalid."""
  m = keys.shape[0]
  nb = -(-m // block)
  pad = nb * block - m
  keys = jnp.pad(keys, [(0, pad), (0, 0)])
  valid = jnp.pad(valid, [(0, pad)])
  return keys.reshape(nb, block, -1), valid.reshape(nb, block), nb


def streamed_top_k(queries: jax.Array, keys: jax.Array, valid: jax.Array, k: int, block: int = 65536,
                   approx: bool = False, recall_target: float = 0.95) -> tuple[jax.Array, jax.Array]:
  """Top-k keys by inner product for each query: queries [Q, D], keys [M, D], valid [M] -> ([Q, k], [Q, k]).

  Never holds more than Q x block scores. Invalid keys score -inf.
  """
  if not 0 < k <= keys.shape[0]:
    raise ValueError(f"streamed_top_k: k must be in [1, memory size {keys.shape[0]}], found k={k}")
  kb, vb, nb = _blocks(keys, valid, block)

  def step(carry, xs):
    best, best_idx = carry
    blk_keys, blk_valid, start = xs
    scores = jnp.einsum("qd,md->qm", queries, blk_keys.astype(queries.dtype), preferred_element_type=jnp.float32)
    scores = jnp.where(blk_valid[None], scores, NEG)
    vals, idx = top_k(scores, min(k, block), approx, recall_target)
    merged_vals = jnp.concatenate([best, vals], axis=-1)
    merged_idx = jnp.concatenate([best_idx, idx + start], axis=-1)
    top, pos = jax.lax.top_k(merged_vals, k)
    return (top, jnp.take_along_axis(merged_idx, pos, axis=-1)), None

  init = (jnp.full((queries.shape[0], k), NEG, jnp.float32), jnp.zeros((queries.shape[0], k), jnp.int32))
  starts = jnp.arange(nb, dtype=jnp.int32) * block
  (values, indices), _ = jax.lax.scan(step, init, (kb, vb, starts))
  return values, indices


def streamed_dense_attention(queries: jax.Array, keys: jax.Array, values: jax.Array, valid: jax.Array,
                             scale: float, block: int = 65536) -> jax.Array:
  """softmax(q k^T * scale) v over the whole memory by online softmax: [Q, D] x [M, D] -> [Q, Dv]."""
  kb, vmask, nb = _blocks(keys, valid, block)
  vals, _, _ = _blocks(values, valid, block)

  def step(carry, xs):
    m_run, l_run, acc = carry
    blk_keys, blk_vals, blk_valid = xs
    s = jnp.einsum("qd,md->qm", queries, blk_keys.astype(queries.dtype), preferred_element_type=jnp.float32)
    s = jnp.where(blk_valid[None], s * scale, NEG)
    m_new = jnp.maximum(m_run, s.max(axis=-1))
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
    p = jnp.exp(s - m_safe[:, None])
    correction = jnp.exp(jnp.where(jnp.isfinite(m_run), m_run - m_safe, NEG))
    l_new = l_run * correction + p.sum(axis=-1)
    acc = acc * correction[:, None] + p @ blk_vals.astype(jnp.float32)
    return (m_new, l_new, acc), None

  q = queries.shape[0]
  init = (jnp.full((q,), NEG, jnp.float32), jnp.zeros((q,), jnp.float32),
          jnp.zeros((q, values.shape[-1]), jnp.float32))
  (_, l_run, acc), _ = jax.lax.scan(step, init, (kb, vals, vmask))
  return acc / jnp.maximum(l_run, 1e-30)[:, None]


def recall(approx_indices: jax.Array, exact_indices: jax.Array) -> float:
  """Fraction of the exact top-k indices that the approximate search also returned (averaged over queries)."""
  hits = (approx_indices[:, :, None] == exact_indices[:, None, :]).any(axis=1)
  return float(hits.mean())
