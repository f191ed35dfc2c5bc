"""LLaMA building blocks as pure functions: RMSNorm, rotary embeddings (HF rotate-half layout), SwiGLU MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
  """RMSNorm computed in float32, returned in x's dtype (docs/BEHAVIOUR.md section 1)."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return (y * weight.astype(jnp.float32)).astype(x.dtype)


def plain_inv_freq(head_dim: int, theta: float) -> jax.Array:
  """Unscaled RoPE inverse frequencies [head_dim/2], float32."""
  return 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))


def rope_tables(positions: jax.Array, inv_freq: jax.Array) -> tuple[jax.Array, jax.Array]:
  """cos/sin tables [..., T, head_dim] in float32 for integer positions [..., T] and inverse frequencies.

  float32 always: bf16 angles are off by radians at position 4096.
  """
  angles = positions.astype(jnp.float32)[..., None] * inv_freq.astype(jnp.float32)  # [..., T, hd/2]
  angles = jnp.concatenate([angles, angles], axis=-1)  # [..., T, hd]
  return jnp.cos(angles), jnp.sin(angles)


def rotate_half(x: jax.Array) -> jax.Array:
  half = x.shape[-1] // 2
  return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope_freqs(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
  """Rotates x [B, T, heads, hd] at positions [B, T] (or [T]) in the HF rotate-half layout."""
  cos, sin = rope_tables(positions, inv_freq)
  if cos.ndim == 2:  # [T, hd] -> [1, T, 1, hd]
    cos, sin = cos[None], sin[None]
  cos, sin = cos[:, :, None, :], sin[:, :, None, :]
  x32 = x.astype(jnp.float32)
  return (x32 * cos + rotate_half(x32) * sin).astype(x.dtype)


def apply_rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Plain (unscaled) RoPE with base theta; scaled RoPE goes through fot_jax.model.rope."""
  return apply_rope_freqs(x, positions, plain_inv_freq(x.shape[-1], theta))


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Normalises the last axis in float32 (q/k normalisation ablation)."""
  x32 = x.astype(jnp.float32)
  return (x32 * jax.lax.rsqrt(jnp.sum(x32 * x32, axis=-1, keepdims=True) + eps)).astype(x.dtype)


def swiglu_mlp(x: jax.Array, gate: jax.Array, up: jax.Array, down: jax.Array) -> jax.Array:
  """down(silu(gate(x)) * up(x)); kernels are [in, out]."""
  dtype = x.dtype
  h = jax.nn.silu(x @ gate.astype(dtype)) * (x @ up.astype(dtype))
  return h @ down.astype(dtype)
