"""fot_jax <-> Hugging Face LLaMA / LongLLaMA (docs/BEHAVIOUR.md section 4): parameter names, config.json, folder I/O.

Our tree keeps HF's names and rotate-half q/k layout, so the mapping is rename + transpose ([in, out] Flax
kernels vs [out, in] torch weights) + (un)stacking of the layer axis. No permutation here (see easylm.py).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable, Iterator

import numpy as np

from fot_jax.convert import safetensors_io
from fot_jax.convert.checks import ConversionError, check_tensors
from fot_jax.model.config import ModelConfig
from fot_jax.model.rope import RopeScaling

# The PyTorch FoT model exported with every checkpoint (Hugging Face's configuration + modeling file layout).
CONFIGURATION_FILE = "configuration_longllama_fot.py"
MODELING_FILE = "modeling_longllama_fot.py"
AUTO_MAP = {"AutoConfig": "configuration_longllama_fot.LongLlamaConfig",
            "AutoModelForCausalLM": "modeling_longllama_fot.LongLlamaForCausalLM"}
# A model_type transformers knows: AutoConfig/AutoTokenizer without trust_remote_code read the folder as LLaMA
# (no "run custom code?" prompt); with trust_remote_code, auto_map still selects the FoT classes.
MODEL_TYPE = "llama"

# Our per-layer name -> (HF name under model.layers.<i>., transposed?)
LAYER_MAP = {
    "q_proj": ("self_attn.q_proj.weight", True), "k_proj": ("self_attn.k_proj.weight", True),
    "v_proj": ("self_attn.v_proj.weight", True), "o_proj": ("self_attn.o_proj.weight", True),
    "gate_proj": ("mlp.gate_proj.weight", True), "up_proj": ("mlp.up_proj.weight", True),
    "down_proj": ("mlp.down_proj.weight", True),
    "input_layernorm": ("input_layernorm.weight", False),
    "post_attention_layernorm": ("post_attention_layernorm.weight", False),
}


def check_exportable(config: ModelConfig) -> None:
  """LongLLaMA has neither q/k normalisation nor the memory gate: refuse those ablations."""
  for field in ("qk_norm", "mem_gate"):
    if getattr(config, field):
      raise ValueError(f"ModelConfig.{field}=True is an ablation that LongLLaMA/HF LLaMA cannot represent; "
                       f"export supports only qk_norm=False and mem_gate=False")


# ---- config.json ---------------------------------------------------------------------------------------------
def hf_config(config: ModelConfig, dtype: str = "float32") -> dict[str, Any]:
  """config.json: standard LLaMA fields (so LlamaForCausalLM loads it) plus the LongLLaMA memory fields."""
  check_exportable(config)
  return {
      "architectures": ["LongLlamaForCausalLM"],
      "model_type": MODEL_TYPE,
      "auto_map": dict(AUTO_MAP),
      "vocab_size": config.vocab_size,
      "hidden_size": config.hidden_size,
      "intermediate_size": config.intermediate_size,
      "num_hidden_layers": config.num_layers,
      "num_attention_heads": config.num_heads,
      "num_key_value_heads": config.kv_heads,
      "head_dim": config.head_dim,
      "hidden_act": "silu",
      "rms_norm_eps": config.norm_eps,
      "rope_theta": float(config.rope_theta),
      **({"rope_scaling": config.rope_scaling.to_dict()} if config.rope_scaling else {}),
      "max_position_embeddings": config.max_position_embeddings,
      "initializer_range": config.initializer_range,
      "bos_token_id": config.bos_token_id,
      "eos_token_id": config.eos_token_id,
      "pad_token_id": config.pad_token_id,
      "tie_word_embeddings": False,
      "attention_bias": False,
      "mlp_bias": False,
      "use_cache": True,
      "torch_dtype": dtype,
      # LongLLaMA (FoT) fields.
      "mem_layers": list(config.mem_layers),
      "mem_positionals": config.mem_positionals == "first",
      "mem_dtype": config.mem_dtype,
      "last_context_length": config.last_context_length,
      "mem_top_k": None,
      "mem_attention_grouping": None,
      "torch_attention": False,
      "gradient_checkpoint_every_ith": 1,
  }


def generation_config(config: ModelConfig) -> dict[str, Any]:
  return {"bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id,
          "pad_token_id": config.pad_token_id}


def rope_scaling_from_hf(hf: dict[str, Any]) -> RopeScaling | None:
  """config.json's `rope_scaling` (transformers 4) or `rope_parameters` (5) as a RopeScaling; None for plain RoPE.

  As transformers does, yarn/llama3 without original_max_position_embeddings take max_position_embeddings.
  """
  source = "rope_scaling" if hf.get("rope_scaling") else "rope_parameters"
  if not isinstance(hf.get(source) or {}, dict):
    raise ValueError(f"config.json: {source}: expected an object, found {hf[source]!r}")
  entry = dict(hf.get(source) or {})
  entry.pop("rope_theta", None)
  legacy_type = entry.pop("type", None)
  entry.setdefault("rope_type", legacy_type)
  if entry.pop("partial_rotary_factor", 1.0) != 1.0:
    raise ValueError(f"config.json: {source}.partial_rotary_factor: expected 1.0 (fot_jax rotates the whole "
                     f"head), found {hf[source]['partial_rotary_factor']!r}")
  if entry["rope_type"] == "default" or entry == {"rope_type": None}:
    return None
  if entry["rope_type"] in ("yarn", "llama3") and entry.get("original_max_position_embeddings") is None:
    entry["original_max_position_embeddings"] = hf.get("original_max_position_embeddings",
                                                       hf.get("max_position_embeddings"))
  try:
    return RopeScaling.from_dict(entry)
  except (ValueError, TypeError) as e:
    raise ValueError(f"config.json: {str(e).replace('rope_scaling', source, 1)}") from None


def model_config_from_hf(hf: dict[str, Any], source: str = "config.json", **overrides) -> ModelConfig:
  """ModelConfig from a HF LLaMA or LongLLaMA config.json dict (read from `source`, named in errors); overrides
  (not None) win over the file.

  Plain LLaMA has no memory fields: mem_layers () and last_context_length = W (one window up to W tokens).
  """
  def need(key):
    if key not in hf:
      raise ValueError(f"{source}: missing field {key!r}")
    return hf[key]

  for key in ("attention_bias", "mlp_bias"):
    if hf.get(key):
      raise ValueError(f"{source}: {key}=true is not supported (fot_jax LLaMA has no biases)")
  rope_params = hf.get("rope_parameters") or {}
  if hf.get("hidden_act", "silu") != "silu":
    raise ValueError(f"{source}: hidden_act={hf['hidden_act']!r} is not supported (only silu)")
  heads = need("num_attention_heads")
  hidden = need("hidden_size")
  if hf.get("head_dim") not in (None, hidden // heads):
    raise ValueError(f"{source}: head_dim={hf['head_dim']} differs from hidden_size/num_attention_heads")
  kv = hf.get("num_key_value_heads")
  window = need("max_position_embeddings")
  fields = dict(
      vocab_size=need("vocab_size"), hidden_size=hidden, num_heads=heads,
      num_kv_heads=None if kv in (None, heads) else kv, num_layers=need("num_hidden_layers"),
      intermediate_size=need("intermediate_size"),
      rope_theta=float(rope_params.get("rope_theta", hf.get("rope_theta", 10000.0))),
      rope_scaling=rope_scaling_from_hf(hf),
      norm_eps=float(hf.get("rms_norm_eps", 1e-6)), max_position_embeddings=window,
      mem_layers=tuple(hf.get("mem_layers") or ()),
      mem_positionals="first" if hf.get("mem_positionals", True) else "none",
      last_context_length=int(hf.get("last_context_length") or window),
      mem_dtype=hf.get("mem_dtype") or "bfloat16",
      initializer_range=float(hf.get("initializer_range", 0.02)),
  )
  for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
    value = hf.get(key)
    if isinstance(value, list):
      value = value[0] if value else None
    if value is not None:
      fields[key] = int(value)
  fields.update({k: v for k, v in overrides.items() if v is not None})
  try:
    return ModelConfig(**fields)
  except (TypeError, ValueError) as e:
    raise ConversionError(f"{source}: {e}") from e


# ---- parameters ------------------------------------------------------------------------------------------------
def hf_tensor_specs(config: ModelConfig, dtype: np.dtype) -> list[tuple[str, tuple[int, ...], np.dtype]]:
  """(HF name, torch shape, dtype) of every exported tensor, in the order to_hf_tensors yields them."""
  from fot_jax.model.params import param_shapes
  shapes = param_shapes(config)
  specs = [("model.embed_tokens.weight", shapes["embed_tokens"], dtype)]
  for i in range(config.num_layers):
    for ours, (name, transpose) in LAYER_MAP.items():
      shape = shapes["layers"][ours][1:]
      specs.append((f"model.layers.{i}.{name}", tuple(reversed(shape)) if transpose else shape, dtype))
  specs.append(("model.norm.weight", shapes["norm"], dtype))
  specs.append(("lm_head.weight", tuple(reversed(shapes["lm_head"])), dtype))
  return specs


def to_hf_tensors(params: Any, config: ModelConfig, dtype: np.dtype) -> Iterator[np.ndarray]:
  """Yields the HF tensors one at a time (layer slices converted lazily), in hf_tensor_specs order."""
  cast = lambda a: np.ascontiguousarray(np.asarray(a).astype(np.float32).astype(dtype))
  yield cast(params["embed_tokens"])
  for i in range(config.num_layers):
    for ours, (_, transpose) in LAYER_MAP.items():
      a = np.asarray(params["layers"][ours][i])
      yield cast(a.T if transpose else a)
  yield cast(params["norm"])
  yield cast(np.asarray(params["lm_head"]).T)


def expected_hf_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
  """{HF tensor name: torch shape} of every tensor a LLaMA/LongLLaMA folder for `config` holds."""
  return {name: tuple(shape) for name, shape, _ in hf_tensor_specs(config, np.dtype(np.float32))}


def is_buffer(name: str) -> bool:
  """Non-parameter tensors some LLaMA exports carry (RoPE inverse frequencies), recomputed from the config."""
  return name.endswith("rotary_emb.inv_freq")


def check_hf_tensors(folder: str, shapes: dict[str, tuple[int, ...]], config: ModelConfig, tied: bool) -> None:
  """Every tensor of the folder against config.json: missing, extra (e.g. a layer beyond num_hidden_layers) and
  misshaped tensors are one error naming them. tied: lm_head may be absent (tie_word_embeddings)."""
  check_tensors(f"{folder}: weights", "config.json", shapes, expected_hf_shapes(config),
                optional=("lm_head.weight",) if tied else (), ignored=[n for n in shapes if is_buffer(n)])


def from_hf_tensors(get: Callable[[str], np.ndarray], has: Callable[[str], bool], config: ModelConfig,
                    dtype: np.dtype = np.dtype(np.float32)) -> dict[str, Any]:
  """Builds our (stacked, numpy) parameter tree from HF tensors fetched one at a time by name (names and shapes
  already checked by check_hf_tensors); a missing lm_head means tied embeddings."""
  from fot_jax.model.params import param_shapes
  shapes = param_shapes(config)
  layers = {}
  for ours, (name, transpose) in LAYER_MAP.items():
    out = np.empty(shapes["layers"][ours], dtype)
    for i in range(config.num_layers):
      a = np.asarray(get(f"model.layers.{i}.{name}"))
      out[i] = (a.T if transpose else a).astype(dtype)
    layers[ours] = out
  embed = np.asarray(get("model.embed_tokens.weight")).astype(dtype)
  lm_head = np.asarray(get("lm_head.weight")).T.astype(dtype) if has("lm_head.weight") else embed.T
  return {"embed_tokens": embed, "layers": layers, "norm": np.asarray(get("model.norm.weight")).astype(dtype),
          "lm_head": np.ascontiguousarray(lm_head)}


# ---- folders ---------------------------------------------------------------------------------------------------
def read_hf_config(folder: str) -> dict[str, Any]:
  path = os.path.join(folder, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{folder}: no config.json (not a Hugging Face model folder)")
  return safetensors_io.read_json(path)


def _torch_tensor_source(folder: str):
  """Fallback for pytorch_model*.bin folders (needs torch)."""
  import torch  # pylint: disable=import-outside-toplevel
  index = os.path.join(folder, "pytorch_model.bin.index.json")
  files = (sorted(set(safetensors_io.read_json(index)["weight_map"].values())) if os.path.exists(index)
           else ["pytorch_model.bin"])
  state = {}
  for fname in files:
    path = os.path.join(folder, fname)
    try:
      state.update(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    except (RuntimeError, OSError, EOFError) as e:
      raise ConversionError(f"{path}: cannot be read as a PyTorch checkpoint ({e})") from e
  get = lambda name: state[name].float().numpy()
  return get, state.__contains__, {name: tuple(t.shape) for name, t in state.items()}


def tensor_source(folder: str):
  """(get(name) -> ndarray, has(name) -> bool, {name: shape}) over a folder's safetensors (or
  pytorch_model.bin) weights."""
  try:
    st = safetensors_io.SafetensorsFolder(folder)
    return st.get, st.__contains__, {name: st.shape(name) for name in st.keys()}
  except FileNotFoundError:
    if any(f.startswith("pytorch_model") for f in os.listdir(folder)):
      return _torch_tensor_source(folder)
    raise FileNotFoundError(f"{folder}: no model.safetensors, sharded safetensors index or pytorch_model.bin")


def load_hf_folder(folder: str, dtype: str = "float32", **overrides) -> tuple[dict[str, Any], ModelConfig]:
  """(numpy params, ModelConfig) from a HF LLaMA/LongLLaMA folder whose tensors match its config.json exactly."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"{folder}: no such directory")
  hf = read_hf_config(folder)
  config = model_config_from_hf(hf, os.path.join(folder, "config.json"), param_dtype=dtype, **overrides)
  get, has, shapes = tensor_source(folder)
  check_hf_tensors(folder, shapes, config, tied=bool(hf.get("tie_word_embeddings", False)))
  return from_hf_tensors(get, has, config, safetensors_io.numpy_dtype(dtype)), config


def write_hf_folder(out_dir: str, params: Any, config: ModelConfig, dtype: str = "float32",
                    max_shard_size: int | str = "5GB", tokenizer_model: str | None = None) -> list[str]:
  """Writes an export folder: safetensors, config.json, generation_config.json, the configuration and modeling
  files, tokenizer."""
  check_exportable(config)
  np_dtype = safetensors_io.numpy_dtype(dtype)
  os.makedirs(out_dir, exist_ok=True)
  written = safetensors_io.write_sharded(out_dir, hf_tensor_specs(config, np_dtype),
                                         to_hf_tensors(params, config, np_dtype),
                                         safetensors_io.parse_size(max_shard_size))
  _write_json(os.path.join(out_dir, "config.json"), hf_config(config, dtype))
  _write_json(os.path.join(out_dir, "generation_config.json"), generation_config(config))
  for name in (CONFIGURATION_FILE, MODELING_FILE):
    shutil.copyfile(os.path.join(os.path.dirname(__file__), name), os.path.join(out_dir, name))
  written += ["config.json", "generation_config.json", CONFIGURATION_FILE, MODELING_FILE]
  if tokenizer_model:
    written += write_tokenizer(out_dir, tokenizer_model, config)
  return written


def write_tokenizer(out_dir: str, sp_model: str, config: ModelConfig) -> list[str]:
  """Copies a SentencePiece model as tokenizer.model with a minimal LlamaTokenizer tokenizer_config.json."""
  if not os.path.isfile(sp_model):
    raise FileNotFoundError(f"config data.sentencepiece_model: {sp_model} does not exist")
  shutil.copyfile(sp_model, os.path.join(out_dir, "tokenizer.model"))
  pieces = {}
  try:
    import sentencepiece as spm  # pylint: disable=import-outside-toplevel
    sp = spm.SentencePieceProcessor(model_file=sp_model)
    for key, token_id in (("bos_token", config.bos_token_id), ("eos_token", config.eos_token_id),
                          ("unk_token", sp.unk_id())):
      if 0 <= token_id < sp.get_piece_size():
        pieces[key] = sp.id_to_piece(token_id)
  except ImportError:
    pieces = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
  tok_config = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                "model_max_length": config.max_position_embeddings, "legacy": True, **pieces}
  _write_json(os.path.join(out_dir, "tokenizer_config.json"), tok_config)
  return ["tokenizer.model", "tokenizer_config.json"]


def _write_json(path: str, obj: Any) -> None:
  with open(path, "w") as f:
    json.dump(obj, f, indent=2)
    f.write("\n")
