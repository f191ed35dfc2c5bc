"""Inference-time state: the local KV cache of every layer and the FoT memory of the memory layers.

Buffers have static shapes so one compilation serves many steps; lengths are traced scalars, and validity masks
say which slots hold tokens. Keys are stored unrotated (FoT memory keys sit at position 0): local keys are re-rotated each step at
positions relative to the oldest cached token, memory keys stay at position 0. Memory can be sharded over a mesh
axis along its slots (MemoryLayout); the local cache is replicated.

Memory is stored head-major, [Nm, B, K, C, hd]: a block of one kv head's slots is contiguous, so the streamed
read multiplies it in place (a token-major [.., C, K, hd] block has to be transposed first: about 2x slower for a
512-query window on CPU, bench/bench_memory_layout.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from fot_jax.model.config import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class InferenceState:
  cache_k: jax.Array  # [N, B, W, K, hd] unrotated keys of the local cache, every layer
  cache_v: jax.Array  # [N, B, W, K, hd]
  cache_valid: jax.Array  # [B, W] bool
  cache_len: jax.Array  # [] int32, slots [0, cache_len) are in use
  mem_k: jax.Array  # [Nm, B, K, C, hd] memory keys (position 0), memory layers only, in mem_dtype
  mem_v: jax.Array  # [Nm, B, K, C, hd]
  mem_valid: jax.Array  # [B, C] bool
  mem_len: jax.Array  # [] int32, tokens in memory
  mem_fill: jax.Array  # [] int32, slots in use on each memory shard (= mem_len with one shard)
  index: Any = None  # ivf.IVFIndex of the memory keys [Nm, B, K, L, ...] (MemoryOptions.index="ivf"), else None

  @property
  def capacity(self) -> int:
    return self.mem_k.shape[MEM_SLOT_AXIS]


MEM_SLOT_AXIS = 3  # the slot axis C of mem_k / mem_v [Nm, B, K, C, hd]


@dataclasses.dataclass(frozen=True)
class MemoryLayout:
  """Where memory lives: one device (mesh None) or sharded over mesh axis `axis` along the slot dimension C.

  Sharded, each device holds C / n slots and every flush writes ceil(count / n) tokens to each device at the
  same local offset (mem_fill), so devices fill evenly and a write never crosses devices.
  """
  mesh: Mesh | None = None
  axis: str | None = None

  @property
  def shards(self) -> int:
    return 1 if self.mesh is None else self.mesh.shape[self.axis]

  def spec(self, rank: int, slot_dim: int) -> P:
    """Sharded along slot_dim; written without trailing Nones, as jit writes its outputs' specs (equal specs
    keep the compilation cache hit)."""
    del rank
    return P(*([None] * slot_dim + [self.axis]))

  def sharding(self, rank: int, slot_dim: int):
    return None if self.mesh is None else NamedSharding(self.mesh, self.spec(rank, slot_dim))

  def replicated(self):
    return None if self.mesh is None else NamedSharding(self.mesh, P())


def init_state(config: ModelConfig, batch: int, window: int, capacity: int, mem_dtype: str,
               layout: MemoryLayout = MemoryLayout()) -> InferenceState:
  """An empty cache of `window` slots and an empty memory of `capacity` slots (in all, over every shard)."""
  dtype = jnp.dtype(config.dtype)
  kv = (config.num_layers, batch, window, config.kv_heads, config.head_dim)
  mem = (len(config.mem_layers), batch, config.kv_heads, capacity, config.head_dim)

  def build():
    return InferenceState(
        cache_k=jnp.zeros(kv, dtype), cache_v=jnp.zeros(kv, dtype), cache_valid=jnp.zeros((batch, window), bool),
        cache_len=jnp.zeros((), jnp.int32),
        mem_k=jnp.zeros(mem, jnp.dtype(mem_dtype)), mem_v=jnp.zeros(mem, jnp.dtype(mem_dtype)),
        mem_valid=jnp.zeros((batch, capacity), bool), mem_len=jnp.zeros((), jnp.int32),
        mem_fill=jnp.zeros((), jnp.int32))

  if layout.mesh is None:
    return build()
  return jax.jit(build, out_shardings=state_shardings(layout))()  # allocated in place, shard by shard


def state_shardings(layout: MemoryLayout) -> InferenceState:
  """NamedShardings of an InferenceState: memory sharded along its slots, everything else replicated."""
  rep = layout.replicated()
  mem = layout.sharding(5, MEM_SLOT_AXIS)
  return InferenceState(cache_k=rep, cache_v=rep, cache_valid=rep, cache_len=rep, mem_k=mem, mem_v=mem,
                        mem_valid=layout.sharding(2, 1), mem_len=rep, mem_fill=rep)


def _per_shard(layout: MemoryLayout, fn, in_specs, out_specs):
  """fn itself without a mesh, else fn on each device's part (shard_map)."""
  if layout.mesh is None:
    return fn
  return jax.shard_map(fn, mesh=layout.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def grow_memory(state: InferenceState, capacity: int, layout: MemoryLayout = MemoryLayout()) -> InferenceState:
  """Pads the memory buffers to `capacity` slots in all (new slots invalid, appended on every shard)."""
  extra = (capacity - state.capacity) // layout.shards
  if extra <= 0:
    return state
  pad5 = lambda a: jnp.pad(a, [(0, 0), (0, 0), (0, 0), (0, extra), (0, 0)])
  s5, s2 = layout.spec(5, MEM_SLOT_AXIS), layout.spec(2, 1)
  pad = _per_shard(layout, lambda k, v, valid: (pad5(k), pad5(v), jnp.pad(valid, [(0, 0), (0, extra)])),
                   (s5, s5, s2), (s5, s5, s2))
  mem_k, mem_v, mem_valid = pad(state.mem_k, state.mem_v, state.mem_valid)
  return dataclasses.replace(state, mem_k=mem_k, mem_v=mem_v, mem_valid=mem_valid)


def flush_cache(state: InferenceState, config: ModelConfig, count: int,
                layout: MemoryLayout = MemoryLayout()) -> InferenceState:
  """Moves the first `count` cached tokens of each memory layer into memory and empties every layer's cache.

  Non-memory layers drop their cache (the whole cache is evicted at once, as LongLLaMA does). Sharded, the chunk is
  padded to n * ceil(count / n) tokens (padding invalid) and device j writes part j at its mem_fill.
  """
  mem_k, mem_v, mem_valid = state.mem_k, state.mem_v, state.mem_valid
  per = -(-count // layout.shards) if count else 0
  if count and config.mem_layers:
    idx = jnp.asarray(config.mem_layers)
    pad = per * layout.shards - count
    head_major = lambda a: jnp.moveaxis(a[idx, :, :count], 3, 2).astype(mem_k.dtype)  # [Nm, B, K, count, hd]
    new_k, new_v = head_major(state.cache_k), head_major(state.cache_v)
    new_valid = state.cache_valid[:, :count]
    if pad:
      new_k = jnp.pad(new_k, [(0, 0), (0, 0), (0, 0), (0, pad), (0, 0)])
      new_v = jnp.pad(new_v, [(0, 0), (0, 0), (0, 0), (0, pad), (0, 0)])
      new_valid = jnp.pad(new_valid, [(0, 0), (0, pad)])

    def write(mk, mv, mvalid, nk, nv, nvalid, fill):
      at = (0, 0, 0, fill, 0)
      return (jax.lax.dynamic_update_slice(mk, nk, at), jax.lax.dynamic_update_slice(mv, nv, at),
              jax.lax.dynamic_update_slice(mvalid, nvalid, (0, fill)))

    s5, s2 = layout.spec(5, MEM_SLOT_AXIS), layout.spec(2, 1)
    write = _per_shard(layout, write, (s5, s5, s2, s5, s5, s2, P()), (s5, s5, s2))
    mem_k, mem_v, mem_valid = write(mem_k, mem_v, mem_valid, new_k, new_v, new_valid, state.mem_fill)
  return dataclasses.replace(
      state, mem_k=mem_k, mem_v=mem_v, mem_valid=mem_valid, mem_len=state.mem_len + count,
      mem_fill=state.mem_fill + per,
      cache_valid=jnp.zeros_like(state.cache_valid), cache_len=jnp.zeros_like(state.cache_len))
