"""A memory layer's attention over [local | memory] at inference, through the backend that `attention_impl` names."""

from __future__ import annotations

import jax.numpy as jnp

from fot_jax.model import attention, memory_attention
from fot_jax.model.backends.registry import get


def default_memory_read(q, k_local, v_local, local_mask, state, layer: int, scale, gate, options):
  """Dense or top-k memory read, streamed over memory blocks (or the materialising reference when
  options.streamed is False); layer indexes the memory layers."""
  if options.streamed:
    return memory_attention.memory_attention(
        q, k_local, v_local, local_mask, state.mem_k, state.mem_v, state.mem_valid, state.mem_fill, scale,
        topk=options.topk, approx=options.approx, block=options.block, gate=gate, mesh=options.mesh,
        axis=options.mem_axis, layer=layer, index=state.index, nprobe=options.nprobe)
  mem_k, mem_v = token_major(state.mem_k, layer), token_major(state.mem_v, layer)
  return attention.memory_attention(q, k_local, v_local, local_mask, mem_k, mem_v, state.mem_valid, scale,
                                    options.topk, options.approx, gate)


def token_major(memory, layer: int):
  """Layer `layer` of head-major memory [Nm, B, K, C, hd] as [B, C, K, hd], the layout of keys elsewhere."""
  return jnp.swapaxes(memory[layer], 1, 2)


def memory_read(impl: str, q, k_local, v_local, local_mask, state, layer: int, scale, gate, options):
  """Memory layer `layer`'s inference attention through backend `impl` (its own read, or the default one)."""
  read = get(impl).memory_read or default_memory_read
  return read(q, k_local, v_local, local_mask, state, layer, scale, gate, options)
