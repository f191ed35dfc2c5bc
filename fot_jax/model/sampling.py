"""Next-token choice for generation: greedy, or sampling with temperature, top-k and top-p (nucleus) filters.

`Sampling()` (temperature 0) is greedy. Sampling is reproducible: step i of a generation draws with
fold_in(key(seed), i), so the same seed gives the same tokens whatever the batch does around it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Sampling:
  """temperature 0: greedy (argmax). Otherwise logits / temperature, keep the top_k most likely tokens and the
  smallest set whose probability reaches top_p, and draw from what is left."""
  temperature: float = 0.0
  top_p: float = 1.0
  top_k: int | None = None
  seed: int = 0

  def __post_init__(self):
    if not self.temperature >= 0:
      raise ValueError(f"Sampling.temperature: expected a number >= 0 (0 = greedy), found {self.temperature!r}")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"Sampling.top_p: expected a probability in (0, 1], found {self.top_p!r}")
    if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k <= 0):
      raise ValueError(f"Sampling.top_k: expected a positive integer or None, found {self.top_k!r}")

  @property
  def greedy(self) -> bool:
    return self.temperature == 0


def filter_logits(logits: jax.Array, temperature: float, top_p: float, top_k: int | None) -> jax.Array:
  """logits [B, V] -> tempered logits with filtered-out tokens at -inf (the most likely token always stays)."""
  logits = logits.astype(jnp.float32) / temperature
  if top_k is not None and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  if top_p < 1:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # probability of the more likely tokens
    keep_sorted = before < top_p  # the first token always (before = 0)
    keep = jnp.zeros_like(keep_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
    logits = jnp.where(keep, logits, -jnp.inf)
  return logits


@functools.partial(jax.jit, static_argnames=("sampling",))
def next_tokens(logits: jax.Array, step, sampling: Sampling) -> jax.Array:
  """logits [B, V] of the last position -> next tokens [B] int32 (step: the index of the generated token)."""
  if sampling.greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  key = jax.random.fold_in(jax.random.key(sampling.seed), step)
  filtered = filter_logits(logits, sampling.temperature, sampling.top_p, sampling.top_k)
  return jax.random.categorical(key, filtered, axis=-1).astype(jnp.int32)
