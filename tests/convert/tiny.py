"""Tiny random models shared by the conversion tests (hidden 64, vocab 256, a few layers)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax
import numpy as np

from fot_jax.model.config import ModelConfig
from fot_jax.model.params import init_params

VOCAB = 256


def tiny_config(**kw) -> ModelConfig:
  fields = dict(vocab_size=VOCAB, hidden_size=64, num_heads=4, num_kv_heads=2, num_layers=3, intermediate_size=96,
                mem_layers=(1, 2), max_position_embeddings=16, last_context_length=8, mem_dtype="float32",
                initializer_range=0.08)
  fields.update(kw)
  return ModelConfig(**fields)


def tiny_params(config: ModelConfig, seed: int = 0):
  """Random params with non-trivial norm weights (so a transposed/misplaced norm would show)."""
  params = init_params(config, jax.random.key(seed))
  rng = np.random.RandomState(seed)
  params["layers"]["input_layernorm"] = 1 + 0.1 * rng.randn(*params["layers"]["input_layernorm"].shape)
  params["layers"]["post_attention_layernorm"] = 1 + 0.1 * rng.randn(
      *params["layers"]["post_attention_layernorm"].shape)
  params["norm"] = 1 + 0.1 * rng.randn(*params["norm"].shape)
  return jax.tree.map(lambda a: jax.numpy.asarray(a, np.float32), params)


def tokens(batch: int, length: int, seed: int = 0) -> np.ndarray:
  return np.random.RandomState(seed).randint(0, VOCAB, (batch, length)).astype(np.int32)


def torch_logits(model, toks, **kw) -> np.ndarray:
  import torch
  with torch.no_grad():
    return model(torch.tensor(np.asarray(toks), dtype=torch.long), **kw).logits.float().numpy()
