"""PyTorch LLaMA with Focused-Transformer memory layers (LongLLaMA inference), shipped inside fot_jax exports.

Written for fot_jax from its behaviour contract (fot_jax's docs/BEHAVIOUR.md section 3); it depends only on torch,
transformers and configuration_longllama_fot.py (exported next to it), so
`AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)` runs it offline.
Parameter names are Hugging Face LLaMA's, so the same folder also loads as a plain `LlamaForCausalLM`.

Inference with memory:
- An input of N tokens without a cache: tokens [0, N - LCL) in windows of W from the front, then the final
  window of min(N, LCL) tokens. Every window but the last joins the memory after its own attention.
- Memory layers attend in one softmax to [local | memory]; memory keys are stored unrotated (position 0);
  masked scores are -1e6. Other layers see only their local window and cache.
- With a cache (generation), when cache + new tokens exceed W the whole cache is evicted first: into memory in
  memory layers, dropped in the others. Local RoPE positions count from the oldest cached token; cached keys
  are kept unrotated and rotated again at every step.
- RoPE scaling (config rope_scaling / rope_parameters: linear, dynamic, yarn, llama3) uses transformers'
  frequencies; yarn's attention factor m goes on queries as m**2 so memory keys remain at position 0.
  `dynamic` takes the local length (cache + new tokens), which stays within W: it is unscaled here.
- config.mem_top_k (None: dense): each query and head keeps only its k highest-scoring memory keys, which join
  the local keys in one softmax.
- attention_mask marks padding (left padding in batches): padded tokens are never attended to, neither in the
  local cache nor after eviction into memory. RoPE positions count cache slots, padding included.

Generation goes through transformers' GenerationMixin (greedy, sampling, logits processors, stopping criteria,
pipelines); the FoT cache is created by the first forward. Beam search and assisted generation are refused: the
memory cache cannot be reordered or rolled back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.generation.configuration_utils import GenerationMode
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_longllama_fot import (LongLlamaConfig, check_mem_top_k, check_rope_type, config_rope_theta,
                                          config_rope_type)

MASK_VALUE = -1e6
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# transformers 5 names the cache output field `cache`, 4.x `past_key_values`.
_CACHE_FIELD = ("cache" if "cache" in {f.name for f in dataclasses.fields(CausalLMOutputWithPast)}
                else "past_key_values")


def _rope_frequencies(config, device, seq_len: int) -> tuple[torch.Tensor, float]:
  """(inverse frequencies [hd/2] float32, attention factor) by transformers' own RoPE definitions, so scaled RoPE
  (linear, dynamic, yarn, llama3) agrees with LlamaForCausalLM; seq_len (local tokens) matters for dynamic."""
  rope_type = config_rope_type(config)
  if rope_type == "default":
    hd = config.hidden_size // config.num_attention_heads
    theta = config_rope_theta(config)
    return 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=device) / hd)), 1.0
  from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # pylint: disable=import-outside-toplevel
  inv_freq, attention_factor = ROPE_INIT_FUNCTIONS[rope_type](config, device, seq_len=seq_len)
  return inv_freq.to(torch.float32), float(attention_factor)


def _rope(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
  """Rotates x [B, heads, T, hd] at positions [T] (rotate-half layout) and multiplies it by scale; float32 math.

  Queries take scale = attention factor squared and keys none: scores equal LlamaForCausalLM's, and memory keys
  (unrotated) stay keys at position 0.
  """
  hd = x.shape[-1]
  angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
  angles = torch.cat([angles, angles], dim=-1)  # [T, hd]
  cos, sin = angles.cos(), angles.sin()
  x32 = x.float()
  half = hd // 2
  rotated = torch.cat([-x32[..., half:], x32[..., :half]], dim=-1)
  out = x32 * cos + rotated * sin
  return (out * scale if scale != 1.0 else out).to(x.dtype)


class FoTRMSNorm(nn.Module):
  def __init__(self, size: int, eps: float):
    super().__init__()
    self.weight = nn.Parameter(torch.ones(size))
    self.eps = eps

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
    return (y * self.weight.float()).to(x.dtype)


class FoTMLP(nn.Module):
  def __init__(self, config):
    super().__init__()
    self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
    self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
    self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

  def forward(self, x):
    return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


@dataclass
class _LayerCache:
  """Local cache of one layer (keys unrotated) and, in memory layers, its memory (keys at position 0)."""
  k: torch.Tensor | None = None  # [B, K, S, hd]
  v: torch.Tensor | None = None
  mem_k: torch.Tensor | None = None  # [B, K, M, hd] in mem dtype
  mem_v: torch.Tensor | None = None


class FoTCache:
  """Local cache of every layer plus the memory of the memory layers; the `past_key_values` of this model."""

  def __init__(self, num_layers: int, mem_layers, mem_dtype: torch.dtype):
    self.layers = [_LayerCache() for _ in range(num_layers)]
    self.mem_layers = set(mem_layers)
    self.mem_dtype = mem_dtype
    self.valid: torch.Tensor | None = None  # [B, S] bool, validity of the cached tokens
    self.mem_valid: torch.Tensor | None = None  # [B, M]

  @property
  def length(self) -> int:
    return 0 if self.valid is None else self.valid.shape[1]

  @property
  def memory_size(self) -> int:
    return 0 if self.mem_valid is None else self.mem_valid.shape[1]

  def get_seq_length(self, layer_idx: int = 0) -> int:
    return self.length

  def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
    c = self.layers[layer]
    c.k = k if c.k is None else torch.cat([c.k, k], dim=2)
    c.v = v if c.v is None else torch.cat([c.v, v], dim=2)

  def append_valid(self, valid: torch.Tensor) -> None:
    self.valid = valid if self.valid is None else torch.cat([self.valid, valid], dim=1)

  def flush(self) -> None:
    """Evicts the whole local cache: into memory in memory layers, dropped in the others."""
    if self.length == 0:
      return
    for i, c in enumerate(self.layers):
      if i in self.mem_layers:
        k, v = c.k.to(self.mem_dtype), c.v.to(self.mem_dtype)
        c.mem_k = k if c.mem_k is None else torch.cat([c.mem_k, k], dim=2)
        c.mem_v = v if c.mem_v is None else torch.cat([c.mem_v, v], dim=2)
      c.k = c.v = None
    self.mem_valid = self.valid if self.mem_valid is None else torch.cat([self.mem_valid, self.valid], dim=1)
    self.valid = None


class FoTAttention(nn.Module):
  """LLaMA self-attention; in a memory layer the softmax also covers the memory (docs/BEHAVIOUR.md section 3)."""

  def __init__(self, config, layer_idx: int):
    super().__init__()
    self.num_heads = config.num_attention_heads
    self.kv_heads = config.num_key_value_heads or config.num_attention_heads
    self.head_dim = config.hidden_size // config.num_attention_heads
    check_rope_type(config)
    check_mem_top_k(config)
    self.config = config
    self._rope = None  # ((device, dynamic length), inverse frequencies, attention factor) of the last forward
    mem_layers = getattr(config, "mem_layers", None) or ()
    self.is_mem = layer_idx in mem_layers
    self.rotate = not self.is_mem or bool(getattr(config, "mem_positionals", True))
    self.layer_idx = layer_idx
    d = config.hidden_size
    self.q_proj = nn.Linear(d, self.num_heads * self.head_dim, bias=False)
    self.k_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
    self.v_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
    self.o_proj = nn.Linear(self.num_heads * self.head_dim, d, bias=False)

  def _expand(self, x: torch.Tensor) -> torch.Tensor:
    """[B, K, S, hd] -> [B, H, S, hd]: query head h reads kv head h // (H / K)."""
    return x.repeat_interleave(self.num_heads // self.kv_heads, dim=1)

  def forward(self, h: torch.Tensor, valid: torch.Tensor, cache: FoTCache) -> torch.Tensor:
    b, t, _ = h.shape
    q = self.q_proj(h).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, T, hd]
    k = self.k_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)  # [B, K, T, hd]
    v = self.v_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
    lc = cache.layers[self.layer_idx]
    start = cache.length
    local_k = k if lc.k is None else torch.cat([lc.k, k], dim=2)  # [B, K, S, hd], unrotated
    local_v = v if lc.v is None else torch.cat([lc.v, v], dim=2)
    local_valid = valid if cache.valid is None else torch.cat([cache.valid, valid], dim=1)  # [B, S]
    s = local_k.shape[2]
    key_pos = torch.arange(s, device=h.device)
    query_pos = start + torch.arange(t, device=h.device)
    mask = (key_pos[None, :] <= query_pos[:, None])[None] & local_valid[:, None, :]  # [B, T, S]
    if self.rotate:
      # dynamic RoPE: the length is the local one (cache + new), unscaled up to max_position_embeddings.
      length = max(s, self.config.max_position_embeddings) if config_rope_type(self.config) == "dynamic" else None
      if self._rope is None or self._rope[0] != (h.device, length):
        self._rope = ((h.device, length), *_rope_frequencies(self.config, h.device, length))
      _, inv_freq, attention_factor = self._rope
      q = _rope(q, query_pos, inv_freq, attention_factor ** 2)
      local_k = _rope(local_k, key_pos, inv_freq)
    keys, values = self._expand(local_k), self._expand(local_v)
    if self.is_mem and lc.mem_k is not None:
      keys = torch.cat([keys, self._expand(lc.mem_k.to(q.dtype))], dim=2)
      values = torch.cat([values, self._expand(lc.mem_v.to(v.dtype))], dim=2)
      mem_mask = cache.mem_valid[:, None, :].expand(b, t, cache.mem_valid.shape[1])
      mask = torch.cat([mask, mem_mask], dim=-1)
    scores = torch.matmul(q.float(), keys.float().transpose(-1, -2)) / math.sqrt(self.head_dim)  # [B, H, T, S+M]
    scores = torch.where(mask[:, None], scores, torch.full_like(scores, MASK_VALUE))
    if self.is_mem and lc.mem_k is not None and getattr(self.config, "mem_top_k", None):
      scores = _keep_top_k_memory(scores, s, self.config.mem_top_k)
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs.to(values.dtype).float(), values.float()).to(h.dtype)  # [B, H, T, hd]
    cache.append(self.layer_idx, k, v)
    return self.o_proj(out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))


def _keep_top_k_memory(scores: torch.Tensor, local: int, top_k: int) -> torch.Tensor:
  """scores [B, H, T, local + M] with the memory part reduced to each query's top_k memory keys (the others get
  -inf and leave the softmax); masked memory keys keep their MASK_VALUE score when selected, as in fot_jax."""
  mem = scores[..., local:]
  k = min(top_k, mem.shape[-1])
  if k == mem.shape[-1]:
    return scores
  keep = torch.zeros_like(mem, dtype=torch.bool).scatter_(-1, mem.topk(k, dim=-1).indices, True)
  return torch.cat([scores[..., :local], mem.masked_fill(~keep, float("-inf"))], dim=-1)


class FoTDecoderLayer(nn.Module):
  def __init__(self, config, layer_idx: int):
    super().__init__()
    self.self_attn = FoTAttention(config, layer_idx)
    self.mlp = FoTMLP(config)
    self.input_layernorm = FoTRMSNorm(config.hidden_size, config.rms_norm_eps)
    self.post_attention_layernorm = FoTRMSNorm(config.hidden_size, config.rms_norm_eps)

  def forward(self, x, valid, cache):
    x = x + self.self_attn(self.input_layernorm(x), valid, cache)
    return x + self.mlp(self.post_attention_layernorm(x))


class LongLlamaPreTrainedModel(PreTrainedModel):
  config_class = LongLlamaConfig
  base_model_prefix = "model"
  _no_split_modules = ["FoTDecoderLayer"]

  def _init_weights(self, module):
    std = self.config.initializer_range
    if isinstance(module, (nn.Linear, nn.Embedding)):
      nn.init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, FoTRMSNorm):
      nn.init.ones_(module.weight)


class LongLlamaModel(LongLlamaPreTrainedModel):
  """Embedding, decoder layers, final norm; `forward_chunk` runs tokens after the cache and appends them to it."""

  def __init__(self, config):
    super().__init__(config)
    self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
    self.layers = nn.ModuleList([FoTDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
    self.norm = FoTRMSNorm(config.hidden_size, config.rms_norm_eps)
    self.post_init()

  def get_input_embeddings(self):
    return self.embed_tokens

  def set_input_embeddings(self, value):
    self.embed_tokens = value

  def forward_chunk(self, input_ids: torch.Tensor, valid: torch.Tensor, cache: FoTCache) -> torch.Tensor:
    """input_ids [B, T] -> final hidden states [B, T, D]; the tokens join the local cache."""
    x = self.embed_tokens(input_ids)
    for layer in self.layers:
      x = layer(x, valid, cache)
    cache.append_valid(valid)
    return self.norm(x)


class LongLlamaForCausalLM(LongLlamaPreTrainedModel, GenerationMixin):
  """Causal LM with FoT memory: windowed encoding of long inputs, memory cache, generate() through GenerationMixin."""

  _supported_generation_modes = (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE)

  def __init__(self, config):
    super().__init__(config)
    self.model = LongLlamaModel(config)
    self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
    self.post_init()

  @classmethod
  def _supports_default_dynamic_cache(cls) -> bool:
    """generate() must not create a DynamicCache: the first forward creates the FoTCache."""
    return False

  def _prepare_attention_mask_for_generation(self, inputs_tensor, *args, **kwargs):
    """Without an attention_mask every prompt token is valid, as in forward(): a token equal to pad_token_id is
    not taken for padding (LLaMA's pad id 0 is <unk>, a real token). Padded batches pass their mask."""
    return torch.ones(inputs_tensor.shape[:2], dtype=torch.long, device=inputs_tensor.device)

  def get_input_embeddings(self):
    return self.model.embed_tokens

  def get_output_embeddings(self):
    return self.lm_head

  def new_cache(self) -> FoTCache:
    mem_dtype = _DTYPES[getattr(self.config, "mem_dtype", "bfloat16") or "bfloat16"]
    return FoTCache(self.config.num_hidden_layers, getattr(self.config, "mem_layers", ()) or (), mem_dtype)

  def windows(self, length: int) -> list[tuple[int, int]]:
    """Windowing (docs/BEHAVIOUR.md section 3) of an input of `length` tokens: [(start, stop), ...]."""
    window = self.config.max_position_embeddings
    lcl = min(self.config.last_context_length, window)
    n_mem = max(length - lcl, 0)
    spans = [(s, min(s + window, n_mem)) for s in range(0, n_mem, window)]
    if length > n_mem:
      spans.append((n_mem, length))
    return spans

  def _logits(self, hidden):
    return self.lm_head(hidden).float()

  def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              past_key_values: FoTCache | None = None, use_cache: bool | None = None,
              labels: torch.Tensor | None = None, return_dict: bool | None = None, cache: FoTCache | None = None,
              **kwargs):
    """Logits [B, N, V] float32 for every input token.

    Without a cache the input is windowed as LongLLaMA does; with a cache (from use_cache=True) the new tokens are
    appended to it, evicting the whole cache first when they do not fit in the window. attention_mask may cover
    earlier tokens too (as generate() passes it): its last N columns mark the new tokens' padding.
    """
    past_key_values = cache if past_key_values is None else past_key_values
    valid = (torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None
             else attention_mask[:, -input_ids.shape[1]:].bool())
    window = self.config.max_position_embeddings
    if past_key_values is None:
      cache = self.new_cache()
      spans = self.windows(input_ids.shape[1])
      outputs = []
      for i, (a, b) in enumerate(spans):
        outputs.append(self._logits(self.model.forward_chunk(input_ids[:, a:b], valid[:, a:b], cache)))
        if i < len(spans) - 1:
          cache.flush()
      logits = torch.cat(outputs, dim=1)
    else:
      cache = past_key_values
      if input_ids.shape[1] > window:
        raise ValueError(f"with a cache, at most max_position_embeddings={window} tokens per call, "
                         f"found {input_ids.shape[1]}")
      if cache.length + input_ids.shape[1] > window:
        cache.flush()
      logits = self._logits(self.model.forward_chunk(input_ids, valid, cache))
    loss = None
    if labels is not None:
      loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                             ignore_index=-100)
    keep = use_cache or past_key_values is not None
    return CausalLMOutputWithPast(loss=loss, logits=logits, **{_CACHE_FIELD: cache if keep else None})

  def generate(self, *args, **kwargs):
    """transformers' generate() (greedy or sampling, logits processors, stopping criteria); beam search, assisted
    generation and a cache passed in are refused with a clear error."""
    config = kwargs.get("generation_config") or self.generation_config
    num_beams = kwargs.get("num_beams", getattr(config, "num_beams", 1)) or 1
    if num_beams > 1:
      raise ValueError(f"generate(num_beams={num_beams}): beam search is not supported by the FoT model (its memory "
                       f"cache cannot be reordered between beams); use greedy decoding or do_sample=True")
    for name in ("assistant_model", "past_key_values", "cache"):
      if kwargs.get(name) is not None:
        raise ValueError(f"generate({name}=...): not supported by the FoT model; generation starts from the prompt "
                         f"and builds its own memory cache")
    return super().generate(*args, **kwargs)


__all__ = ["LongLlamaConfig", "LongLlamaModel", "LongLlamaForCausalLM", "FoTCache"]
