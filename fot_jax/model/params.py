"""Parameter tree of the FoT LLaMA model: initialisation, logical axes and shapes.

Names mirror Hugging Face LLaMA (docs/BEHAVIOUR.md section 4) so conversion is rename + transpose. Decoder
layers are stacked along a leading `layers` axis: memory layers have no extra parameters, so every layer has the
same structure and runs of ordinary layers can be scanned.

  embed_tokens [V, D]; lm_head [D, V]; norm [D]
  layers: q_proj [N, D, H*hd], k_proj/v_proj [N, D, K*hd], o_proj [N, H*hd, D],
          gate_proj/up_proj [N, D, F], down_proj [N, F, D], input_layernorm/post_attention_layernorm [N, D],
          qk_temperature [N, H] (qk_norm ablation), mem_gate [N, H] (gate ablation)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from fot_jax.model.config import ModelConfig

Params = dict[str, Any]

LAYER_PARAMS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                "input_layernorm", "post_attention_layernorm")


def param_shapes(config: ModelConfig) -> dict[str, Any]:
  """Shape of every parameter, as a tree matching init_params."""
  D, F, V, N = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_layers
  H, K, hd = config.num_heads, config.kv_heads, config.head_dim
  layers = {
      "q_proj": (N, D, H * hd), "k_proj": (N, D, K * hd), "v_proj": (N, D, K * hd), "o_proj": (N, H * hd, D),
      "gate_proj": (N, D, F), "up_proj": (N, D, F), "down_proj": (N, F, D),
      "input_layernorm": (N, D), "post_attention_layernorm": (N, D),
  }
  if config.qk_norm:
    layers["qk_temperature"] = (N, H)
  if config.mem_gate:
    layers["mem_gate"] = (N, H)
  return {"embed_tokens": (V, D), "layers": layers, "norm": (D,), "lm_head": (D, V)}


def logical_axes(config: ModelConfig) -> dict[str, Any]:
  """Logical axis names of every parameter; train/sharding.py maps them to mesh axes with one rules table."""
  layers = {
      "q_proj": ("layers", "embed", "q_heads"), "k_proj": ("layers", "embed", "kv_heads"),
      "v_proj": ("layers", "embed", "kv_heads"), "o_proj": ("layers", "q_heads", "embed"),
      "gate_proj": ("layers", "embed", "mlp"), "up_proj": ("layers", "embed", "mlp"),
      "down_proj": ("layers", "mlp", "embed"),
      "input_layernorm": ("layers", "norm"), "post_attention_layernorm": ("layers", "norm"),
  }
  if config.qk_norm:
    layers["qk_temperature"] = ("layers", None)
  if config.mem_gate:
    layers["mem_gate"] = ("layers", None)
  return {"embed_tokens": ("vocab", "embed"), "layers": layers, "norm": ("norm",), "lm_head": ("embed", "vocab")}


def init_params(config: ModelConfig, rng: int | jax.Array = 0) -> Params:
  """Random initialisation (normal(0, initializer_range) kernels, unit norms), in config.param_dtype.

  rng: an int seed (uses the "rbg" generator, much cheaper to compile than threefry) or a JAX key.
  """
  if isinstance(rng, int):
    rng = jax.random.key(rng, impl="rbg")
  return _init_params_jit(config, rng)


@functools.partial(jax.jit, static_argnums=0)
def _init_params_jit(config: ModelConfig, rng: jax.Array) -> Params:
  shapes = param_shapes(config)
  dtype = jnp.dtype(config.param_dtype)
  flat, treedef = jax.tree_util.tree_flatten_with_path(shapes, is_leaf=lambda x: isinstance(x, tuple))
  keys = jax.random.split(rng, len(flat))
  leaves = []
  for (path, shape), key in zip(flat, keys):
    name = path[-1].key
    if name.endswith("layernorm") or name == "norm":
      leaves.append(jnp.ones(shape, dtype))
    elif name == "qk_temperature":
      leaves.append(jnp.full(shape, math.sqrt(config.head_dim), dtype))
    elif name == "mem_gate":
      leaves.append(jnp.zeros(shape, dtype))
    else:
      leaves.append((config.initializer_range * jax.random.normal(key, shape, jnp.float32)).astype(dtype))
  return jax.tree_util.tree_unflatten(treedef, leaves)


def abstract_params(config: ModelConfig) -> Params:
  """ShapeDtypeStructs of the parameters, without materialising any (for AOT compilation and restore)."""
  return jax.eval_shape(lambda: _init_params_jit(config, jax.random.key(0, impl="rbg")))


def layer_slice(layers: Params, start: int, stop: int | None = None) -> Params:
  """Parameters of layer `start` (stop None) or of layers [start, stop) (stacked)."""
  if stop is None:
    return jax.tree.map(lambda p: p[start], layers)
  return jax.tree.map(lambda p: p[start:stop], layers)


def num_params_of(params: Params) -> int:
  """Total number of parameters in a tree (arrays or ShapeDtypeStructs)."""
  return int(sum(math.prod(p.shape) for p in jax.tree.leaves(params)))
