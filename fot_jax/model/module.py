"""Flax NNX face of the model: a Module holding the parameter tree as nnx.Params with logical-axis metadata.

The computation lives in pure functions (transformer.forward, inference.MemoryInference); this wrapper lets
NNX users split/merge the model (`graphdef, state = nnx.split(model)`) and read each Param's `logical_axes`.
"""

from __future__ import annotations

import jax
from flax import nnx

from fot_jax.model.config import ModelConfig
from fot_jax.model.params import Params, init_params, logical_axes
from fot_jax.model.transformer import forward


class FoTLlama(nnx.Module):
  """LLaMA decoder with FoT memory layers; attributes mirror HF names (layers are stacked)."""

  def __init__(self, config: ModelConfig, *, seed: int = 0, params: Params | None = None):
    self.config = config
    params = init_params(config, seed) if params is None else params
    axes = logical_axes(config)
    wrap = lambda value, names: nnx.Param(value, logical_axes=names)
    self.embed_tokens = wrap(params["embed_tokens"], axes["embed_tokens"])
    self.layers = nnx.Dict({name: wrap(params["layers"][name], axes["layers"][name]) for name in params["layers"]})
    self.norm = wrap(params["norm"], axes["norm"])
    self.lm_head = wrap(params["lm_head"], axes["lm_head"])

  def params(self) -> Params:
    """The plain parameter tree used by the pure functions."""
    return {"embed_tokens": self.embed_tokens[...], "norm": self.norm[...], "lm_head": self.lm_head[...],
            "layers": {name: p[...] for name, p in self.layers.items()}}

  def __call__(self, tokens: jax.Array, **kwargs) -> jax.Array:
    """Training-mode logits [B, L, V]; kwargs as transformer.forward (input_mask, visible, ...)."""
    return forward(self.params(), tokens, self.config, **kwargs)
