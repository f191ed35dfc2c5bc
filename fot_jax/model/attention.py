"""Attention kernels (dense reference path): causal, crossbatch (FoT training) and memory (FoT inference).

Shapes: B batch, T queries, S keys, H query heads, K kv heads (GQA groups G = H / K), hd head dim.
Logits and softmax are float32. Masked logits are set to MASK_VALUE (-1e6, as the released code), not -inf, so
a fully masked row stays finite and masked entries get exactly zero probability and zero gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fot_jax.model import exchange, retrieval

MASK_VALUE = -1e6


def _group(q: jax.Array, kv_heads: int) -> jax.Array:
  """[B, T, H, hd] -> [B, T, K, G, hd]."""
  b, t, h, hd = q.shape
  return q.reshape(b, t, kv_heads, h // kv_heads, hd)


def _ungroup(o: jax.Array) -> jax.Array:
  b, t, k, g, hd = o.shape
  return o.reshape(b, t, k * g, hd)


def _heads_major(x: jax.Array) -> jax.Array:
  """[B, S, K, hd] -> [B, K, S, hd]: batch-like axes first, the layout batched matmuls run fastest in."""
  return jnp.transpose(x, (0, 2, 1, 3))


def heads_first(qg: jax.Array) -> jax.Array:
  """Grouped queries [B, T, K, G, hd] -> [B, K, G, T, hd]: each kv head's queries together."""
  return jnp.transpose(qg, (0, 2, 3, 1, 4))


def _grouped_queries(q: jax.Array, kv_heads: int) -> jax.Array:
  """[B, T, H, hd] -> [B, K, G*T, hd]: the G query heads sharing a kv head become rows of one matmul."""
  b, t, h, hd = q.shape
  return heads_first(_group(q, kv_heads)).reshape(b, kv_heads, (h // kv_heads) * t, hd)


def attention_logits(q: jax.Array, k: jax.Array, scale: float) -> jax.Array:
  """q [B, T, H, hd], k [B, S, K, hd] -> float32 logits [B, K, G, T, S].

  Computed as one [G*T, hd] x [hd, S] matmul per (entry, kv head); on CPU this layout measured ~20% faster
  forward+backward than contracting the grouped [B, T, K, G, hd] layout directly.
  """
  b, t, h, _ = q.shape
  kv_heads = k.shape[2]
  logits = jnp.einsum("bkqd,bksd->bkqs", _grouped_queries(q, kv_heads), _heads_major(k),
                      preferred_element_type=jnp.float32) * scale
  return logits.reshape(b, kv_heads, h // kv_heads, t, k.shape[1])


def weighted_values(probs: jax.Array, v: jax.Array) -> jax.Array:
  """probs [B, K, G, T, S] (float32), v [B, S, K, hd] -> float32 [B, T, H, hd]: sum over keys of probs x values."""
  b, kv_heads, g, t, s = probs.shape
  out = jnp.einsum("bkqs,bksd->bkqd", probs.reshape(b, kv_heads, g * t, s).astype(v.dtype), _heads_major(v),
                   preferred_element_type=jnp.float32)
  return jnp.transpose(out.reshape(b, kv_heads, g, t, -1), (0, 3, 1, 2, 4)).reshape(b, t, kv_heads * g, -1)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, scale: float) -> jax.Array:
  """One softmax over S keys. mask [B, T, S] bool (True = visible). Returns [B, T, H, hd] in q's dtype."""
  logits = attention_logits(q, k, scale)
  logits = jnp.where(mask[:, None, None], logits, MASK_VALUE)
  probs = jax.nn.softmax(logits, axis=-1)
  return weighted_values(probs, v).astype(q.dtype)


def causal_mask(key_valid: jax.Array) -> jax.Array:
  """[B, L] key validity -> [B, L, L] causal visibility."""
  length = key_valid.shape[1]
  tri = jnp.tril(jnp.ones((length, length), bool))
  return tri[None] & key_valid[:, None, :]


def causal_attention(q, k, v, key_valid, scale):
  """Ordinary causal self-attention within each entry."""
  return attend(q, k, v, causal_mask(key_valid), scale)


def window_contexts(ext: jax.Array, window: int, rows: int) -> jax.Array:
  """Windowed rows ext [W + n, L, ...] -> [n, W*L, ...]: the additional contexts of every entry, in slot order."""
  if window == 0:
    return jnp.zeros((rows, 0) + ext.shape[2:], ext.dtype)
  slots = [exchange.slot_rows(ext, c, window, rows) for c in range(window)]  # W x [n, L, ...]
  stacked = jnp.stack(slots, axis=1)  # [n, W, L, ...]
  return stacked.reshape((rows, window * ext.shape[1]) + ext.shape[2:])


def context_valid(valid_ext: jax.Array, visible: jax.Array) -> jax.Array:
  """[n, W*L]: key t of slot c is visible to entry b iff visible[b, c] and it is a real token of its entry."""
  rows, window = visible.shape
  length = valid_ext.shape[1]
  slots = window_contexts(valid_ext, window, rows).reshape(rows, window, length)
  return (visible[:, :, None] & slots).reshape(rows, window * length)


def additional_contexts(k_mem, v, key_valid, visible, ring=None):
  """Keys [B, W*L, K, hd], values and validity [B, W*L] of every entry's additional contexts, in slot order,
  from the windowed rows of this shard (exchanged with its neighbours when ring is given)."""
  b, window = visible.shape
  keys = window_contexts(exchange.window_rows(k_mem, window, ring), window, b)
  values = window_contexts(exchange.window_rows(v, window, ring), window, b)
  return keys, values, context_valid(exchange.window_rows(key_valid, window, ring), visible)


def crossbatch_attention_dense(q, k_local, k_mem, v, key_valid, visible, scale, gate=None, ring=None):
  """FoT crossbatch attention, materialising all L x (W+1)L logits.

  q [B, L, H, hd] and k_local [B, L, K, hd] carry local positions; k_mem [B, L, K, hd] are the same keys as
  additional contexts ("at position 0", unrotated); v [B, L, K, hd]; key_valid [B, L]; visible [B, W] from a
  CrossbatchPlan (slot c holds entry b - c - 1). ring: this is one shard of a batch-sharded mesh and the window
  arrives by neighbour exchange (fot_jax.model.exchange). gate [H] (optional) switches to the
  Memorizing-Transformer mix of two softmaxes.
  """
  b, length = key_valid.shape
  keys_add, values_add, valid_add = additional_contexts(k_mem, v, key_valid, visible, ring)
  mask_add = jnp.broadcast_to(valid_add[:, None, :], (b, length, valid_add.shape[-1]))
  if gate is None:
    keys = jnp.concatenate([k_local, keys_add], axis=1)
    values = jnp.concatenate([v, values_add], axis=1)
    return attend(q, keys, values, jnp.concatenate([causal_mask(key_valid), mask_add], axis=-1), scale)
  return gated_mix(attend(q, k_local, v, causal_mask(key_valid), scale),
                   attend(q, keys_add, values_add, mask_add, scale), mask_add, gate)


def gated_mix(out_local, out_mem, mem_mask, gate):
  """Memorizing-Transformer gate: sigmoid(gate_h) * memory + (1 - sigmoid(gate_h)) * local, per head.

  Queries that see no memory token use the local output only.
  """
  g = jax.nn.sigmoid(gate.astype(jnp.float32))[None, None, :, None]  # [1, 1, H, 1]
  has_mem = jnp.any(mem_mask, axis=-1)[:, :, None, None]  # [B, T, 1, 1]
  g = jnp.where(has_mem, g, 0.0)
  out = g * out_mem.astype(jnp.float32) + (1.0 - g) * out_local.astype(jnp.float32)
  return out.astype(out_local.dtype)


def memory_attention(q, k_local, v_local, local_mask, mem_k, mem_v, mem_valid, scale,
                     topk: int | None = None, approx: bool = False, gate=None):
  """FoT inference attention of a memory layer (docs/BEHAVIOUR.md section 3): one softmax over [local | memory].

  q [B, T, H, hd]; k_local/v_local [B, S, K, hd] (cache + current window, keys rotated); local_mask [B, T, S];
  mem_k/mem_v [B, M, K, hd] (keys unrotated, any dtype); mem_valid [B, M].
  topk: each query keeps only its top-k memory keys by inner product (exact, or approximate: retrieval.top_k).
  """
  mem_k = mem_k.astype(q.dtype)
  mem_v = mem_v.astype(v_local.dtype)
  if topk is None:
    if gate is not None:
      mem_mask = jnp.broadcast_to(mem_valid[:, None, :], (q.shape[0], q.shape[1], mem_k.shape[1]))
      return gated_mix(attend(q, k_local, v_local, local_mask, scale),
                       attend(q, mem_k, mem_v, mem_mask, scale), mem_mask, gate)
    keys = jnp.concatenate([k_local, mem_k], axis=1)
    values = jnp.concatenate([v_local, mem_v], axis=1)
    mem_mask = jnp.broadcast_to(mem_valid[:, None, :], (q.shape[0], q.shape[1], mem_k.shape[1]))
    return attend(q, keys, values, jnp.concatenate([local_mask, mem_mask], axis=-1), scale)
  if gate is not None:
    raise ValueError("mem_gate with top-k memory is not supported; use dense memory for the gate ablation")
  return _topk_memory_attention(q, k_local, v_local, local_mask, mem_k, mem_v, mem_valid, scale, topk, approx)


def _topk_memory_attention(q, k_local, v_local, local_mask, mem_k, mem_v, mem_valid, scale, topk, approx):
  """kNN memory: per query and head, the top-k memory keys join the local keys in one softmax."""
  topk = min(topk, mem_k.shape[1])
  local_logits = attention_logits(q, k_local, scale)  # [B, K, G, T, S]
  local_logits = jnp.where(local_mask[:, None, None], local_logits, MASK_VALUE)
  mem_logits = attention_logits(q, mem_k, scale)  # [B, K, G, T, M]
  mem_logits = jnp.where(mem_valid[:, None, None, None, :], mem_logits, MASK_VALUE)
  top_logits, top_idx = retrieval.top_k(mem_logits, topk, approx)  # [B, K, G, T, k]
  probs = jax.nn.softmax(jnp.concatenate([local_logits, top_logits], axis=-1), axis=-1)
  p_local, p_mem = probs[..., :local_logits.shape[-1]], probs[..., local_logits.shape[-1]:]
  out = _group(weighted_values(p_local, v_local), mem_k.shape[2])  # [B, T, K, G, hd]
  # Gather the selected memory values: mem_v [B, M, K, hd] -> [B, K, G, T, k, hd].
  mem_v_heads = jnp.moveaxis(mem_v, 2, 1)  # [B, K, M, hd]
  b, kh, g, t, kk = top_idx.shape
  flat_idx = top_idx.reshape(b, kh, g * t * kk)
  picked = jnp.take_along_axis(mem_v_heads, flat_idx[..., None], axis=2).reshape(b, kh, g, t, kk, -1)
  out = out + jnp.einsum("bkgtj,bkgtjd->btkgd", p_mem.astype(picked.dtype), picked,
                         preferred_element_type=jnp.float32)
  return _ungroup(out).astype(q.dtype)
