"""Import of the authors' EasyLM/FoT JAX checkpoints (flax msgpack) into fot_jax parameters.

Two file formats exist: EasyLM's streaming checkpoint (a sequence of msgpack pairs (key path, flax.to_bytes
of one tensor), read entry by entry so a 7B file never sits in RAM twice) and a plain flax msgpack state dict.
EasyLM's RoPE rotates interleaved pairs, ours (HF) rotates halves: q and k kernels are permuted (docs/BEHAVIOUR.md
section 4): for head h, c in {0,1}, i < hd/2, our column h*hd + c*hd/2 + i is EasyLM column h*hd + 2i + c.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import msgpack
import numpy as np
from flax import serialization

from fot_jax.convert.checks import check_tensors
from fot_jax.model.config import ModelConfig

# EasyLM path (after the 'params' prefixes, inside transformer/h/<i>/) -> (our name, is a q/k kernel)
LAYER_NAMES = {
    ("attention", "wq", "kernel"): "q_proj", ("attention", "wk", "kernel"): "k_proj",
    ("attention", "wv", "kernel"): "v_proj", ("attention", "wo", "kernel"): "o_proj",
    ("feed_forward", "w1", "kernel"): "gate_proj", ("feed_forward", "w2", "kernel"): "down_proj",
    ("feed_forward", "w3", "kernel"): "up_proj",
    ("attention_norm", "kernel"): "input_layernorm", ("ffn_norm", "kernel"): "post_attention_layernorm",
}
TOP_NAMES = {("transformer", "wte", "embedding"): "embed_tokens", ("transformer", "ln_f", "kernel"): "norm",
             ("lm_head", "kernel"): "lm_head"}


def interleaved_to_halves(kernel: np.ndarray, head_dim: int) -> np.ndarray:
  """EasyLM q/k kernel [D, heads*hd] (interleaved RoPE pairs) -> HF rotate-half column order."""
  d, width = kernel.shape
  heads = width // head_dim
  return kernel.reshape(d, heads, head_dim // 2, 2).transpose(0, 1, 3, 2).reshape(d, width)


def halves_to_interleaved(kernel: np.ndarray, head_dim: int) -> np.ndarray:
  """Inverse of interleaved_to_halves (used to build EasyLM-format test checkpoints)."""
  d, width = kernel.shape
  heads = width // head_dim
  return kernel.reshape(d, heads, 2, head_dim // 2).transpose(0, 1, 3, 2).reshape(d, width)


def _strip(path: tuple[str, ...]) -> tuple[str, ...] | None:
  """Drops leading 'params' levels; None for entries outside the parameters (optimizer state, step)."""
  path = tuple(str(p) for p in path)
  if not path:
    return None
  if path[0] != "params" and path[0] not in ("transformer", "lm_head"):
    return None
  while path and path[0] == "params":
    path = path[1:]
  return path


def _is_streaming(path: str) -> bool:
  """True when the first msgpack object is a (key path, bytes) pair: EasyLM's streaming format."""
  with open(path, "rb") as f:
    unpacker = msgpack.Unpacker(f, read_size=1 << 20, max_buffer_size=0, raw=False)
    first = next(unpacker, None)
  if first is None:
    raise ValueError(f"EasyLM checkpoint {path}: empty file")
  return isinstance(first, (list, tuple)) and len(first) == 2 and isinstance(first[1], bytes)


def iter_entries(path: str) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
  """Yields (key path, array) from an EasyLM streaming checkpoint or a flax msgpack state dict."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"EasyLM checkpoint {path}: no such file")
  if _is_streaming(path):
    with open(path, "rb") as f:
      unpacker = msgpack.Unpacker(f, read_size=1 << 24, max_buffer_size=0, raw=False)
      for key, value in unpacker:
        yield tuple(key), np.asarray(serialization.msgpack_restore(value))
    return
  # A whole flax msgpack state dict: restored in memory (fine for small checkpoints).
  with open(path, "rb") as f:
    tree = serialization.msgpack_restore(f.read())
  yield from _flatten(tree, ())


def _flatten(tree, prefix):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _flatten(v, prefix + (str(k),))
  else:
    yield prefix, np.asarray(tree)


def _shapes(path: str) -> dict[tuple[str, ...], tuple[int, ...]]:
  """One pass over the file for the parameter shapes (to infer dimensions before allocating)."""
  return {p: tuple(a.shape) for p, a in ((_strip(k), a) for k, a in iter_entries(path)) if p is not None}


def infer_config(shapes: dict[tuple[str, ...], tuple[int, ...]], num_heads: int,
                 expected: dict[str, Any] | None = None, **fields) -> ModelConfig:
  """ModelConfig from the tensor shapes plus num_heads (not recoverable from shapes) and other fields.

  expected: dimensions a preset promises (vocab_size, hidden_size, ...); a mismatch is an error naming them.
  """
  def shape(key):
    if key not in shapes:
      raise ValueError(f"EasyLM checkpoint: parameter {'/'.join(key)} missing")
    return shapes[key]
  vocab, hidden = shape(("transformer", "wte", "embedding"))
  layers = sorted({int(k[2]) for k in shapes if len(k) > 2 and k[:2] == ("transformer", "h")})
  if not layers or layers != list(range(len(layers))):
    raise ValueError(f"EasyLM checkpoint: layer indices under transformer/h are {layers}, expected 0..N-1")
  if not num_heads or hidden % num_heads:
    raise ValueError(f"--num_heads: expected a positive divisor of hidden_size={hidden}, found {num_heads}")
  head_dim = hidden // num_heads
  kv_width = shape(("transformer", "h", "0", "attention", "wk", "kernel"))[1]
  kv_heads = kv_width // head_dim
  intermediate = shape(("transformer", "h", "0", "feed_forward", "w1", "kernel"))[1]
  dims = dict(vocab_size=vocab, hidden_size=hidden, num_heads=num_heads,
              num_kv_heads=None if kv_heads == num_heads else kv_heads, num_layers=len(layers),
              intermediate_size=intermediate)
  for key, value in (expected or {}).items():
    if dims[key] != value:
      raise ValueError(f"EasyLM checkpoint: {key}={dims[key]} in the file, but the preset expects {key}={value}")
  return ModelConfig(**dims, **fields)


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
  """{EasyLM parameter path ('transformer/h/0/attention/wq/kernel'): shape} for `config`."""
  from fot_jax.model.params import param_shapes
  shapes = param_shapes(config)
  out = {"/".join(key): tuple(shapes[name]) for key, name in TOP_NAMES.items()}
  for i in range(config.num_layers):
    for key, name in LAYER_NAMES.items():
      out["/".join(("transformer", "h", str(i)) + key)] = tuple(shapes["layers"][name][1:])
  return out


def load_easylm(path: str, num_heads: int, dtype: str = "float32", expected: dict[str, Any] | None = None,
                **fields) -> tuple[dict[str, Any], ModelConfig]:
  """(numpy params, ModelConfig) from an EasyLM checkpoint; fields are other ModelConfig fields (mem_layers,
  rope_theta, norm_eps, max_position_embeddings, last_context_length, ...). Every parameter in the file is
  checked against the inferred config (missing, unexpected, misshaped) before any is converted."""
  from fot_jax.convert.safetensors_io import numpy_dtype
  from fot_jax.model.params import param_shapes
  np_dtype = numpy_dtype(dtype)
  found = _shapes(path)
  config = infer_config(found, num_heads, expected, param_dtype=dtype, **fields)
  check_tensors(f"EasyLM checkpoint {path}", "the inferred config", {"/".join(k): v for k, v in found.items()},
                expected_shapes(config))
  shapes = param_shapes(config)
  params: dict[str, Any] = {"layers": {k: np.empty(v, np_dtype) for k, v in shapes["layers"].items()}}
  for key, array in iter_entries(path):
    key = _strip(key)
    if key is None:
      continue
    if key in TOP_NAMES:
      params[TOP_NAMES[key]] = array.astype(np_dtype)
    else:
      i, name = int(key[2]), LAYER_NAMES[key[3:]]
      if name in ("q_proj", "k_proj"):
        array = interleaved_to_halves(np.asarray(array), config.head_dim)
      params["layers"][name][i] = array.astype(np_dtype)
  return params, config


def save_easylm_streaming(path: str, params: Any, config: ModelConfig, prefix: tuple[str, ...] = ("params",)):
  """Writes our params as an EasyLM streaming checkpoint (inverse permutation); for tests and round trips."""
  with open(path, "wb") as f:
    packer = msgpack.Packer()

    def put(key, array):
      f.write(packer.pack((list(prefix + key), serialization.to_bytes(np.asarray(array)))))

    put(("transformer", "wte", "embedding"), params["embed_tokens"])
    for i in range(config.num_layers):
      for easy, ours in LAYER_NAMES.items():
        a = np.asarray(params["layers"][ours][i])
        if ours in ("q_proj", "k_proj"):
          a = halves_to_interleaved(a, config.head_dim)
        put(("transformer", "h", str(i)) + easy, a)
    put(("transformer", "ln_f", "kernel"), params["norm"])
    put(("lm_head", "kernel"), params["lm_head"])

