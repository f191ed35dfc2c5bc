"""The built-in attention backends: dense (the reference), chunked (online softmax over key blocks) and splash
(the TPU Pallas kernel, imported only when used)."""

from __future__ import annotations

from fot_jax.model.attention import crossbatch_attention_dense
from fot_jax.model.backends.inference import default_memory_read, token_major
from fot_jax.model.backends.registry import AttentionBackend, register
from fot_jax.model.chunked_attention import crossbatch_attention_chunked


def _dense(q, k_local, k_mem, v, key_valid, visible, scale, gate, *, ring, partition, chunk_size):
  return crossbatch_attention_dense(q, k_local, k_mem, v, key_valid, visible, scale, gate, ring)


def _chunked(q, k_local, k_mem, v, key_valid, visible, scale, gate, *, ring, partition, chunk_size):
  return crossbatch_attention_chunked(q, k_local, k_mem, v, key_valid, visible, scale, chunk_size, ring, gate)


def _chunked_loops(seq_len: int, chunk_size: int, d: int) -> dict[int, str]:
  """The block scans: local L / chunk blocks, crossbatch d * L / chunk."""
  n_sub = -(-seq_len // chunk_size)
  return {n_sub: "local attention blocks", **({d * n_sub: "crossbatch attention blocks"} if d else {})}


def _splash(q, k_local, k_mem, v, key_valid, visible, scale, gate, *, ring, partition, chunk_size):
  from fot_jax.model.splash_attention import crossbatch_attention_splash
  return crossbatch_attention_splash(q, k_local, k_mem, v, key_valid, visible, scale, gate, ring=ring,
                                     partition=partition)


def _splash_memory_read(q, k_local, v_local, local_mask, state, layer, scale, gate, options):
  """Dense memory through the splash kernel; top-k selects per query (not a mask), so it takes the default read."""
  if options.topk is not None:
    return default_memory_read(q, k_local, v_local, local_mask, state, layer, scale, gate, options)
  from fot_jax.model.splash_attention import memory_attention_splash
  return memory_attention_splash(q, k_local, v_local, local_mask, token_major(state.mem_k, layer),
                                 token_major(state.mem_v, layer), state.mem_valid, scale, None, False, gate)


register(AttentionBackend("dense", _dense))
register(AttentionBackend("chunked", _chunked, block_loops=_chunked_loops))
register(AttentionBackend("splash", _splash, memory_read=_splash_memory_read, check_vma=False))
