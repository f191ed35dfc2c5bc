"""RoPE frequency scaling of LLaMA-family checkpoints (transformers' `rope_scaling` types) and the rotations.

Types, as transformers' `LlamaConfig` defines them:
- linear: every inverse frequency divided by `factor` (position interpolation).
- dynamic: NTK-aware base theta * (factor * S / W - (factor - 1)) ** (d / (d - 2)), S = max(seq_len, W); equal
  to plain RoPE while the positions stay below W = max_position_embeddings.
- yarn: frequencies ramped between extrapolation and interpolation by `factor` over the dimensions set by
  beta_fast/beta_slow and original_max_position_embeddings, plus an attention factor on cos and sin
  (0.1 * ln(factor) + 1 unless given, or the mscale / mscale_all_dim ratio).
- llama3: low frequencies divided by `factor`, high ones kept, the band between smoothed (Llama 3.1).

The attention factor m is applied as m**2 on rotated queries only (keys are rotated without it): q.k scores are
the same as transformers' (m q).(m k), and unrotated memory keys stay exactly "keys at position 0".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from fot_jax.model.layers import apply_rope_freqs, plain_inv_freq

ROPE_TYPES = ("linear", "dynamic", "yarn", "llama3")
# Fields each type requires and may carry (transformers' names); rope_theta stays a ModelConfig field.
_REQUIRED = {"linear": ("factor",), "dynamic": ("factor",), "yarn": ("factor", "original_max_position_embeddings"),
             "llama3": ("factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor")}
_OPTIONAL = {"linear": (), "dynamic": (), "llama3": (),
             "yarn": ("attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate")}


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """One transformers `rope_scaling` entry; fields a type does not use stay None."""

  rope_type: str
  factor: float | None = None
  original_max_position_embeddings: int | None = None
  low_freq_factor: float | None = None
  high_freq_factor: float | None = None
  attention_factor: float | None = None
  beta_fast: float | None = None
  beta_slow: float | None = None
  mscale: float | None = None
  mscale_all_dim: float | None = None
  truncate: bool | None = None

  def __post_init__(self):
    def fail(field: str, expected: str, found: Any):
      raise ValueError(f"rope_scaling.{field} ({self.rope_type}): expected {expected}, found {found!r}")

    if self.rope_type not in ROPE_TYPES:
      raise ValueError(f"rope_scaling.rope_type: {self.rope_type!r} is not supported; supported types are "
                       f"{', '.join(ROPE_TYPES)} (or no rope_scaling for plain RoPE)")
    allowed = _REQUIRED[self.rope_type] + _OPTIONAL[self.rope_type]
    for field in dataclasses.fields(self)[1:]:
      value = getattr(self, field.name)
      if value is None:
        if field.name in _REQUIRED[self.rope_type]:
          fail(field.name, "a value (required by this type)", None)
      elif field.name not in allowed:
        fail(field.name, f"no value (this type uses only {', '.join(allowed)})", value)
      elif field.name == "truncate":
        if not isinstance(value, bool):
          fail(field.name, "true or false", value)
      elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(field.name, "a number", value)
    if self.factor < 1:
      fail("factor", "a number >= 1", self.factor)
    if self.original_max_position_embeddings is not None and (
        not isinstance(self.original_max_position_embeddings, int) or self.original_max_position_embeddings <= 0):
      fail("original_max_position_embeddings", "a positive integer", self.original_max_position_embeddings)
    if self.rope_type == "llama3" and not 0 < self.low_freq_factor < self.high_freq_factor:
      fail("high_freq_factor", f"greater than low_freq_factor={self.low_freq_factor} > 0", self.high_freq_factor)
    if self.attention_factor is not None and self.attention_factor <= 0:
      fail("attention_factor", "a positive number", self.attention_factor)

  def to_dict(self) -> dict[str, Any]:
    """transformers' `rope_scaling` dict (fields that are None left out)."""
    return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "RopeScaling":
    """From a `rope_scaling` dict; unknown keys are refused by name (they would be silently ignored)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError(f"rope_scaling: unknown fields {unknown} for type {d.get('rope_type')!r}; known fields "
                       f"are {sorted(known)}")
    if "rope_type" not in d:
      raise ValueError(f"rope_scaling.rope_type: expected one of {', '.join(ROPE_TYPES)}, found no rope_type")
    return cls(**d)

  @property
  def attention_scale(self) -> float:
    """The factor transformers multiplies cos and sin by (yarn only; 1 otherwise)."""
    if self.rope_type != "yarn":
      return 1.0
    if self.attention_factor is not None:
      return float(self.attention_factor)
    mscale = lambda scale, m=1.0: 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
    if self.mscale and self.mscale_all_dim:
      return float(mscale(self.factor, self.mscale) / mscale(self.factor, self.mscale_all_dim))
    return mscale(self.factor)


def _yarn_inv_freq(s: RopeScaling, head_dim: int, theta: float) -> jax.Array:
  def correction_dim(rotations: float) -> float:
    return head_dim * math.log(s.original_max_position_embeddings / (rotations * 2 * math.pi)) / (2 * math.log(theta))

  low, high = correction_dim(s.beta_fast or 32), correction_dim(s.beta_slow or 1)
  if s.truncate is None or s.truncate:
    low, high = math.floor(low), math.ceil(high)
  low, high = max(low, 0), min(high, head_dim - 1)
  if low == high:
    high += 0.001
  ramp = jnp.clip((jnp.arange(head_dim // 2, dtype=jnp.float32) - low) / (high - low), 0, 1)
  extrapolate = 1 - ramp  # 1: keep the original frequency, 0: interpolate by factor
  base = theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
  return (1.0 / (s.factor * base)) * (1 - extrapolate) + (1.0 / base) * extrapolate


def _llama3_inv_freq(s: RopeScaling, head_dim: int, theta: float) -> jax.Array:
  inv_freq = plain_inv_freq(head_dim, theta)
  old_len = s.original_max_position_embeddings
  wavelen = 2 * math.pi / inv_freq
  scaled = jnp.where(wavelen > old_len / s.low_freq_factor, inv_freq / s.factor, inv_freq)
  smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
  smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
  medium = (wavelen >= old_len / s.high_freq_factor) & (wavelen <= old_len / s.low_freq_factor)
  return jnp.where(medium, smoothed, scaled)


def inv_frequencies(head_dim: int, theta: float, scaling: RopeScaling | None, seq_len: int | jax.Array,
                    max_position_embeddings: int) -> jax.Array:
  """Inverse frequencies [head_dim/2] float32 for a pass whose positions lie below seq_len (an int or a traced
  scalar; only `dynamic` depends on it)."""
  if scaling is None:
    return plain_inv_freq(head_dim, theta)
  if scaling.rope_type == "linear":
    return plain_inv_freq(head_dim, theta) / scaling.factor
  if scaling.rope_type == "dynamic":
    ratio = scaling.factor * jnp.maximum(seq_len, max_position_embeddings) / max_position_embeddings
    return plain_inv_freq(head_dim, theta * (ratio - (scaling.factor - 1)) ** (head_dim / (head_dim - 2)))
  if scaling.rope_type == "yarn":
    return _yarn_inv_freq(scaling, head_dim, theta)
  return _llama3_inv_freq(scaling, head_dim, theta)


def _config_inv_freq(config, seq_len: int | jax.Array) -> jax.Array:
  return inv_frequencies(config.head_dim, config.rope_theta, config.rope_scaling, seq_len,
                         config.max_position_embeddings)


def rope_queries(q: jax.Array, positions: jax.Array, config, seq_len: int | jax.Array) -> jax.Array:
  """Rotates queries [B, T, H, hd] and folds in the attention factor squared (see the module docstring).

  seq_len: the pass's highest position + 1 (as transformers takes it); it only matters for `dynamic`.
  """
  rotated = apply_rope_freqs(q, positions, _config_inv_freq(config, seq_len))
  scale = 1.0 if config.rope_scaling is None else config.rope_scaling.attention_scale
  return rotated if scale == 1.0 else (rotated.astype(jnp.float32) * scale ** 2).astype(q.dtype)


def rope_keys(k: jax.Array, positions: jax.Array, config, seq_len: int | jax.Array) -> jax.Array:
  """Rotates keys [B, S, K, hd] (no attention factor: it is folded into the queries)."""
  return apply_rope_freqs(k, positions, _config_inv_freq(config, seq_len))
