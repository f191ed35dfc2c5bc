"""FoTLlama: the LLaMA decoder with FoT memory layers as a Flax NNX module (the public model API).

Parameters are nnx.Params named and laid out as the plain tree of fot_jax.model.params (HF names, layers stacked
along a leading axis), each with its `logical_axes` as metadata, so `nnx.state(model).to_pure_dict()` and
`model.params()` are the checkpoint tree. The computation is the pure functions of fot_jax.model.transformer;
runs of ordinary layers are one lax.scan over their slice of the stacked parameters.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from fot_jax.model import transformer
from fot_jax.model.config import ModelConfig
from fot_jax.model.modules.attention import MemoryAttention
from fot_jax.model.params import Params, init_params, logical_axes, param_shapes


class DecoderLayers(nnx.Module):
  """The stacked decoder layers: one nnx.Param per HF name ([num_layers, ...]) and the memory layers' attention."""

  def __init__(self, config: ModelConfig, layers: Params, axes: dict[str, Any]):
    self.config = config
    self.names = tuple(layers)
    for name in self.names:
      setattr(self, name, nnx.Param(layers[name], logical_axes=axes[name]))
    self.memory_attention = MemoryAttention(config)

  def __getitem__(self, name: str) -> nnx.Param:
    """The stacked Param of one HF name (layers["q_proj"])."""
    if name not in self.names:
      raise KeyError(f"layers: no parameter {name!r}; expected one of {list(self.names)}")
    return getattr(self, name)

  def tree(self) -> Params:
    """The plain stacked layer tree."""
    return {name: getattr(self, name).get_value() for name in self.names}

  def __call__(self, x: jax.Array, input_mask: jax.Array | None = None, visible: jax.Array | None = None, *,
               scan_layers: bool = True, remat: str = "none",
               activation_sharding: jax.sharding.Sharding | None = None) -> jax.Array:
    """x [B, L, D] through every layer (transformer.run_layers)."""
    return transformer.run_layers(self.tree(), x, self.config, input_mask, visible, scan_layers=scan_layers,
                                  remat=remat, activation_sharding=activation_sharding,
                                  mem_attention=self.memory_attention)


class FoTLlama(nnx.Module):
  """LLaMA decoder with FoT memory layers: embed_tokens, layers (stacked), norm, lm_head (HF names)."""

  def __init__(self, config: ModelConfig, *, seed: int | jax.Array = 0, params: Params | None = None):
    self.config = config
    params = init_params(config, seed) if params is None else params
    check_tree(config, params)
    axes = logical_axes(config)
    wrap = lambda name: nnx.Param(params[name], logical_axes=axes[name])
    self.embed_tokens = wrap("embed_tokens")
    self.layers = DecoderLayers(config, params["layers"], axes["layers"])
    self.norm = wrap("norm")
    self.lm_head = wrap("lm_head")

  @classmethod
  def from_params(cls, config: ModelConfig, params: Params) -> "FoTLlama":
    """Wraps an existing parameter tree (a checkpoint, a conversion, or traced values inside jit); no copy."""
    return cls(config, params=params)

  @classmethod
  def abstract(cls, config: ModelConfig) -> "FoTLlama":
    """The module with ShapeDtypeStruct values (nothing materialised): shapes and logical axes for sharding."""
    return nnx.eval_shape(lambda: cls(config))

  def params(self) -> Params:
    """The plain parameter tree (checkpoint layout) used by the pure functions."""
    return {**self._outer(), "layers": self.layers.tree()}

  def _outer(self) -> Params:
    """The parameters outside the layer stack."""
    return {name: getattr(self, name).get_value() for name in ("embed_tokens", "norm", "lm_head")}

  def logical_axes(self) -> Params:
    """The tree of every Param's logical_axes metadata, shaped like params()."""
    return _axes_of(nnx.state(self, nnx.Param))

  def __call__(self, tokens: jax.Array, *, input_mask: jax.Array | None = None, visible: jax.Array | None = None,
               scan_layers: bool = True, remat: str = "none",
               activation_sharding: jax.sharding.Sharding | None = None, return_hidden: bool = False) -> Any:
    """Training-mode logits [B, L, V] float32 (arguments as transformer.forward); (logits, hidden) with
    return_hidden."""
    params = self._outer()
    x = transformer.embed(params, tokens, self.config)
    x = self.layers(x, input_mask, visible, scan_layers=scan_layers, remat=remat,
                    activation_sharding=activation_sharding)
    logits = transformer.unembed(params, x, self.config)
    return (logits, x) if return_hidden else logits

  def memory(self, batch: int = 1, **kwargs):
    """An InferenceMemory over this model (kwargs as inference.MemoryInference: window, options, ...)."""
    from fot_jax.model.modules.memory import InferenceMemory
    return InferenceMemory(self, batch, **kwargs)


def _axes_of(state: nnx.State) -> Params:
  """{path: logical_axes} of a Param state, nested like the parameter tree."""
  out: dict = {}
  for path, variable in nnx.to_flat_state(state):
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = variable.get_metadata()["logical_axes"]
  return out


def check_tree(config: ModelConfig, params: Params) -> None:
  """ValueError naming the first parameter whose name or shape differs from what config implies."""
  want = _shapes_by_path(param_shapes(config), lambda x: isinstance(x, tuple), lambda shape: tuple(shape))
  have = _shapes_by_path(params, None, lambda leaf: tuple(leaf.shape))
  missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
  if missing or extra:
    raise ValueError(f"params: expected the parameter names of the config, missing {missing}, unexpected {extra}")
  for name, shape in want.items():
    if have[name] != shape:
      raise ValueError(f"params {name}: expected shape {shape} for the config, found {have[name]}")


def _shapes_by_path(tree, is_leaf, shape_of) -> dict[str, tuple[int, ...]]:
  flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
  return {"/".join(str(getattr(k, "key", k)) for k in path): shape_of(leaf) for path, leaf in flat}
