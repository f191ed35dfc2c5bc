"""Memory-efficient crossbatch attention (issue 2 item 4): online softmax over key blocks with a custom VJP.

Same semantics as `attention.crossbatch_attention_dense`, but a memory layer never holds more than one block of
L x chunk_size logits per (entry, head): the key axis [local | slot 1 | ... | slot d] is walked block by block in
a `lax.scan` (compile time independent of d), the additional contexts are gathered one block at a time, and the
backward pass recomputes block probabilities from the saved log-sum-exp (flash-attention style).

Key blocks: the local context (causal + key_valid) and each additional-context slot c (all L keys of entry
sources[b, c], visible iff visible[b, c] & key_valid), each split into ceil(L / chunk_size) sub-blocks. L is
padded up to a multiple of chunk_size with keys whose logit is PAD_VALUE (< MASK_VALUE), so any L works and the
padding never takes part in a softmax, not even in a fully masked row. Fully masked rows behave as in the dense
path: every real key has logit MASK_VALUE, so the row is the finite uniform average over all L + d*L values.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from fot_jax.model.attention import MASK_VALUE, crossbatch_attention_dense, gated_mix

# Logit of padding keys (beyond L): exp(PAD_VALUE - MASK_VALUE) == 0 in float32, so padding is invisible even
# in rows whose real keys are all masked.
PAD_VALUE = 2 * MASK_VALUE


def crossbatch_attention_chunked(q, k_local, k_mem, v, key_valid, sources, visible, scale, chunk_size=512):
  """FoT crossbatch attention (spec section 2) by online softmax over key blocks of `chunk_size` keys.

  q [B, L, H, hd]; k_local [B, L, K, hd] (rotated at local positions); k_mem [B, L, K, hd] (keys as additional
  contexts, unrotated); v [B, L, K, hd]; key_valid [B, L] bool; sources [B, d] int32; visible [B, d] bool
  (d may be 0). Returns [B, L, H, hd] in q's dtype; logits, softmax and accumulation are float32.
  """
  return _chunked(q, k_local, k_mem, v, key_valid, sources, visible, float(scale), _block_size(q, chunk_size),
                  True)


def crossbatch_attention(q, k_local, k_mem, v, key_valid, sources, visible, scale, gate=None,
                         impl: str = "dense", chunk_size: int = 512):
  """Dispatches a memory layer's crossbatch attention to the dense, chunked or splash path (attention_impl)."""
  if impl == "dense":
    return crossbatch_attention_dense(q, k_local, k_mem, v, key_valid, sources, visible, scale, gate)
  if impl == "splash":  # TPU kernel path (imports Pallas only when chosen)
    from fot_jax.model.splash_attention import crossbatch_attention_splash
    return crossbatch_attention_splash(q, k_local, k_mem, v, key_valid, sources, visible, scale, gate)
  if impl != "chunked":
    raise ValueError(f"attention_impl: expected 'dense', 'chunked' or 'splash', found {impl!r}")
  if gate is None:
    return crossbatch_attention_chunked(q, k_local, k_mem, v, key_valid, sources, visible, scale, chunk_size)
  # Memorizing-Transformer gate: a local-only softmax and a memory-only softmax, mixed per head.
  b, d = sources.shape
  cs = _block_size(q, chunk_size)
  no_sources = jnp.zeros((b, 0), jnp.int32)
  out_local = _chunked(q, k_local, k_mem, v, key_valid, no_sources, no_sources.astype(bool), float(scale), cs,
                       True)
  if d == 0:
    return out_local
  out_mem = _chunked(q, k_local, k_mem, v, key_valid, sources, visible, float(scale), cs, False)
  has_mem = jnp.any(visible[:, :, None] & key_valid[sources], axis=(1, 2))  # [B]
  return gated_mix(out_local, out_mem, has_mem[:, None, None], gate)


def _block_size(q, chunk_size: int) -> int:
  """A key block never needs to be longer than L."""
  if chunk_size <= 0:
    raise ValueError(f"attention_chunk_size: must be positive, found {chunk_size}")
  return min(int(chunk_size), q.shape[1])


# ----------------------------------------------------------------------------------------------------------------
# Block iteration shared by forward and backward.


def _prepare(k_local, k_mem, v, key_valid, cs):
  """Pads the key axis L up to a multiple of cs. Returns padded arrays and the number of sub-blocks."""
  length = k_local.shape[1]
  n_sub = math.ceil(length / cs)
  pad = n_sub * cs - length
  widths = ((0, 0), (0, pad), (0, 0), (0, 0))
  k_local, k_mem, v = (jnp.pad(x, widths) for x in (k_local, k_mem, v))  # [B, Lp, K, hd]
  key_valid = jnp.pad(key_valid, ((0, 0), (0, pad)))  # [B, Lp], padding invalid
  return k_local, k_mem, v, key_valid, n_sub


def _local_block(j, k_local, v, key_valid, length, cs):
  """Sub-block j of the local context: keys/values [B, cs, K, hd], mask [B, L, cs], in_range [cs]."""
  start = j * cs
  kb = jax.lax.dynamic_slice_in_dim(k_local, start, cs, axis=1)
  vb = jax.lax.dynamic_slice_in_dim(v, start, cs, axis=1)
  valid = jax.lax.dynamic_slice_in_dim(key_valid, start, cs, axis=1)  # [B, cs]
  key_pos = start + jnp.arange(cs)
  causal = key_pos[None, :] <= jnp.arange(length)[:, None]  # [L, cs]
  return kb, vb, causal[None] & valid[:, None, :], key_pos < length


def _extra_block(i, k_mem, v, key_valid, sources, visible, n_sub, length, cs):
  """Block i of the additional contexts (slot i // n_sub, sub-block i % n_sub), gathered from its sources.

  Returns keys/values [B, cs, K, hd], the source indices [B], start, mask [B, 1, cs], in_range [cs].
  """
  slot, sub = i // n_sub, i % n_sub
  start = sub * cs
  src = jax.lax.dynamic_index_in_dim(sources, slot, axis=1, keepdims=False)  # [B]
  vis = jax.lax.dynamic_index_in_dim(visible, slot, axis=1, keepdims=False)  # [B]
  kb = jax.lax.dynamic_slice_in_dim(k_mem, start, cs, axis=1)[src]
  vb = jax.lax.dynamic_slice_in_dim(v, start, cs, axis=1)[src]
  valid = jax.lax.dynamic_slice_in_dim(key_valid, start, cs, axis=1)[src]  # [B, cs]
  key_pos = start + jnp.arange(cs)
  return kb, vb, src, start, (vis[:, None] & valid)[:, None, :], key_pos < length


def _logits(qt, kb, mask, in_range, scale):
  """qt [B, K, G, L, hd], kb [B, cs, K, hd] -> masked float32 logits [B, K, G, L, cs]."""
  s = jnp.einsum("bkgld,bskd->bkgls", qt, kb, preferred_element_type=jnp.float32) * scale
  fill = jnp.where(in_range, MASK_VALUE, PAD_VALUE).astype(jnp.float32)  # [cs]
  return jnp.where(mask[:, None, None], s, fill)


def _to_heads_first(q, kv_heads):
  """[B, L, H, hd] -> [B, K, G, L, hd]."""
  b, length, h, hd = q.shape
  return q.reshape(b, length, kv_heads, h // kv_heads, hd).transpose(0, 2, 3, 1, 4)


def _from_heads_first(x):
  """[B, K, G, L, hd] -> [B, L, H, hd]."""
  b, k, g, length, hd = x.shape
  return x.transpose(0, 3, 1, 2, 4).reshape(b, length, k * g, hd)


# ----------------------------------------------------------------------------------------------------------------
# Forward (online softmax) and backward (recompute), tied together by a custom VJP.


def _forward(q, k_local, k_mem, v, key_valid, sources, visible, scale, cs, with_local):
  """Returns out [B, K, G, L, hd] float32 and the log-sum-exp as (row max, log of the sum) [B, K, G, L].

  The log-sum-exp stays split: in a fully masked row m = MASK_VALUE = -1e6, where float32 steps are 0.0625, so
  m + log(l) would lose the uniform probabilities the backward pass must recompute.
  """
  b, length, h, hd = q.shape
  kh = k_local.shape[2]
  d = sources.shape[1]
  qt = _to_heads_first(q, kh)
  kl, km, vp, valid, n_sub = _prepare(k_local, k_mem, v, key_valid, cs)

  def update(carry, kb, vb, mask, in_range):
    m, l, acc = carry
    s = _logits(qt, kb, mask, in_range, scale)
    m_new = jnp.maximum(m, s.max(axis=-1))
    alpha = jnp.exp(m - m_new)
    p = jnp.exp(s - m_new[..., None])
    l = alpha * l + p.sum(axis=-1)
    pv = jnp.einsum("bkgls,bskd->bkgld", p.astype(v.dtype), vb, preferred_element_type=jnp.float32)
    return m_new, l, alpha[..., None] * acc + pv

  def local_step(carry, j):
    kb, vb, mask, in_range = _local_block(j, kl, vp, valid, length, cs)
    return update(carry, kb, vb, mask, in_range), None

  def extra_step(carry, i):
    kb, vb, _, _, mask, in_range = _extra_block(i, km, vp, valid, sources, visible, n_sub, length, cs)
    return update(carry, kb, vb, mask, in_range), None

  stats = (b, kh, h // kh, length)
  carry = (jnp.full(stats, -jnp.inf, jnp.float32), jnp.zeros(stats, jnp.float32),
           jnp.zeros(stats + (hd,), jnp.float32))
  # Every block has finite logits (MASK_VALUE or PAD_VALUE), so after the first block m is finite.
  if with_local:
    carry, _ = jax.lax.scan(local_step, carry, jnp.arange(n_sub))
  if d:
    carry, _ = jax.lax.scan(extra_step, carry, jnp.arange(d * n_sub))
  m, l, acc = carry
  return acc / l[..., None], (m, jnp.log(l))


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def _chunked(q, k_local, k_mem, v, key_valid, sources, visible, scale, cs, with_local):
  out, _ = _forward(q, k_local, k_mem, v, key_valid, sources, visible, scale, cs, with_local)
  return _from_heads_first(out).astype(q.dtype)


def _chunked_fwd(q, k_local, k_mem, v, key_valid, sources, visible, scale, cs, with_local):
  out, lse = _forward(q, k_local, k_mem, v, key_valid, sources, visible, scale, cs, with_local)
  res = (q, k_local, k_mem, v, key_valid, sources, visible, out, lse)
  return _from_heads_first(out).astype(q.dtype), res


def _chunked_bwd(scale, cs, with_local, res, g):
  """Recomputes each block's probabilities from the log-sum-exp; dk/dv of additional contexts are
  scatter-added back to their source entries."""
  q, k_local, k_mem, v, key_valid, sources, visible, out, lse = res
  b, length, h, hd = q.shape
  kh = k_local.shape[2]
  d = sources.shape[1]
  qt = _to_heads_first(q, kh)  # [B, K, G, L, hd]
  do = _to_heads_first(g, kh).astype(jnp.float32)  # [B, K, G, L, hd]
  delta = jnp.sum(do * out, axis=-1)  # [B, K, G, L]
  kl, km, vp, valid, n_sub = _prepare(k_local, k_mem, v, key_valid, cs)

  def grads(kb, vb, mask, in_range):
    """Block gradients: dq contribution [B, K, G, L, hd], dk and dv [B, cs, K, hd]."""
    s = _logits(qt, kb, mask, in_range, scale)
    p = jnp.exp((s - lse[0][..., None]) - lse[1][..., None])  # [B, K, G, L, cs]
    dv = jnp.einsum("bkgls,bkgld->bskd", p, do)
    dp = jnp.einsum("bkgld,bskd->bkgls", do, vb, preferred_element_type=jnp.float32)
    # Masked logits are constants in the dense path: no gradient, even in fully masked (uniform) rows.
    ds = jnp.where(mask[:, None, None], p * (dp - delta[..., None]), 0.0) * scale
    dq = jnp.einsum("bkgls,bskd->bkgld", ds, kb, preferred_element_type=jnp.float32)
    dk = jnp.einsum("bkgls,bkgld->bskd", ds, qt, preferred_element_type=jnp.float32)
    return dq, dk, dv

  def add_at(x, blk, start):
    return jax.lax.dynamic_update_slice_in_dim(x, jax.lax.dynamic_slice_in_dim(x, start, cs, 1) + blk, start, 1)

  def local_step(carry, j):
    dq, dkl, dkm, dv = carry
    kb, vb, mask, in_range = _local_block(j, kl, vp, valid, length, cs)
    gq, gk, gv = grads(kb, vb, mask, in_range)
    start = j * cs
    return (dq + gq, add_at(dkl, gk, start), dkm, add_at(dv, gv, start)), None

  def extra_step(carry, i):
    dq, dkl, dkm, dv = carry
    kb, vb, src, start, mask, in_range = _extra_block(i, km, vp, valid, sources, visible, n_sub, length, cs)
    gq, gk, gv = grads(kb, vb, mask, in_range)

    def scatter(x, blk):  # several entries may share a source: .add accumulates duplicates
      part = jax.lax.dynamic_slice_in_dim(x, start, cs, 1).at[src].add(blk)
      return jax.lax.dynamic_update_slice_in_dim(x, part, start, 1)

    return (dq + gq, dkl, scatter(dkm, gk), scatter(dv, gv)), None

  zeros = jnp.zeros(kl.shape, jnp.float32)  # [B, Lp, K, hd]
  carry = (jnp.zeros(qt.shape, jnp.float32), zeros, zeros, zeros)
  if with_local:
    carry, _ = jax.lax.scan(local_step, carry, jnp.arange(n_sub))
  if d:
    carry, _ = jax.lax.scan(extra_step, carry, jnp.arange(d * n_sub))
  dq, dkl, dkm, dv = carry
  return (_from_heads_first(dq).astype(q.dtype), dkl[:, :length].astype(k_local.dtype),
          dkm[:, :length].astype(k_mem.dtype), dv[:, :length].astype(v.dtype), None, None, None)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)
