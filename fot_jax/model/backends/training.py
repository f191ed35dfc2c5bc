"""Crossbatch attention of a memory layer in training, through the backend that `attention_impl` names."""

from __future__ import annotations

import jax

from fot_jax.model import exchange
from fot_jax.model.backends.registry import get


def crossbatch_attention(q, k_local, k_mem, v, key_valid, visible, scale, gate=None,
                         impl: str = "dense", chunk_size: int = 512):
  """A memory layer's crossbatch attention through the registered backend `impl` (attention_impl).

  Under a batch-sharded context mesh (jax.set_mesh) it runs per device on its own rows (shard_map) and the
  window's keys/values arrive from the neighbouring devices (fot_jax.model.exchange); without one, or with W = 0
  (nothing to exchange), it runs on the whole batch.
  """
  backend = get(impl)
  b, _, heads, _ = q.shape
  kv_heads = k_local.shape[2]

  def kernel(q, k_local, k_mem, v, key_valid, visible, *gate_arg, ring, partition=False):
    g = gate_arg[0] if gate_arg else None
    return backend.crossbatch(q, k_local, k_mem, v, key_valid, visible, scale, g, ring=ring, partition=partition,
                              chunk_size=chunk_size)

  arrays = (q, k_local, k_mem, v, key_valid, visible) + (() if gate is None else (gate,))
  if visible.shape[1] == 0:
    return kernel(*arrays, ring=None, partition=True)
  layouts = ("bthd",) * 4 + ("bt", "bt") + (() if gate is None else ("h",))
  with jax.named_scope("crossbatch"):
    return exchange.per_shard(kernel, b, heads, kv_heads, layouts, check_vma=backend.check_vma)(*arrays)
