"""LongLLaMA's configuration (LLaMA's plus the memory fields) and checks of the fields the FoT model reads; exported
next to modeling_longllama_fot.py (Hugging Face's configuration + modeling file layout for remote code).
"""

from __future__ import annotations

from transformers import LlamaConfig

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3")


class LongLlamaConfig(LlamaConfig):
  """LLaMA configuration plus the LongLLaMA memory fields."""

  # LLaMA's model type: the folder stays readable without remote code (AutoTokenizer, LlamaForCausalLM).
  model_type = "llama"

  def __init__(self, mem_layers=(), mem_positionals=True, mem_dtype="bfloat16", last_context_length=1024,
               mem_attention_grouping=None, torch_attention=False, gradient_checkpoint_every_ith=1, mem_top_k=None,
               **kwargs):
    self.mem_top_k = mem_top_k
    self.mem_layers = [int(i) for i in (mem_layers or ())]
    self.mem_positionals = bool(mem_positionals)
    self.mem_dtype = mem_dtype
    self.last_context_length = int(last_context_length)
    self.mem_attention_grouping = mem_attention_grouping
    self.torch_attention = torch_attention
    self.gradient_checkpoint_every_ith = gradient_checkpoint_every_ith
    super().__init__(**kwargs)


def config_rope_theta(config) -> float:
  """RoPE's base: rope_parameters.rope_theta (transformers 5), else rope_theta (4.x), else 10000."""
  params = getattr(config, "rope_parameters", None)
  if isinstance(params, dict) and "rope_theta" in params:
    return float(params["rope_theta"])
  return float(getattr(config, "rope_theta", 10000.0))


def config_rope_type(config) -> str:
  """The RoPE scaling type of rope_parameters or rope_scaling ('default': unscaled)."""
  params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
  return params.get("rope_type", params.get("type")) or "default"


def check_rope_type(config) -> None:
  """Refuses a RoPE scaling type this model does not implement, naming the supported ones."""
  rope_type = config_rope_type(config)
  if rope_type not in ROPE_TYPES:
    raise ValueError(f"rope_scaling.rope_type: {rope_type!r} is not supported by this FoT model (supported: "
                     f"{', '.join(ROPE_TYPES)})")


def check_mem_top_k(config) -> None:
  """Checked when the model is built: from_pretrained(..., mem_top_k=K) sets the field after the config's init."""
  top_k = getattr(config, "mem_top_k", None)
  if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
    raise ValueError(f"config mem_top_k: expected a positive integer or null (dense memory), found {top_k!r}")


__all__ = ["LongLlamaConfig"]
