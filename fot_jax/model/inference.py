"""FoT inference with memory (docs/BEHAVIOUR.md section 3): windowing, local cache, memory, top-k retrieval,
generation.

`window_step` is the jitted pure function (one chunk of tokens through the stack, appended to the local cache);
`MemoryInference` is the host-side driver that decides windows, cache flushes and memory growth.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from fot_jax.model import attention
from fot_jax.model.backends import inference as backends
from fot_jax.model.config import ModelConfig
from fot_jax.model.layers import rms_norm
from fot_jax.model.memory import InferenceState, flush_cache, grow_memory, init_state
from fot_jax.model.memory_index import MemoryIndexer, empty_memory_index
from fot_jax.model.step_jit import memory_step_jit
from fot_jax.model.memory_options import MemoryOptions
from fot_jax.model.params import Params, layer_slice
from fot_jax.model.rope import rope_keys, rope_queries
from fot_jax.model.sampling import Sampling, next_tokens
from fot_jax.model.transformer import embed, finish_layer, memory_qk, project_qkv, unembed


def _infer_layer(lp, x, layer: int, state: InferenceState, new_valid, cache_empty: bool, config: ModelConfig,
                 options: MemoryOptions):
  """One layer on the new tokens x [B, T, D]; returns (x, unrotated k, v) for the cache."""
  b, t, _ = x.shape
  h = rms_norm(x, lp["input_layernorm"], config.norm_eps)
  q, k, v = project_qkv(lp, h, config)
  is_mem = config.is_mem_layer(layer)
  scale = 1.0 / math.sqrt(config.head_dim)
  if is_mem:
    q, k, scale = memory_qk(lp, q, k, config)
  new_mask = jnp.tril(jnp.ones((t, t), bool))[None] & new_valid[:, None, :]  # [B, T, T]
  if cache_empty:
    local_k, local_v, local_mask = k, v, new_mask
    key_pos = jnp.arange(t)
  else:
    window = state.cache_k.shape[2]
    local_k = jnp.concatenate([state.cache_k[layer], k], axis=1)  # [B, W + T, K, hd]
    local_v = jnp.concatenate([state.cache_v[layer], v], axis=1)
    in_cache = (jnp.arange(window) < state.cache_len)[None, :] & state.cache_valid  # [B, W]
    cache_mask = jnp.broadcast_to(in_cache[:, None, :], (b, t, window))
    local_mask = jnp.concatenate([cache_mask, new_mask], axis=-1)
    key_pos = jnp.concatenate([jnp.arange(window), state.cache_len + jnp.arange(t)])
  query_pos = state.cache_len + jnp.arange(t)
  rotate = not is_mem or config.mem_positionals == "first"
  # `dynamic` RoPE sees this pass's local length; it stays within max_position_embeddings unless LCL exceeds it.
  seq_len = state.cache_len + t
  q_r = rope_queries(q, query_pos, config, seq_len) if rotate else q
  local_k_r = rope_keys(local_k, key_pos, config, seq_len) if rotate else local_k
  if is_mem:
    m = config.mem_layers.index(layer)
    gate = lp.get("mem_gate") if config.mem_gate else None
    out = backends.memory_read(config.attention_impl, q_r, local_k_r, local_v, local_mask, state, m, scale, gate,
                               options)
  else:
    out = attention.attend(q_r, local_k_r, local_v, local_mask, scale)
  return finish_layer(lp, x, out, config), k, v


@memory_step_jit(static_argnames=("config", "options", "cache_empty"), donate_argnames=("state",))
def window_step(params: Params, state: InferenceState, tokens: jax.Array, valid: jax.Array, *,
                config: ModelConfig, options: MemoryOptions, cache_empty: bool):
  """Runs tokens [B, T] after the local cache, appends them to it. Returns (logits [B, T, V], new state).

  The caller guarantees cache_len + T <= W (the cache buffer size).
  """
  x = embed(params, tokens, config)
  new_k, new_v = [], []
  for layer in range(config.num_layers):
    x, k, v = _infer_layer(layer_slice(params["layers"], layer), x, layer, state, valid, cache_empty, config,
                           options)
    new_k.append(k)
    new_v.append(v)
  at = (0, 0, state.cache_len, 0, 0)
  cache_k = jax.lax.dynamic_update_slice(state.cache_k, jnp.stack(new_k).astype(state.cache_k.dtype), at)
  cache_v = jax.lax.dynamic_update_slice(state.cache_v, jnp.stack(new_v).astype(state.cache_v.dtype), at)
  cache_valid = jax.lax.dynamic_update_slice(state.cache_valid, valid, (0, state.cache_len))
  state = dataclasses.replace(state, cache_k=cache_k, cache_v=cache_v, cache_valid=cache_valid,
                              cache_len=state.cache_len + tokens.shape[1])
  return unembed(params, x, config), state


@memory_step_jit(static_argnames=("config", "options"), donate_argnames=("state",))
def feed_step(params: Params, state: InferenceState, tokens: jax.Array, valid: jax.Array, *,
              config: ModelConfig, options: MemoryOptions) -> InferenceState:
  """window_step for a window whose outputs nobody reads (it only goes to memory): runs the layers up to the
  top memory layer, which only projects its keys and values; its memory read and the layers above it are
  skipped, because no stored key or value depends on them. Memory afterwards is exactly window_step's.
  The cache must be empty; cache slots of the skipped layers stay empty (a flush drops them anyway)."""
  top = max(config.mem_layers)
  x = embed(params, tokens, config)
  new_k, new_v = [], []
  for layer in range(top):
    x, k, v = _infer_layer(layer_slice(params["layers"], layer), x, layer, state, valid, True, config, options)
    new_k.append(k)
    new_v.append(v)
  lp = layer_slice(params["layers"], top)
  q, k, v = project_qkv(lp, rms_norm(x, lp["input_layernorm"], config.norm_eps), config)
  _, k, _ = memory_qk(lp, q, k, config)
  new_k.append(k)
  new_v.append(v)
  skipped = config.num_layers - top - 1
  zeros = jnp.zeros((skipped, *k.shape), state.cache_k.dtype)
  cache_k = jnp.concatenate([jnp.stack(new_k).astype(state.cache_k.dtype), zeros])
  cache_v = jnp.concatenate([jnp.stack(new_v).astype(state.cache_v.dtype), zeros])
  at = (0, 0, 0, 0, 0)
  return dataclasses.replace(state, cache_k=jax.lax.dynamic_update_slice(state.cache_k, cache_k, at),
                             cache_v=jax.lax.dynamic_update_slice(state.cache_v, cache_v, at),
                             cache_valid=jax.lax.dynamic_update_slice(state.cache_valid, valid, (0, 0)),
                             cache_len=jnp.asarray(tokens.shape[1], jnp.int32))


_flush = jax.jit(flush_cache, static_argnames=("config", "count", "layout"), donate_argnames=("state",))
_grow = jax.jit(grow_memory, static_argnames=("capacity", "layout"))


def memory_slots(needed: int, current: int, block: int) -> int:
  """Slots per memory shard after growth: at least double, a multiple of the streaming block once above it."""
  slots = max(needed, 2 * current)
  return -(-slots // block) * block if slots > block else slots


class MemoryInference:
  """Host-side driver of FoT inference for a batch of equally long sequences.

  window (W) and last_context_length (LCL) default to the config's max_position_embeddings and
  last_context_length. Memory persists across `encode` calls (multi-doc) until `reset()` (single-doc).
  """

  def __init__(self, params: Params, config: ModelConfig, batch: int = 1, *, window: int | None = None,
               last_context_length: int | None = None, mem_dtype: str | None = None,
               options: MemoryOptions = MemoryOptions(), initial_capacity: int | None = None):
    self.params = params
    self.config = config
    self.batch = batch
    self.window = window or config.max_position_embeddings
    self.last_context_length = last_context_length or config.last_context_length
    if self.window <= 0 or self.last_context_length <= 0:
      raise ValueError(f"window and last_context_length must be positive, found W={self.window}, "
                       f"LCL={self.last_context_length}")
    # The final window holds min(N, LCL) tokens even when LCL > W, so the cache buffer must hold both.
    self.cache_capacity = max(self.window, self.last_context_length)
    self.mem_dtype = mem_dtype or config.mem_dtype
    self.options = options
    self.layout = options.layout
    if options.mesh is not None:  # every device runs the stack on its replica; memory stays sharded
      params = jax.device_put(params, NamedSharding(options.mesh, P()))
      self.params = params
    shards = self.layout.shards
    initial = -(-(initial_capacity or self.cache_capacity) // shards)
    self._initial_slots = memory_slots(initial, 0, options.block)
    self.indexer = None if options.index is None else MemoryIndexer(self.layout, options.balance)
    self.reset()

  # ---- state bookkeeping (host ints mirror the traced lengths) ------------------------------------------------
  def reset(self) -> None:
    """Empties cache and memory (single-doc evaluation calls this between documents)."""
    self.state = init_state(self.config, self.batch, self.cache_capacity, self._initial_slots * self.layout.shards,
                            self.mem_dtype, self.layout)
    if self.indexer is not None:
      c = self.config
      index = empty_memory_index(len(c.mem_layers), self.batch, c.kv_heads, c.head_dim, self.options.nlist,
                                 self.mem_dtype, self.layout)
      self.indexer.trained_fill = 0
      self.state = dataclasses.replace(self.state, index=index)
    self.cache_len = 0
    self.mem_len = 0
    self.mem_fill = 0  # slots in use on each memory shard

  def forget(self) -> None:
    """Empties memory, keeps the local cache: with a forget() after every flush, memory layers read only their
    local window (memory off, the layers otherwise unchanged)."""
    self.state = dataclasses.replace(self.state, mem_valid=jnp.zeros_like(self.state.mem_valid),
                                     mem_len=jnp.zeros_like(self.state.mem_len),
                                     mem_fill=jnp.zeros_like(self.state.mem_fill))
    if self.indexer is not None:
      self.state = dataclasses.replace(self.state, index=self.indexer.forget(self.state))
    self.mem_len = 0
    self.mem_fill = 0

  @property
  def memory_size(self) -> int:
    return self.mem_len

  def flush(self) -> None:
    """Evicts the whole local cache: into memory in memory layers, dropped in the others."""
    if self.cache_len == 0:
      return
    shards = self.layout.shards
    per = -(-self.cache_len // shards)
    slots = self.state.capacity // shards
    if self.mem_fill + per > slots:
      slots = memory_slots(self.mem_fill + per, slots, self.options.block)
      self.state = _grow(self.state, capacity=slots * shards, layout=self.layout)
    self.state = _flush(self.state, config=self.config, count=self.cache_len, layout=self.layout)
    if self.indexer is not None and self.config.mem_layers:
      self.state = dataclasses.replace(self.state, index=self.indexer.after_flush(self.state, self.mem_fill, per))
    self.mem_len += self.cache_len
    self.mem_fill += per
    self.cache_len = 0

  def _run(self, tokens: np.ndarray, valid: np.ndarray) -> jax.Array:
    if self.cache_len + tokens.shape[1] > self.cache_capacity:
      raise ValueError(f"internal: {tokens.shape[1]} tokens do not fit a cache holding {self.cache_len} of "
                       f"{self.cache_capacity}")
    logits, self.state = window_step(self.params, self.state, jnp.asarray(tokens, jnp.int32),
                                     jnp.asarray(valid, bool), config=self.config, options=self.options,
                                     cache_empty=self.cache_len == 0)
    self.cache_len += tokens.shape[1]
    return logits

  def _check(self, tokens, valid):
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[0] != self.batch:
      raise ValueError(f"tokens: expected shape [batch={self.batch}, length], found {tokens.shape}")
    valid = np.ones(tokens.shape, bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != tokens.shape:
      raise ValueError(f"valid: expected shape {tokens.shape}, found {valid.shape}")
    return tokens, valid

  # ---- public API -------------------------------------------------------------------------------------------
  def windows(self, length: int) -> list[tuple[int, int]]:
    """Windowing (docs/BEHAVIOUR.md section 3) of an input of `length` tokens: [(start, stop), ...]; all but
    the last flush."""
    n_mem = max(length - self.last_context_length, 0)
    spans = [(s, min(s + self.window, n_mem)) for s in range(0, n_mem, self.window)]
    if length > n_mem:
      spans.append((n_mem, length))
    return spans

  def encode(self, tokens, valid=None) -> jax.Array:
    """Processes a whole input [B, N] as LongLLaMA does; returns logits [B, N, V] float32.

    Any tokens left in the local cache by an earlier call are evicted first (multi-doc memory).
    """
    tokens, valid = self._check(tokens, valid)
    self.flush()
    spans = self.windows(tokens.shape[1])
    outputs = []
    for i, (start, stop) in enumerate(spans):
      outputs.append(self._run(tokens[:, start:stop], valid[:, start:stop]))
      if i < len(spans) - 1:
        self.flush()
    return jnp.concatenate(outputs, axis=1)

  def feed(self, tokens, valid=None) -> None:
    """Runs a whole input [B, N] into memory without producing logits: every window (of W tokens) is flushed.

    Exactly the memory that encode() of the same tokens followed by a flush leaves when N is a multiple of W,
    at a fraction of the cost (feed_step skips the top memory layer's read and everything above it). For
    scoring only the end of a long input: feed the front, then encode the rest."""
    tokens, valid = self._check(tokens, valid)
    self.flush()
    if not self.config.mem_layers:
      return
    for start in range(0, tokens.shape[1], self.window):
      stop = min(start + self.window, tokens.shape[1])
      self.state = feed_step(self.params, self.state, jnp.asarray(tokens[:, start:stop], jnp.int32),
                             jnp.asarray(valid[:, start:stop], bool), config=self.config, options=self.options)
      self.cache_len = stop - start
      self.flush()

  def step(self, tokens, valid=None) -> jax.Array:
    """Appends a few tokens [B, T] to the local cache (generation); evicts the whole cache first if it is full."""
    tokens, valid = self._check(tokens, valid)
    if tokens.shape[1] > self.window:
      raise ValueError(f"step: at most W={self.window} tokens at once, found {tokens.shape[1]}")
    if self.cache_len + tokens.shape[1] > self.window:
      self.flush()
    return self._run(tokens, valid)

  def generate(self, prompt, max_new_tokens, eos_token_id: int | None = None, *, valid=None,
               sampling: Sampling = Sampling(), stop_tokens=(), pad_token_id: int | None = None) -> np.ndarray:
    """Generation with memory: encode the prompt, then one token at a time. Returns [B, new tokens].

    prompt: [B, N] tokens (valid marks real ones, e.g. left padding) or a list of B token sequences of different
    lengths (left-padded here). max_new_tokens: one int or one per row. A row stops after its first stop token
    (eos_token_id or any of stop_tokens) or its own max_new_tokens; its later positions hold pad_token_id
    (default: the config's). Greedy unless `sampling` says otherwise.
    """
    steps = list(self.generate_iter(prompt, max_new_tokens, eos_token_id, valid=valid, sampling=sampling,
                                    stop_tokens=stop_tokens, pad_token_id=pad_token_id))
    return np.stack(steps, axis=1) if steps else np.zeros((self.batch, 0), np.int32)

  def generate_iter(self, prompt, max_new_tokens, eos_token_id: int | None = None, *, valid=None,
                    sampling: Sampling = Sampling(), stop_tokens=(),
                    pad_token_id: int | None = None) -> Iterator[np.ndarray]:
    """`generate` one step at a time: yields the next tokens [B] (pad_token_id for rows that have stopped)."""
    tokens, valid = self._prompt(prompt, valid)
    limits = np.asarray(max_new_tokens, np.int64)
    if limits.ndim > 1 or limits.shape not in ((), (self.batch,)) or (limits < 0).any():
      raise ValueError(f"max_new_tokens: expected a non-negative int or one per row ({self.batch}), "
                       f"found {max_new_tokens!r}")
    limits = np.broadcast_to(limits, (self.batch,))
    stops = np.asarray(list(stop_tokens) + ([] if eos_token_id is None else [eos_token_id]), np.int32)
    pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
    total = int(limits.max()) if limits.size else 0
    if total == 0:
      return
    logits = self.encode(tokens, valid)
    finished = limits <= 0
    for i in range(total):
      chosen = np.asarray(next_tokens(logits[:, -1], i, sampling))
      chosen = np.where(finished, pad, chosen).astype(np.int32)
      yield chosen
      finished = finished | np.isin(chosen, stops) | (i + 1 >= limits)
      if finished.all() or i == total - 1:
        return
      logits = self.step(chosen[:, None])

  def _prompt(self, prompt, valid):
    """[B, N] tokens + validity, or a list of B sequences left-padded into one."""
    if isinstance(prompt, (list, tuple)) and prompt and np.ndim(prompt[0]) == 1 and valid is None:
      rows = [np.asarray(r, np.int32) for r in prompt]
      if len(rows) != self.batch:
        raise ValueError(f"prompt: expected {self.batch} sequences (the batch), found {len(rows)}")
      if min(len(r) for r in rows) == 0:
        raise ValueError("prompt: every sequence needs at least one token")
      width = max(len(r) for r in rows)
      tokens = np.full((self.batch, width), self.config.pad_token_id, np.int32)
      valid = np.zeros((self.batch, width), bool)
      for i, r in enumerate(rows):
        tokens[i, width - len(r):] = r
        valid[i, width - len(r):] = True
      return tokens, valid
    return self._check(prompt, valid)


def segments_reference(params: Params, config: ModelConfig, tokens, boundaries, mem_dtype: str = "float32",
                       options: MemoryOptions = MemoryOptions()) -> jax.Array:
  """Reference without a local cache: each segment [b_i, b_{i+1}) is processed on its own, then joins memory.

  With boundaries equal to the cache-flush points of generation, the last logit of the last segment is what
  incremental generation must produce (used to test the cached path).
  """
  tokens = np.asarray(tokens)
  longest = max(b - a for a, b in zip(boundaries[:-1], boundaries[1:]))
  runner = MemoryInference(params, config, tokens.shape[0], window=longest, last_context_length=longest,
                           mem_dtype=mem_dtype, options=options)
  outputs = []
  for a, b in zip(boundaries[:-1], boundaries[1:]):
    runner.flush()
    outputs.append(runner._run(tokens[:, a:b], np.ones((tokens.shape[0], b - a), bool)))
  return jnp.concatenate(outputs, axis=1)
