"""Memory-efficient crossbatch attention: online softmax over key blocks with a custom VJP.

Same semantics as `attention.crossbatch_attention_dense`, but a memory layer never holds more than one block of
L x chunk_size logits per (entry, head): the key axis [local | slot 1 | ... | slot W] is walked block by block in
a `lax.scan` (compile time independent of W), each slot's block is a slice of the windowed rows at a static
offset (fot_jax.model.exchange), and the backward pass recomputes block probabilities from the saved
log-sum-exp (flash-attention style).

Key blocks: the local context (causal + key_valid) and each additional-context slot c (all L keys of entry
b - c - 1, visible iff visible[b, c] & key_valid), each split into ceil(L / chunk_size) sub-blocks. L is padded
up to a multiple of chunk_size with keys whose logit is PAD_VALUE (< MASK_VALUE), so any L works and the padding
never takes part in a softmax, not even in a fully masked row. Fully masked rows behave as in the dense path:
every real key has logit MASK_VALUE, so the row is the finite uniform average over all L + W*L values.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from fot_jax.model import exchange
from fot_jax.model.attention import MASK_VALUE, context_valid, gated_mix, heads_first
from fot_jax.model.backends.training import crossbatch_attention  # noqa: F401  (the dispatcher's former home)

# Logit of padding keys (beyond L): exp(PAD_VALUE - MASK_VALUE) == 0 in float32, so padding is invisible even
# in rows whose real keys are all masked.
PAD_VALUE = 2 * MASK_VALUE


def crossbatch_attention_chunked(q, k_local, k_mem, v, key_valid, visible, scale, chunk_size=512, ring=None,
                                 gate=None):
  """FoT crossbatch attention (docs/BEHAVIOUR.md section 2) by online softmax over key blocks of `chunk_size` keys.

  q [B, L, H, hd]; k_local [B, L, K, hd] (rotated at local positions); k_mem [B, L, K, hd] (keys as additional
  contexts, unrotated); v [B, L, K, hd]; key_valid [B, L] bool; visible [B, W] bool (W may be 0); ring: see
  `attention.crossbatch_attention_dense`. Returns [B, L, H, hd] in q's dtype; logits, softmax and accumulation
  are float32. gate [H]: the Memorizing-Transformer gate ablation (a local and a memory softmax, mixed per head).
  """
  if gate is not None:
    return _chunked_gated(q, k_local, k_mem, v, key_valid, visible, scale, chunk_size, ring, gate)
  window = visible.shape[1]
  ext = _windowed(k_mem, v, key_valid, window, ring)
  return _chunked(q, k_local, v, key_valid, *ext, visible, float(scale), _block_size(q, chunk_size), True)


def _windowed(k_mem, v, key_valid, window, ring):
  """(k_ext, v_ext, valid_ext): the windowed rows [W + n, L, ...] of the additional contexts."""
  return tuple(exchange.window_rows(x, window, ring) for x in (k_mem, v, key_valid))


def _chunked_gated(q, k_local, k_mem, v, key_valid, visible, scale, chunk_size, ring, gate):
  """Memorizing-Transformer gate: a local-only softmax and a memory-only softmax, mixed per head."""
  window = visible.shape[1]
  cs = _block_size(q, chunk_size)
  no_slots = jnp.zeros((q.shape[0], 0), bool)
  out_local = _chunked(q, k_local, v, key_valid, k_mem, v, key_valid, no_slots, float(scale), cs, True)
  if window == 0:
    return out_local
  ext = _windowed(k_mem, v, key_valid, window, ring)
  out_mem = _chunked(q, k_local, v, key_valid, *ext, visible, float(scale), cs, False)
  has_mem = jnp.any(context_valid(ext[2], visible), axis=1)  # [B]
  return gated_mix(out_local, out_mem, has_mem[:, None, None], gate)


def _block_size(q, chunk_size: int) -> int:
  """A key block never needs to be longer than L."""
  if chunk_size <= 0:
    raise ValueError(f"attention_chunk_size: must be positive, found {chunk_size}")
  return min(int(chunk_size), q.shape[1])


# ----------------------------------------------------------------------------------------------------------------
# Block iteration shared by forward and backward.


def _pad_keys(x, cs):
  """Pads axis 1 (keys) up to a multiple of cs with zeros / False."""
  pad = -x.shape[1] % cs
  return jnp.pad(x, ((0, 0), (0, pad)) + ((0, 0),) * (x.ndim - 2))


def _keys_heads_major(x, cs):
  """[B, L, K, hd] -> [B, K, Lp, hd], padded to a multiple of cs: each block is then one contiguous matmul
  operand per (entry, kv head), which measured faster on CPU than slicing the [B, L, K, hd] layout."""
  return jnp.transpose(_pad_keys(x, cs), (0, 2, 1, 3))


def _local_block(j, k_local, v, key_valid, length, cs):
  """Sub-block j of the local context: keys/values [B, K, cs, hd], mask [B, L, cs], in_range [cs]."""
  start = j * cs
  kb = jax.lax.dynamic_slice_in_dim(k_local, start, cs, axis=2)
  vb = jax.lax.dynamic_slice_in_dim(v, start, cs, axis=2)
  valid = jax.lax.dynamic_slice_in_dim(key_valid, start, cs, axis=1)  # [B, cs]
  key_pos = start + jnp.arange(cs)
  causal = key_pos[None, :] <= jnp.arange(length)[:, None]  # [L, cs]
  return kb, vb, causal[None] & valid[:, None, :], key_pos < length


def _extra_block(i, k_ext, v_ext, valid_ext, visible, n_sub, length, cs):
  """Block i of the additional contexts (slot i // n_sub, sub-block i % n_sub): a static-offset slice of the
  windowed rows (keys/values heads-major [W + B, K, Lp, hd]). Returns keys/values [B, K, cs, hd], (first
  windowed row, first key), mask [B, 1, cs], in_range."""
  rows, window = visible.shape
  slot, sub = i // n_sub, i % n_sub
  row, start = window - 1 - slot, sub * cs

  def block(x):
    return jax.lax.dynamic_slice(x, (row, 0, start, 0), (rows, x.shape[1], cs, x.shape[3]))

  vis = jax.lax.dynamic_index_in_dim(visible, slot, axis=1, keepdims=False)  # [B]
  valid = jax.lax.dynamic_slice(valid_ext, (row, start), (rows, cs))
  key_pos = start + jnp.arange(cs)
  return block(k_ext), block(v_ext), (row, start), (vis[:, None] & valid)[:, None, :], key_pos < length


def _logits(qt, kb, mask, in_range, scale):
  """qt [B, K, G, L, hd], kb [B, K, cs, hd] -> masked float32 logits [B, K, G, L, cs]."""
  s = _rows(jnp.einsum("bkqd,bksd->bkqs", _flat(qt), kb, preferred_element_type=jnp.float32), qt.shape[2]) * scale
  fill = jnp.where(in_range, MASK_VALUE, PAD_VALUE).astype(jnp.float32)  # [cs]
  return jnp.where(mask[:, None, None], s, fill)


def _flat(x):
  """[B, K, G, L, ...] -> [B, K, G*L, ...]: the query heads of one kv head as rows of one matmul."""
  return x.reshape(x.shape[:2] + (-1,) + x.shape[4:])


def _rows(x, groups):
  """[B, K, G*L, ...] -> [B, K, G, L, ...]."""
  return x.reshape(x.shape[:2] + (groups, -1) + x.shape[3:])


def _to_heads_first(q, kv_heads):
  """[B, L, H, hd] -> [B, K, G, L, hd]."""
  b, length, h, hd = q.shape
  return heads_first(q.reshape(b, length, kv_heads, h // kv_heads, hd))


def _from_heads_first(x):
  """[B, K, G, L, hd] -> [B, L, H, hd]."""
  b, k, g, length, hd = x.shape
  return x.transpose(0, 3, 1, 2, 4).reshape(b, length, k * g, hd)


# ----------------------------------------------------------------------------------------------------------------
# Forward (online softmax) and backward (recompute), tied together by a custom VJP.
# Arguments: q [B, L, H, hd]; local k_local, v [B, L, K, hd], key_valid [B, L]; windowed rows k_ext, v_ext
# [W + B, L, K, hd], valid_ext [W + B, L]; visible [B, W].


def _forward(q, k_local, v, key_valid, k_ext, v_ext, valid_ext, visible, scale, cs, with_local):
  """Returns out [B, K, G, L, hd] float32 and the log-sum-exp as (row max, log of the sum) [B, K, G, L].

  The log-sum-exp stays split: in a fully masked row m = MASK_VALUE = -1e6, where float32 steps are 0.0625, so
  m + log(l) would lose the uniform probabilities the backward pass must recompute.
  """
  b, length, h, hd = q.shape
  kh = k_local.shape[2]
  window = visible.shape[1]
  qt = _to_heads_first(q, kh)
  n_sub = math.ceil(length / cs)
  kl, vl, ke, ve = (_keys_heads_major(x, cs) for x in (k_local, v, k_ext, v_ext))
  valid, valid_e = _pad_keys(key_valid, cs), _pad_keys(valid_ext, cs)

  def update(carry, kb, vb, mask, in_range):
    m, l, acc = carry
    s = _logits(qt, kb, mask, in_range, scale)
    m_new = jnp.maximum(m, s.max(axis=-1))
    alpha = jnp.exp(m - m_new)
    p = jnp.exp(s - m_new[..., None])
    l = alpha * l + p.sum(axis=-1)
    pv = _rows(jnp.einsum("bkqs,bksd->bkqd", _flat(p).astype(vb.dtype), vb, preferred_element_type=jnp.float32),
               p.shape[2])
    return m_new, l, alpha[..., None] * acc + pv

  def local_step(carry, j):
    kb, vb, mask, in_range = _local_block(j, kl, vl, valid, length, cs)
    return update(carry, kb, vb, mask, in_range), None

  def extra_step(carry, i):
    kb, vb, _, mask, in_range = _extra_block(i, ke, ve, valid_e, visible, n_sub, length, cs)
    return update(carry, kb, vb, mask, in_range), None

  # Initial carries derive from q so that, per shard under shard_map, they vary over the same mesh axes.
  zeros = jnp.zeros_like(qt[..., 0], jnp.float32)  # [B, K, G, L]
  carry = (zeros - jnp.inf, zeros, jnp.zeros_like(qt, jnp.float32))
  # Every block has finite logits (MASK_VALUE or PAD_VALUE), so after the first block m is finite.
  if with_local:
    carry, _ = jax.lax.scan(local_step, carry, jnp.arange(n_sub))
  if window:
    carry, _ = jax.lax.scan(extra_step, carry, jnp.arange(window * n_sub))
  m, l, acc = carry
  return acc / l[..., None], (m, jnp.log(l))


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def _chunked(q, k_local, v, key_valid, k_ext, v_ext, valid_ext, visible, scale, cs, with_local):
  out, _ = _forward(q, k_local, v, key_valid, k_ext, v_ext, valid_ext, visible, scale, cs, with_local)
  return _from_heads_first(out).astype(q.dtype)


def _chunked_fwd(q, k_local, v, key_valid, k_ext, v_ext, valid_ext, visible, scale, cs, with_local):
  out, lse = _forward(q, k_local, v, key_valid, k_ext, v_ext, valid_ext, visible, scale, cs, with_local)
  res = (q, k_local, v, key_valid, k_ext, v_ext, valid_ext, visible, out, lse)
  return _from_heads_first(out).astype(q.dtype), res


def _chunked_bwd(scale, cs, with_local, res, g):
  """Recomputes each block's probabilities from the log-sum-exp; dk/dv of additional contexts are added into
  the windowed rows they were sliced from (the exchange's transpose returns them to their source entries)."""
  q, k_local, v, key_valid, k_ext, v_ext, valid_ext, visible, out, lse = res
  b, length, h, hd = q.shape
  kh = k_local.shape[2]
  window = visible.shape[1]
  qt = _to_heads_first(q, kh)  # [B, K, G, L, hd]
  do = _to_heads_first(g, kh).astype(jnp.float32)  # [B, K, G, L, hd]
  delta = jnp.sum(do * out, axis=-1)  # [B, K, G, L]
  n_sub = math.ceil(length / cs)
  kl, vl, ke, ve = (_keys_heads_major(x, cs) for x in (k_local, v, k_ext, v_ext))
  valid, valid_e = _pad_keys(key_valid, cs), _pad_keys(valid_ext, cs)
  groups = qt.shape[2]
  q_flat, do_flat = _flat(qt), _flat(do)  # [B, K, G*L, hd]

  def grads(kb, vb, mask, in_range):
    """Block gradients: dq contribution [B, K, G, L, hd], dk and dv [B, K, cs, hd]."""
    s = _logits(qt, kb, mask, in_range, scale)
    p = jnp.exp((s - lse[0][..., None]) - lse[1][..., None])  # [B, K, G, L, cs]
    dv = jnp.einsum("bkqs,bkqd->bksd", _flat(p), do_flat)
    dp = _rows(jnp.einsum("bkqd,bksd->bkqs", do_flat, vb, preferred_element_type=jnp.float32), groups)
    # Masked logits are constants in the dense path: no gradient, even in fully masked (uniform) rows.
    ds = _flat(jnp.where(mask[:, None, None], p * (dp - delta[..., None]), 0.0) * scale)  # [B, K, G*L, cs]
    dq = _rows(jnp.einsum("bkqs,bksd->bkqd", ds, kb, preferred_element_type=jnp.float32), groups)
    dk = jnp.einsum("bkqs,bkqd->bksd", ds, q_flat, preferred_element_type=jnp.float32)
    return dq, dk, dv

  def add_at(x, blk, start):
    """x[start[0]:+blk rows, :, start[1]:+cs] += blk (heads-major [rows, K, Lp, hd])."""
    idx = (start[0], 0, start[1], 0)
    return jax.lax.dynamic_update_slice(x, jax.lax.dynamic_slice(x, idx, blk.shape) + blk, idx)

  def local_step(carry, j):
    dq, dkl, dvl, dke, dve = carry
    kb, vb, mask, in_range = _local_block(j, kl, vl, valid, length, cs)
    gq, gk, gv = grads(kb, vb, mask, in_range)
    start = (0, j * cs)
    return (dq + gq, add_at(dkl, gk, start), add_at(dvl, gv, start), dke, dve), None

  def extra_step(carry, i):
    dq, dkl, dvl, dke, dve = carry
    kb, vb, start, mask, in_range = _extra_block(i, ke, ve, valid_e, visible, n_sub, length, cs)
    gq, gk, gv = grads(kb, vb, mask, in_range)
    return (dq + gq, dkl, dvl, add_at(dke, gk, start), add_at(dve, gv, start)), None

  local_zeros = jnp.zeros_like(kl, jnp.float32)  # [B, K, Lp, hd]
  ext_zeros = jnp.zeros_like(ke, jnp.float32)  # [W + B, K, Lp, hd]
  carry = (jnp.zeros_like(qt, jnp.float32), local_zeros, local_zeros, ext_zeros, ext_zeros)
  if with_local:
    carry, _ = jax.lax.scan(local_step, carry, jnp.arange(n_sub))
  if window:
    carry, _ = jax.lax.scan(extra_step, carry, jnp.arange(window * n_sub))
  dq, dkl, dvl, dke, dve = carry

  def keys_back(x, like):  # [rows, K, Lp, hd] -> [rows, L, K, hd]
    return jnp.transpose(x[:, :, :length], (0, 2, 1, 3)).astype(like.dtype)

  return (_from_heads_first(dq).astype(q.dtype), keys_back(dkl, k_local), keys_back(dvl, v), None,
          keys_back(dke, k_ext), keys_back(dve, v_ext), None, None)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)
