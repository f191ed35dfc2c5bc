"""MemoryAttention: one memory layer's attention with crossbatch negatives, through the configured backend."""

from __future__ import annotations

import jax
from flax import nnx

from fot_jax.model import backends
from fot_jax.model.config import ModelConfig
from fot_jax.model.params import Params
from fot_jax.model.transformer import memory_layer_attention


class MemoryAttention(nnx.Module):
  """q/k normalisation, positions and crossbatch attention of a memory layer (transformer.memory_layer_attention).

  It owns no parameters: the projections stay in the stacked layer tree (HF names), so checkpoints are unchanged.
  The backend (`config.attention_impl`) is resolved when the module is built, so an unknown name fails early.
  """

  def __init__(self, config: ModelConfig):
    self.config = config
    self.backend = backends.get(config.attention_impl).name

  def __call__(self, lp: Params, q: jax.Array, k: jax.Array, v: jax.Array, key_valid: jax.Array,
               visible: jax.Array) -> jax.Array:
    """q [B, L, H, hd], k/v [B, L, K, hd] projected (not rotated); key_valid [B, L]; visible [B, W]."""
    return memory_layer_attention(lp, q, k, v, key_valid, visible, self.config)
