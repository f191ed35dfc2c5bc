"""Inference-time state: the local KV cache of every layer and the FoT memory of the memory layers.

Buffers have static shapes so one compilation serves many steps; lengths are traced scalars, and validity masks
say which slots hold tokens. Keys are stored unrotated (spec section 3): local keys are re-rotated each step at
positions relative to the oldest cached token, memory keys stay at position 0.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fot_jax.model.config import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class InferenceState:
  cache_k: jax.Array  # [N, B, W, K, hd] unrotated keys of the local cache, every layer
  cache_v: jax.Array  # [N, B, W, K, hd]
  cache_valid: jax.Array  # [B, W] bool
  cache_len: jax.Array  # [] int32, slots [0, cache_len) are in use
  mem_k: jax.Array  # [Nm, B, C, K, hd] memory keys (position 0), memory layers only, in mem_dtype
  mem_v: jax.Array  # [Nm, B, C, K, hd]
  mem_valid: jax.Array  # [B, C] bool
  mem_len: jax.Array  # [] int32

  @property
  def capacity(self) -> int:
    return self.mem_k.shape[2]


def init_state(config: ModelConfig, batch: int, window: int, capacity: int, mem_dtype: str) -> InferenceState:
  """An empty cache of `window` slots and an empty memory of `capacity` slots."""
  dtype = jnp.dtype(config.dtype)
  kv = (config.num_layers, batch, window, config.kv_heads, config.head_dim)
  mem = (len(config.mem_layers), batch, capacity, config.kv_heads, config.head_dim)
  return InferenceState(
      cache_k=jnp.zeros(kv, dtype), cache_v=jnp.zeros(kv, dtype), cache_valid=jnp.zeros((batch, window), bool),
      cache_len=jnp.zeros((), jnp.int32),
      mem_k=jnp.zeros(mem, jnp.dtype(mem_dtype)), mem_v=jnp.zeros(mem, jnp.dtype(mem_dtype)),
      mem_valid=jnp.zeros((batch, capacity), bool), mem_len=jnp.zeros((), jnp.int32))


def grow_memory(state: InferenceState, capacity: int) -> InferenceState:
  """Pads the memory buffers to `capacity` slots (new slots invalid). Host-side; recompiles users once."""
  extra = capacity - state.capacity
  if extra <= 0:
    return state
  pad = lambda a: jnp.pad(a, [(0, 0), (0, 0), (0, extra), (0, 0), (0, 0)])
  return dataclasses.replace(state, mem_k=pad(state.mem_k), mem_v=pad(state.mem_v),
                             mem_valid=jnp.pad(state.mem_valid, [(0, 0), (0, extra)]))


def flush_cache(state: InferenceState, config: ModelConfig, count: int) -> InferenceState:
  """Moves the first `count` cached tokens of each memory layer into memory and empties every layer's cache.

  Non-memory layers drop their cache (spec section 3: the whole cache is evicted at once).
  """
  mem_k, mem_v, mem_valid = state.mem_k, state.mem_v, state.mem_valid
  if count and config.mem_layers:
    idx = jnp.asarray(config.mem_layers)
    new_k = state.cache_k[idx, :, :count].astype(mem_k.dtype)  # [Nm, B, count, K, hd]
    new_v = state.cache_v[idx, :, :count].astype(mem_v.dtype)
    at = (0, 0, state.mem_len, 0, 0)
    mem_k = jax.lax.dynamic_update_slice(mem_k, new_k, at)
    mem_v = jax.lax.dynamic_update_slice(mem_v, new_v, at)
    mem_valid = jax.lax.dynamic_update_slice(mem_valid, state.cache_valid[:, :count], (0, state.mem_len))
  return dataclasses.replace(
      state, mem_k=mem_k, mem_v=mem_v, mem_valid=mem_valid, mem_len=state.mem_len + count,
      cache_valid=jnp.zeros_like(state.cache_valid), cache_len=jnp.zeros_like(state.cache_len))
