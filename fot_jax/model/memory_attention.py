"""Memory-layer attention at inference, streamed over memory blocks and optionally sharded over devices.

One softmax over [local | memory] (as LongLLaMA's memory layers compute it) is computed as softmax statistics (running max m, sum of
exponentials l, weighted values acc) that merge exactly: the local keys give one set, each memory block another
(dense: every key of the block; top-k: a running per-query selection), and with memory sharded over a mesh axis
each device's statistics merge by a log-sum-exp reduction. Only one block of memory logits
[B, K, G, T, block] exists at a time, so the temporaries do not grow with the memory size M.

Shapes: B batch, T queries, S local keys, H query heads, K kv heads (G = H / K), hd head dim, C memory slots
(per device when sharded). Memory is head-major, [Nm, B, K, C, hd] (memory.InferenceState), and the queries are
read as qh [B, K, G, T, hd], so a block's products need no transposes. Masked logits are MASK_VALUE (-1e6) exactly
as in attention.memory_attention, which materialises all [B, K, G, T, C] logits and stays as the reference.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from fot_jax.model import ivf, retrieval
from fot_jax.model.attention import MASK_VALUE, attention_logits, gated_mix, heads_first


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Stats:
  """Softmax statistics of a set of keys per (batch, kv head, group, query)."""
  m: jax.Array  # [B, K, G, T] max logit (-inf: no key)
  l: jax.Array  # [B, K, G, T] sum of exp(logit - m)
  acc: jax.Array  # [B, K, G, T, hd] sum of exp(logit - m) * value, float32


def empty_stats(b, kh, g, t, hd) -> Stats:
  return Stats(jnp.full((b, kh, g, t), -jnp.inf, jnp.float32), jnp.zeros((b, kh, g, t), jnp.float32),
               jnp.zeros((b, kh, g, t, hd), jnp.float32))


def softmax_terms(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """logits [..., S] -> (m [...] the max, p [..., S] = exp(logits - m)); a row of -inf only gives p = 0."""
  m = logits.max(axis=-1)
  return m, jnp.exp(logits - jnp.where(jnp.isfinite(m), m, 0.0)[..., None])


def stats_of(logits: jax.Array, values: jax.Array) -> Stats:
  """logits [B, K, G, T, S] (masked already), values [B, S, K, hd] -> Stats."""
  m, p = softmax_terms(logits)
  acc = jnp.einsum("bkgts,bskd->bkgtd", p.astype(values.dtype), values, preferred_element_type=jnp.float32)
  return Stats(m, p.sum(axis=-1), acc)


def _rescale(s: Stats, m: jax.Array) -> tuple[jax.Array, jax.Array]:
  c = jnp.where(jnp.isfinite(s.m), jnp.exp(s.m - jnp.where(jnp.isfinite(m), m, 0.0)), 0.0)
  return s.l * c, s.acc * c[..., None]


def merge(a: Stats, b: Stats) -> Stats:
  """The statistics of the union of two disjoint key sets."""
  m = jnp.maximum(a.m, b.m)
  la, acca = _rescale(a, m)
  lb, accb = _rescale(b, m)
  return Stats(m, la + lb, acca + accb)


def merge_across(s: Stats, axis: str | None) -> Stats:
  """Log-sum-exp merge of every device's statistics over mesh axis `axis` (no-op without one)."""
  if axis is None:
    return s
  m = jax.lax.pmax(s.m, axis)
  l, acc = _rescale(s, m)
  return Stats(m, jax.lax.psum(l, axis), jax.lax.psum(acc, axis))


def finish(s: Stats) -> jax.Array:
  """Stats -> attention output [B, T, K, G, hd] float32 (a set without keys gives zeros)."""
  out = s.acc / jnp.where(s.l > 0, s.l, 1.0)[..., None]
  return jnp.moveaxis(out, 3, 1)


def _block(a: jax.Array, i, block: int) -> jax.Array:
  """Block i of validity [B, C] -> [B, block]."""
  return jax.lax.dynamic_slice_in_dim(a, i * block, block, axis=1)


def _layer_block(a: jax.Array, layer: int, i, block: int) -> jax.Array:
  """Block i of layer `layer` of memory [Nm, B, K, C, hd] -> [B, K, block, hd], without slicing out the layer
  first (a static slice of one layer would copy that layer's whole memory)."""
  size = (1,) + a.shape[1:3] + (block, a.shape[4])
  return jax.lax.dynamic_slice(a, (layer, 0, 0, i * block, 0), size)[0]


def _num_blocks(fill, block: int):
  return (fill + block - 1) // block


FEW_QUERIES = 16  # queries per kv head (G * T) up to which a step counts as few-query (generation)
PER_HEAD_DOTS = 64  # the most (batch row, kv head) pairs whose few-query products are unrolled into 2-D dots


def _per_head(qh: jax.Array) -> bool:
  """Whether each (batch row, kv head) multiplies as its own 2-D dot. On CPU, XLA's batched matrix-vector product
  reads memory at under half the speed of a plain one (bench/bench_memory_layout.py: 14.3 vs 5.2 ms for 32k
  float32 slots x 4 heads of keys and values), and generation is such a product. Larger batches and other
  backends keep one batched dot."""
  b, kh, g, t, _ = qh.shape
  return g * t <= FEW_QUERIES and b * kh <= PER_HEAD_DOTS and jax.default_backend() == "cpu"


def _per_pair(fn, a: jax.Array, c: jax.Array) -> jax.Array:
  """fn(a[i, j], c[i, j]) for every (batch row, kv head), stacked back to [B, K, ...]."""
  return jnp.stack([jnp.stack([fn(a[i, j], c[i, j]) for j in range(a.shape[1])]) for i in range(a.shape[0])])


def block_scores(qh: jax.Array, keys: jax.Array) -> jax.Array:
  """qh [B, K, G, T, hd] . keys [B, K, n, hd] -> [B, K, G, T, n] float32."""
  if not _per_head(qh):
    return jnp.einsum("bkgtd,bkmd->bkgtm", qh, keys, preferred_element_type=jnp.float32)
  b, kh, g, t, hd = qh.shape
  dot = lambda q, k: jnp.dot(q.reshape(g * t, hd), k.T, preferred_element_type=jnp.float32)
  return _per_pair(dot, qh, keys).reshape(b, kh, g, t, keys.shape[2])


def block_weighted_values(qh: jax.Array, p: jax.Array, values: jax.Array) -> jax.Array:
  """p [B, K, G, T, n] . values [B, K, n, hd] -> [B, K, G, T, hd] float32 (qh decides the dot form)."""
  if not _per_head(qh):
    return jnp.einsum("bkgtm,bkmd->bkgtd", p, values, preferred_element_type=jnp.float32)
  b, kh, g, t, n = p.shape
  dot = lambda w, v: jnp.dot(w.reshape(g * t, n), v, preferred_element_type=jnp.float32)
  return _per_pair(dot, p, values).reshape(b, kh, g, t, values.shape[-1])


def _block_logits(qh, mem_k, layer, mem_valid, i, block: int, scale: float) -> jax.Array:
  """Logits [B, K, G, T, block] of memory block i, invalid slots masked."""
  logits = block_scores(qh, _layer_block(mem_k, layer, i, block).astype(qh.dtype)) * scale
  return jnp.where(_block(mem_valid, i, block)[:, None, None, None, :], logits, MASK_VALUE)


def dense_memory_stats(qg, mem_k, mem_v, mem_valid, fill, scale: float, block: int, value_dtype,
                       layer: int = 0) -> Stats:
  """Online softmax over the first `fill` slots of memory, one block of keys at a time.

  qg [B, T, K, G, hd]; mem_k/mem_v [Nm, B, K, C, hd] (read at `layer`); mem_valid [B, C]; fill a traced int.
  """
  b, t, kh, g, hd = qg.shape
  qh = heads_first(qg)

  def body(i, carry):
    m, p = softmax_terms(_block_logits(qh, mem_k, layer, mem_valid, i, block, scale))
    values = _layer_block(mem_v, layer, i, block).astype(value_dtype)
    return merge(carry, Stats(m, p.sum(axis=-1), block_weighted_values(qh, p.astype(value_dtype), values)))

  return jax.lax.fori_loop(0, _num_blocks(fill, block), body, empty_stats(b, kh, g, t, mem_v.shape[-1]))


def topk_memory_logits(qg, mem_k, mem_valid, fill, scale: float, k: int, block: int, approx: bool,
                       recall_target: float = 0.95, layer: int = 0) -> tuple[jax.Array, jax.Array]:
  """Running top-k memory logits per query over blocks: ([B, K, G, T, k] logits, [B, K, G, T, k] slots).

  Unfilled entries (fewer than k keys seen) have logit -inf. Each block's own selection is exact or
  approximate (retrieval.top_k); the merge with the running selection is exact.
  """
  b, t, kh, g, _ = qg.shape
  per_block = min(k, block)
  qh = heads_first(qg)

  def body(i, carry):
    best, best_idx = carry
    vals, idx = retrieval.top_k(_block_logits(qh, mem_k, layer, mem_valid, i, block, scale), per_block, approx,
                                recall_target)
    top, pos = jax.lax.top_k(jnp.concatenate([best, vals], axis=-1), k)
    merged_idx = jnp.concatenate([best_idx, idx.astype(jnp.int32) + i * block], axis=-1)
    return top, jnp.take_along_axis(merged_idx, pos, axis=-1)

  init = (jnp.full((b, kh, g, t, k), -jnp.inf, jnp.float32), jnp.zeros((b, kh, g, t, k), jnp.int32))
  return jax.lax.fori_loop(0, _num_blocks(fill, block), body, init)


def gather_values(mem_v: jax.Array, layer: int, slots: jax.Array) -> jax.Array:
  """mem_v [Nm, B, K, C, hd], slots [B, K, G, T, k] -> values [B, K, G, T, k, hd] (no copy of the memory)."""
  b, kh = slots.shape[:2]
  flat = slots.reshape(b, kh, -1)
  picked = mem_v[layer, jnp.arange(b)[:, None, None], jnp.arange(kh)[None, :, None], flat]  # [B, K, N, hd]
  return picked.reshape(slots.shape + (mem_v.shape[-1],))


def _globally_selected(logits: jax.Array, k: int, axis: str) -> jax.Array:
  """Which of this device's top-k candidates [..., k] are among the top-k of all devices' candidates.

  Everything above the global k-th value is kept; of the candidates equal to it (duplicate keys), exactly as many
  as the global top-k needs are kept, taken in device order, so the selection always has k entries.
  """
  everyone = jax.lax.all_gather(logits, axis, axis=-1, tiled=True)  # [..., n*k]
  threshold = jax.lax.top_k(everyone, k)[0][..., -1:]
  needed_ties = k - jnp.sum(everyone > threshold, axis=-1, keepdims=True)
  ties = logits == threshold
  tie_counts = jax.lax.all_gather(jnp.sum(ties, axis=-1), axis)  # [n, ...]
  me = jax.lax.axis_index(axis)
  before = jnp.sum(jnp.where((jnp.arange(tie_counts.shape[0]) < me).reshape((-1,) + (1,) * (tie_counts.ndim - 1)),
                             tie_counts, 0), axis=0)[..., None]
  tie_rank = jnp.cumsum(ties, axis=-1) - 1
  return (logits > threshold) | (ties & (tie_rank < needed_ties - before))


def ivf_memory_logits(qg, index: ivf.IVFIndex, scale: float, k: int, nprobe: int,
                      layer: int = 0) -> tuple[jax.Array, jax.Array]:
  """Top-k memory logits per query from the IVF index of layer `layer` ([Nm, B, K, L, ...]), probing nprobe
  lists: ([B, K, G, T, k] logits, [B, K, G, T, k] slots), as topk_memory_logits."""
  b, t, kh, g, hd = qg.shape
  queries = heads_first(qg).reshape(b * kh, g * t, hd)
  rows = (layer, jnp.repeat(jnp.arange(b), kh), jnp.tile(jnp.arange(kh), b))
  logits, slots = ivf.search(queries, index, k, nprobe, scale, lead_index=rows)
  return logits.reshape(b, kh, g, t, k), slots.reshape(b, kh, g, t, k)


def topk_memory_stats(qg, mem_k, mem_v, mem_valid, fill, scale: float, k: int, block: int, approx: bool,
                      value_dtype, axis: str | None, layer: int = 0, index: ivf.IVFIndex | None = None,
                      nprobe: int | None = None) -> Stats:
  """Statistics of each query's top-k memory keys; with `axis`, the top-k of the whole sharded memory. With an
  `index`, the candidates are the keys of the nprobe lists each query probes (on each device).

  Sharded: every device selects its local top-k, the k-th largest of all devices' selections is the global
  threshold, and each device keeps its candidates at or above it (exact up to ties between distinct keys).
  """
  if index is None:
    logits, slots = topk_memory_logits(qg, mem_k, mem_valid, fill, scale, k, block, approx, layer=layer)
  else:
    logits, slots = ivf_memory_logits(qg, index, scale, k, nprobe, layer)
  if axis is not None:
    logits = jnp.where(_globally_selected(logits, k, axis), logits, -jnp.inf)
  values = gather_values(mem_v, layer, slots).astype(value_dtype)  # [B, K, G, T, k, hd]
  m, p = softmax_terms(logits)
  acc = jnp.einsum("bkgtj,bkgtjd->bkgtd", p.astype(values.dtype), values, preferred_element_type=jnp.float32)
  return Stats(m, p.sum(axis=-1), acc)


WIDE_BLOCK = 2048  # the widest block few queries read: wider ones spill the CPU caches (measured slower)


def widened_block(block: int, queries: int, slots: int) -> int:
  """The block for `queries` queries: `block` for a full window, wider (up to WIDE_BLOCK keys, a multiple of
  `block` dividing `slots`) for a handful of queries, whose small blocks would cost more in loop steps than in
  work (generation reads one query per step). The temporaries stay bounded whatever the memory size."""
  per_block = slots // block
  most = max(1, WIDE_BLOCK // block) if queries <= FEW_QUERIES else 1
  factor = max(f for f in range(1, min(most, per_block) + 1) if per_block % f == 0)
  return block * factor


def _local_memory_attention(q, k_local, v_local, local_mask, mem_k, mem_v, mem_valid, fill, scale, gate, index,
                            *, topk, approx, block, axis, layer, nprobe):
  """The body run on each device: local statistics, this device's memory statistics, merged."""
  b, t, h, hd = q.shape
  kh = k_local.shape[2]
  qg = q.reshape(b, t, kh, h // kh, hd)
  slots = mem_k.shape[3]
  block = min(block, slots)
  if slots % block:
    raise ValueError(f"internal: memory slots per device ({slots}) must be a multiple of the block ({block})")
  block = widened_block(block, t, slots)
  local_logits = jnp.where(local_mask[:, None, None], attention_logits(q, k_local, scale), MASK_VALUE)
  local = stats_of(local_logits, v_local)
  if topk is None:
    mem = dense_memory_stats(qg, mem_k, mem_v, mem_valid, fill, scale, block, v_local.dtype, layer)
  else:
    mem = topk_memory_stats(qg, mem_k, mem_v, mem_valid, fill, scale, topk, block, approx, v_local.dtype, axis,
                            layer, index, nprobe)
  mem = merge_across(mem, axis)
  if gate is None:
    out = finish(merge(local, mem))
    return out.reshape(b, t, h, hd).astype(q.dtype)
  has_mem = jnp.any(mem_valid, axis=1)
  if axis is not None:
    has_mem = jax.lax.psum(has_mem.astype(jnp.int32), axis) > 0
  out_local = finish(local).reshape(b, t, h, hd).astype(q.dtype)
  out_mem = finish(mem).reshape(b, t, h, hd).astype(q.dtype)
  return gated_mix(out_local, out_mem, has_mem[:, None, None], gate)


def memory_attention(q, k_local, v_local, local_mask, mem_k, mem_v, mem_valid, fill, scale, *,
                     topk: int | None = None, approx: bool = False, block: int = 512, gate=None,
                     mesh=None, axis: str | None = None, layer: int | None = None,
                     index: ivf.IVFIndex | None = None, nprobe: int | None = None):
  """FoT inference attention of a memory layer, streamed: one softmax over [local | memory].

  q [B, T, H, hd]; k_local/v_local [B, S, K, hd] (cache + window, keys rotated); local_mask [B, T, S];
  mem_k/mem_v [B, K, C, hd], or every memory layer's [Nm, B, K, C, hd] read at `layer` (unrotated, any dtype;
  sharded over mesh axis `axis` when given); mem_valid [B, C]; fill: memory slots in use (per device when
  sharded). topk: each query keeps its top-k memory keys; with an IVF `index` of every memory layer's keys
  ([Nm, B, K, L, ...], lists sharded like the memory), among the keys of the nprobe lists it probes.
  """
  if index is not None and (topk is None or layer is None or nprobe is None):
    raise ValueError("memory_attention: an IVF index serves top-k memory of stacked layers (topk, layer, nprobe)")
  if layer is None:
    mem_k, mem_v, layer = mem_k[None], mem_v[None], 0
  if topk is not None and gate is not None:
    raise ValueError("mem_gate with top-k memory is not supported; use dense memory for the gate ablation")
  axis = axis if mesh is not None else None
  fill = jnp.asarray(fill, jnp.int32)
  body = lambda q, kl, vl, lm, mk, mv, mvalid, f, idx, *g: _local_memory_attention(
      q, kl, vl, lm, mk, mv, mvalid, f, scale, g[0] if g else None, idx, topk=topk, approx=approx, block=block,
      axis=axis, layer=layer, nprobe=nprobe)
  args = (q, k_local, v_local, local_mask, mem_k, mem_v, mem_valid, fill, index) + (() if gate is None else (gate,))
  if mesh is None:
    return body(*args)
  rep, mem, valid = P(), P(None, None, None, axis), P(None, axis)
  lists = P() if index is None else P(None, None, None, axis)
  in_specs = (rep, rep, rep, rep, mem, mem, valid, rep, lists) + (() if gate is None else (rep,))
  return jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=rep, check_vma=False)(*args)
