"""Model configuration: LLaMA dimensions plus the FoT memory-layer knobs, presets and FLOP counts.

The config is a frozen dataclass so it can be a static argument of jitted functions and a dict in JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Sequence, get_args

from fot_jax.model.rope import RopeScaling

MemPositionals = Literal["first", "none"]
AttentionImpl = str  # a registered backend name (fot_jax.model.backends): dense, chunked, splash or a user one
DType = Literal["float32", "bfloat16", "float16"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A LLaMA decoder with FoT memory layers (docs/BEHAVIOUR.md section 1)."""

  vocab_size: int = 32000
  hidden_size: int = 4096
  num_heads: int = 32
  num_kv_heads: int | None = None  # None -> num_heads (no GQA)
  num_layers: int = 32
  intermediate_size: int = 11008
  rope_theta: float = 10000.0
  # RoPE frequency scaling as in transformers' rope_scaling (linear, dynamic, yarn, llama3; model/rope.py), None
  # for plain RoPE. A dict is accepted and validated. Memory keys stay unrotated whatever the type. `dynamic`
  # scales by a pass's length S once S > max_position_embeddings: a training forward over S tokens does; memory
  # inference takes S = cached + new local tokens, within max_position_embeddings unless LCL exceeds it.
  rope_scaling: RopeScaling | None = None
  norm_eps: float = 1e-6
  # FoT: 0-based indices of the memory layers; they have no extra parameters, only their attention differs.
  mem_layers: tuple[int, ...] = ()
  # "first": LongLLaMA (local RoPE, memory keys at position 0); "none": no positional encoding in memory layers.
  mem_positionals: MemPositionals = "first"
  # Ablations from the paper's small models (not LongLLaMA): normalised q/k with a learnable temperature, and
  # a Memorizing-Transformer gate mixing a local-only and a memory-only softmax.
  qk_norm: bool = False
  mem_gate: bool = False
  # Inference windowing (docs/BEHAVIOUR.md section 3): W (HF max_position_embeddings) and last_context_length.
  max_position_embeddings: int = 2048
  last_context_length: int = 1024
  mem_dtype: DType = "bfloat16"
  # Numerics: params are stored in param_dtype, matmuls run in dtype; norms, RoPE and softmax in float32.
  dtype: DType = "float32"
  param_dtype: DType = "float32"
  # Attention backend of memory layers (fot_jax.model.backends) and its key-block size (chunked only). "splash":
  # the Pallas splash-attention kernel (TPU; Pallas interpret mode elsewhere, tests only), model/splash_attention.py.
  attention_impl: AttentionImpl = "dense"
  attention_chunk_size: int = 256  # fastest of 128/256/512 on CPU (bench/bench_crossbatch.py)
  initializer_range: float = 0.02
  bos_token_id: int = 1
  eos_token_id: int = 2
  pad_token_id: int = 0

  def __post_init__(self):
    object.__setattr__(self, "mem_layers", tuple(int(i) for i in self.mem_layers))
    if isinstance(self.rope_scaling, dict):
      try:
        object.__setattr__(self, "rope_scaling", RopeScaling.from_dict(self.rope_scaling))
      except (ValueError, TypeError) as e:
        raise ValueError(f"ModelConfig.{e}") from None
    self.validate()

  @property
  def kv_heads(self) -> int:
    return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  def validate(self) -> None:
    """Raises ValueError naming the first field that is inconsistent."""

    def fail(field: str, expected: str, found: Any):
      raise ValueError(f"ModelConfig.{field}: expected {expected}, found {found!r}")

    for field in ("vocab_size", "hidden_size", "num_heads", "num_layers", "intermediate_size",
                  "max_position_embeddings", "last_context_length", "attention_chunk_size"):
      value = getattr(self, field)
      if not isinstance(value, int) or value <= 0:
        fail(field, "a positive integer", value)
    if self.hidden_size % self.num_heads:
      fail("hidden_size", f"a multiple of num_heads={self.num_heads}", self.hidden_size)
    if self.head_dim % 2:
      fail("hidden_size", "hidden_size/num_heads even (RoPE rotates halves)", self.hidden_size)
    if self.kv_heads <= 0 or self.num_heads % self.kv_heads:
      fail("num_kv_heads", f"a positive divisor of num_heads={self.num_heads}", self.num_kv_heads)
    bad = [i for i in self.mem_layers if not 0 <= i < self.num_layers]
    if bad:
      fail("mem_layers", f"indices in [0, {self.num_layers})", bad)
    if len(set(self.mem_layers)) != len(self.mem_layers):
      fail("mem_layers", "distinct indices", self.mem_layers)
    for field, kind in (("mem_positionals", MemPositionals), ("dtype", DType), ("param_dtype", DType),
                        ("mem_dtype", DType)):
      if getattr(self, field) not in get_args(kind):
        fail(field, f"one of {get_args(kind)}", getattr(self, field))
    from fot_jax.model import backends  # the registry; imported here because its kernels import this module
    if self.attention_impl not in backends.names():
      fail("attention_impl", f"one of the registered attention backends {list(backends.names())}",
           self.attention_impl)
    if self.rope_theta <= 0:
      fail("rope_theta", "a positive number", self.rope_theta)
    if self.rope_scaling is not None and not isinstance(self.rope_scaling, RopeScaling):
      fail("rope_scaling", "None, a RopeScaling or a rope_scaling dict", self.rope_scaling)

  def is_mem_layer(self, layer: int) -> bool:
    return layer in self.mem_layers

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["mem_layers"] = list(self.mem_layers)
    d["rope_scaling"] = None if self.rope_scaling is None else self.rope_scaling.to_dict()
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError(f"ModelConfig: unknown fields {unknown}; known fields are {sorted(known)}")
    d = dict(d)
    if "mem_layers" in d:
      d["mem_layers"] = tuple(d["mem_layers"])
    return cls(**d)

  # ---- size and FLOPs ----------------------------------------------------------------------------------
  def num_params(self) -> int:
    D, F, V, N = self.hidden_size, self.intermediate_size, self.vocab_size, self.num_layers
    hd = self.head_dim
    attn = D * self.num_heads * hd * 2 + D * self.kv_heads * hd * 2
    per_layer = attn + 3 * D * F + 2 * D
    extra = 0
    if self.qk_norm:
      extra += N * self.num_heads
    if self.mem_gate:
      extra += N * self.num_heads
    return N * per_layer + 2 * V * D + D + extra

  def flops_per_token(self, seq_len: int, crossbatch_d: int = 0, training: bool = True) -> float:
    """Analytic FLOPs per token for a context of seq_len (x3 for fwd+bwd when training).

    Matmuls count 2 FLOPs per multiply-add. Causal local attention counts half of L x L; crossbatch attention
    over d additional contexts of seq_len keys each counts in full (every query sees every additional key).
    """
    D, F, V, N = self.hidden_size, self.intermediate_size, self.vocab_size, self.num_layers
    hd, H, Hkv = self.head_dim, self.num_heads, self.kv_heads
    dense = 2 * (D * H * hd * 2 + D * Hkv * hd * 2 + 3 * D * F) * N + 2 * D * V
    # Per token: QK^T and PV each cost 2*H*hd per visible key.
    local_keys = seq_len / 2
    attn = N * 4 * H * hd * local_keys
    attn += len(self.mem_layers) * 4 * H * hd * seq_len * crossbatch_d
    total = dense + attn
    return float(3 * total if training else total)


def _preset(**kw) -> ModelConfig:
  return ModelConfig(**kw)


PRESETS: dict[str, dict[str, Any]] = {
    # ~0.5M parameters: runs the default test suite and the quick start on a 2-core CPU.
    "tiny": dict(vocab_size=512, hidden_size=64, num_heads=4, num_kv_heads=2, num_layers=4,
                 intermediate_size=176, mem_layers=(2,), max_position_embeddings=128,
                 last_context_length=64, mem_dtype="float32", initializer_range=0.05),
    # OpenLLaMA-3B / LongLLaMA-3B.
    "longllama_3b": dict(vocab_size=32000, hidden_size=3200, num_heads=32, num_layers=26,
                         intermediate_size=8640, mem_layers=(6, 12, 18), max_position_embeddings=2048,
                         last_context_length=1024, mem_dtype="bfloat16"),
    # LLaMA/OpenLLaMA-7B with the paper's memory layers.
    "longllama_7b": dict(vocab_size=32000, hidden_size=4096, num_heads=32, num_layers=32,
                         intermediate_size=11008, mem_layers=(8, 16, 24), max_position_embeddings=2048,
                         last_context_length=1024, mem_dtype="bfloat16"),
    # Code LLaMA-7B base (LongLLaMA-Code-7B): theta 1e6, 32016 tokens.
    "code_longllama_7b": dict(vocab_size=32016, hidden_size=4096, num_heads=32, num_layers=32,
                              intermediate_size=11008, rope_theta=1e6, mem_layers=(8, 16, 24),
                              max_position_embeddings=2048, last_context_length=1024,
                              mem_dtype="bfloat16", norm_eps=1e-5),
}


def preset(name: str, **overrides) -> ModelConfig:
  """Returns a named preset with field overrides applied."""
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}")
  return ModelConfig(**{**PRESETS[name], **overrides})


def layer_runs(config: ModelConfig) -> list[tuple[int, int, bool]]:
  """Splits layers into maximal runs of the same kind: [(start, stop, is_memory), ...].

  Memory layers break the pattern of identical layers, so a scan covers each run of ordinary layers.
  """
  runs: list[tuple[int, int, bool]] = []
  for i in range(config.num_layers):
    mem = config.is_mem_layer(i)
    if runs and runs[-1][2] == mem and not mem:
      runs[-1] = (runs[-1][0], i + 1, mem)
    else:
      runs.append((i, i + 1, mem))
  return runs


def parse_mem_layers(value: str | Sequence[int]) -> tuple[int, ...]:
  """Parses '1,2' or a sequence into a tuple of layer indices."""
  if isinstance(value, str):
    value = value.strip().strip("()[]")
    return tuple(int(v) for v in value.split(",") if v.strip())
  return tuple(int(v) for v in value)
