"""TPU kernel path: FoT crossbatch and memory attention through JAX's Pallas splash-attention kernel.

Selected by `ModelConfig.attention_impl = "splash"`; the dense and chunked paths stay the CPU/GPU paths. Off TPU
the kernel runs in Pallas interpret mode (slow, for tests only).

How FoT visibility becomes a splash mask. Splash masks a logit when either of two masks says no:
  * a STATIC mask over [queries, keys], known when the kernel is built (NumPy or a lazily computed function,
    from which splash derives block sparsity: fully masked key blocks are skipped);
  * RUNTIME segment ids: query i may see key j only if q_ids[i] == kv_ids[j].
Each entry's keys are laid out as [local context (L) | slot 1 (L) | ... | slot W (L)] (static slices of the
windowed rows, like the dense path). The static part is `BlockCausalMask`: causal on the local block, everything
visible after it; it depends only on (L, W), so one compiled kernel serves every plan with that window. The plan
(visible [B, W]) and the padding (key_valid) are runtime values carried by the segment ids: every query has id 1,
a key has id 1 when it is visible (local: key_valid; slot c: visible[b, c] & key_valid of entry b - c - 1) and
id 0 otherwise. Plans never recompile, exactly as in the dense/chunked paths.

Inference (`memory_attention_splash`) uses the same scheme with keys [local cache + window | memory] and the
causal block on the window's own tokens.

Differences from the dense path, all outside what a loss can see:
  * A query row with NO visible key (only a padding query at the start of an entry) averages the values of the
    key blocks splash does not skip, while the dense path averages all keys; such rows belong to padding
    positions, which are loss-masked and feed no other position (their keys are masked everywhere).
  * q is multiplied by the softmax scale before the kernel (splash does not scale), rounding once in q's dtype.
Lengths are padded to multiples of 128 (splash's lane width; also required in interpret mode): queries to a
multiple of the query block, the key axis at its end with keys of segment id 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as mask_lib
from jax.sharding import PartitionSpec as P

from fot_jax.model import exchange
from fot_jax.model.attention import MASK_VALUE, additional_contexts, gated_mix

LANES = 128  # splash block sizes (and so the padded lengths) are multiples of this
BATCH_AXES, HEAD_AXIS = exchange.BATCH_AXES, exchange.HEAD_AXIS


class BlockCausalMask(mask_lib.Mask):
  """Static [q_len, kv_len] mask: keys in [start, start + causal_len) are causal w.r.t. the queries (key
  start + j is visible to query i iff j <= i); every other key is visible.

  Computed lazily inside the kernel (splash uses `q_sequence` + `mask_function` when they exist), so nothing of
  size q_len x kv_len is ever materialised, and splash still skips the fully masked blocks above the diagonal.
  causal_len = 0 gives a full mask.
  """

  def __init__(self, q_len: int, kv_len: int, start: int, causal_len: int):
    self._shape = (int(q_len), int(kv_len))
    self.start, self.causal_len = int(start), int(causal_len)
    self.q_sequence = np.arange(q_len, dtype=np.int32)
    stop = self.start + self.causal_len
    begin = self.start

    def mask_function(q_ids, kv_ids):  # works on NumPy (mask processing) and jnp (inside the kernel)
      return (kv_ids < begin) | (kv_ids >= stop) | (kv_ids - begin <= q_ids)
    self.mask_function = mask_function

  @property
  def shape(self) -> tuple[int, ...]:
    return self._shape

  def __getitem__(self, idx) -> np.ndarray:
    q_slice, kv_slice = idx
    rows = self.q_sequence[q_slice]
    cols = np.arange(self._shape[1])[kv_slice]
    return self.mask_function(rows[:, None], cols[None, :])

  def _key(self):
    return (self._shape, self.start, self.causal_len)

  def __eq__(self, other: object) -> bool:
    return isinstance(other, BlockCausalMask) and self._key() == other._key()

  def __hash__(self) -> int:
    return hash((BlockCausalMask, self._key()))


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _block(length: int, largest: int = 512) -> int:
  """The largest of 512/256/128 dividing `length` (a multiple of 128)."""
  for b in (largest, 256, LANES):
    if b <= largest and length % b == 0:
      return b
  raise ValueError(f"splash attention: length {length} is not a multiple of {LANES}")


def _kernel(heads: int, q_len: int, kv_len: int, start: int, causal_len: int, interpret: bool):
  """A splash MHA kernel (GQA allowed) for one static mask. Built inside each trace: it holds its block-sparsity
  tables as arrays (constants of that trace); the NumPy mask processing behind them is cached by splash."""
  bq, bkv = _block(q_len), _block(kv_len)
  sizes = splash.BlockSizes(block_q=bq, block_kv=bkv, block_kv_compute=bkv, block_q_dkv=bq, block_kv_dkv=bkv,
                            block_kv_dkv_compute=bkv, block_q_dq=bq, block_kv_dq=bkv)
  mask = mask_lib.MultiHeadMask([BlockCausalMask(q_len, kv_len, start, causal_len)] * heads)
  return splash.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, mask_value=MASK_VALUE,
                                interpret=interpret)


def _use_interpret(interpret: bool | None) -> bool:
  """Interpret mode unless the code is being compiled for TPU (the context mesh's devices, else the backend)."""
  if interpret is not None:
    return bool(interpret)
  mesh = jax.sharding.get_abstract_mesh()
  platform = mesh.abstract_device.platform if not mesh.empty else jax.default_backend()
  return platform != "tpu"


def _mesh_specs(batch: int, heads: int, kv_heads: int):
  """(mesh, batch axes, head axis) for a shard_map around the kernel, or None without a usable context mesh.

  A Pallas TPU kernel is a custom call that XLA cannot partition: under plain GSPMD every device would gather
  the full batch and run all of it. Inside shard_map each device runs its own rows (and heads).
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return None
  names = set(mesh.axis_names)
  rows = tuple(a for a in BATCH_AXES if a in names and mesh.shape[a] > 1)
  if rows and batch % int(np.prod([mesh.shape[a] for a in rows])):
    rows = ()
  head = HEAD_AXIS if HEAD_AXIS in names and mesh.shape[HEAD_AXIS] > 1 else None
  if head and (heads % mesh.shape[head] or kv_heads % mesh.shape[head]):
    head = None
  return mesh, (rows or None), head


def _splash(q, k, v, kv_ids, start: int, causal_len: int, interpret: bool | None, partition: bool = True):
  """One joint softmax per query over keys k/v [B, S, K, hd] under BlockCausalMask(start, causal_len) AND
  kv_ids [B, S] (1 = visible). q [B, T, H, hd] is already scaled. Returns [B, T, H, hd] in q's dtype.
  partition False: the caller already runs per shard (inside shard_map), so the kernel runs on what it gets."""
  b, t, h, hd = q.shape
  s, kh = k.shape[1], k.shape[2]
  tp, sp = _round_up(t, LANES), _round_up(s, LANES)
  q = jnp.pad(q, ((0, 0), (0, tp - t), (0, 0), (0, 0)))
  k = jnp.pad(k, ((0, 0), (0, sp - s), (0, 0), (0, 0)))
  v = jnp.pad(v, ((0, 0), (0, sp - s), (0, 0), (0, 0)))
  kv_ids = jnp.pad(kv_ids.astype(jnp.int32), ((0, 0), (0, sp - s)))  # padding keys: id 0, never visible
  q_ids = jnp.ones((b, tp), jnp.int32)
  qt, kt, vt = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))  # [B, heads, len, hd]
  interpret = _use_interpret(interpret)

  def run(qt, kt, vt, q_ids, kv_ids):
    kernel = _kernel(qt.shape[1], tp, sp, start, causal_len, interpret)
    return jax.vmap(kernel)(qt, kt, vt, segment_ids=splash.SegmentIds(q=q_ids, kv=kv_ids))

  specs = _mesh_specs(b, h, kh) if partition else None
  if specs is None:
    out = run(qt, kt, vt, q_ids, kv_ids)
  else:
    mesh, rows, head = specs
    x4, x2 = P(rows, head, None, None), P(rows, None)
    out = jax.shard_map(run, mesh=mesh, in_specs=(x4, x4, x4, x2, x2), out_specs=x4, check_vma=False)(
        qt, kt, vt, q_ids, kv_ids)
  return jnp.swapaxes(out, 1, 2)[:, :t]


def _scaled(q, scale):
  return (q.astype(jnp.float32) * scale).astype(q.dtype)


def crossbatch_attention_splash(q, k_local, k_mem, v, key_valid, visible, scale, gate=None,
                                interpret: bool | None = None, ring=None, partition: bool = True):
  """FoT crossbatch attention (docs/BEHAVIOUR.md section 2) through splash; same arguments and result as
  `attention.crossbatch_attention_dense`. interpret: None -> Pallas interpret mode unless compiling for TPU.
  partition: shard the kernel over the context mesh itself (False when already called per shard)."""
  length = key_valid.shape[1]
  keys_add, values_add, valid_add = additional_contexts(k_mem, v, key_valid, visible, ring)  # [B, W*L, ...]
  qs = _scaled(q, scale)
  if gate is None:
    keys = jnp.concatenate([k_local, keys_add], axis=1)
    values = jnp.concatenate([v, values_add], axis=1)
    ids = jnp.concatenate([key_valid, valid_add], axis=1)
    return _splash(qs, keys, values, ids, 0, length, interpret, partition)
  # Memorizing-Transformer gate: a local-only (causal) and a memory-only (full) softmax, mixed per head.
  out_local = _splash(qs, k_local, v, key_valid, 0, length, interpret, partition)
  if visible.shape[1] == 0:
    return out_local
  out_mem = _splash(qs, keys_add, values_add, valid_add, 0, 0, interpret, partition)
  return gated_mix(out_local, out_mem, jnp.any(valid_add, axis=1)[:, None, None], gate)


def memory_attention_splash(q, k_local, v_local, local_mask, mem_k, mem_v, mem_valid, scale,
                            topk: int | None = None, approx: bool = False, gate=None,
                            interpret: bool | None = None):
  """FoT inference attention of a memory layer (docs/BEHAVIOUR.md section 3) through splash; the arguments of
  `attention.memory_attention`, for the local masks that FoT inference builds.

  Contract on local_mask [B, T, S] (what fot_jax.model.inference builds): the first S - T keys (the local
  cache) are visible to every query iff valid, the last T keys (this window's own tokens) are causal and
  visible iff valid. Validity is then the last query row, local_mask[:, -1, :]; this function does not check
  the contract. Top-k retrieval selects keys per query and is not a mask: use the dense path for it.
  """
  if topk is not None:
    raise ValueError("attention_impl='splash' does not support top-k memory retrieval (a per-query selection, "
                     "not a mask); use attention_impl='dense' or 'chunked' with top-k")
  t, s = q.shape[1], k_local.shape[1]
  local_valid = local_mask[:, -1, :]  # [B, S]
  mem_k = mem_k.astype(q.dtype)
  mem_v = mem_v.astype(v_local.dtype)
  qs = _scaled(q, scale)
  if gate is None:
    keys = jnp.concatenate([k_local, mem_k], axis=1)
    values = jnp.concatenate([v_local, mem_v], axis=1)
    ids = jnp.concatenate([local_valid, mem_valid], axis=1)
    return _splash(qs, keys, values, ids, s - t, t, interpret)
  out_local = _splash(qs, k_local, v_local, local_valid, s - t, t, interpret)
  out_mem = _splash(qs, mem_k, mem_v, mem_valid, 0, 0, interpret)
  return gated_mix(out_local, out_mem, jnp.any(mem_valid, axis=1)[:, None, None], gate)

