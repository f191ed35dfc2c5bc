"""The runtime-gather crossbatch that static windows replaced, kept as the equality reference for tests.

Plans are (sources, visible) [B, d]: slot c of entry b holds entry sources[b, c], gathered with `x[sources]`
(runtime indices). Slot order as before: the released plan's slot c-1 holds b-c; a mix lists its positives, then
its negatives, then masked slots pointing at b.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fot_jax.model.attention import attend, causal_mask, gated_mix


def released_sources(batch: int, k: int, d: int, stepping: bool = True):
  sources = np.zeros((batch, d), np.int32)
  visible = np.zeros((batch, d), bool)
  for i in range(batch):
    n_i = min((i % k) * -(-(d + 1) // max(k - 1, 1)) + 1, d + 1) if stepping and k > 1 else d + 1
    n_i = min(n_i, i + 1)
    for c in range(1, d + 1):
      sources[i, c - 1] = (i - c) % batch
      visible[i, c - 1] = c < n_i
  return sources, visible


def mix_sources(batch: int, k: int, mix, d: int | None = None):
  d = max(p + n for p, n in mix) if d is None else d
  sources = np.zeros((batch, d), np.int32)
  visible = np.zeros((batch, d), bool)
  for b in range(batch):
    p, n = mix[b % k]
    chosen = [b - c for c in range(1, p + 1)]
    chosen += [o for o in ((b - c) % batch for c in range(1, batch)) if o // k != b // k][:n]
    for slot in range(d):
      if slot < len(chosen):
        sources[b, slot], visible[b, slot] = chosen[slot], True
      else:
        sources[b, slot] = b
  return sources, visible


def gather_contexts(x, sources):
  b, d = sources.shape
  return x[sources].reshape((b, d * x.shape[1]) + x.shape[2:])


def crossbatch_attention(q, k_local, k_mem, v, key_valid, sources, visible, scale, gate=None):
  """The runtime-gather dense crossbatch attention: one softmax over [local | gathered contexts]."""
  b, length = key_valid.shape
  keys_add, values_add = gather_contexts(k_mem, sources), gather_contexts(v, sources)
  extra = (visible[:, :, None] & key_valid[sources]).reshape(b, 1, -1)
  mask_add = jnp.broadcast_to(extra, (b, length, extra.shape[-1]))
  if gate is None:
    keys = jnp.concatenate([k_local, keys_add], axis=1)
    values = jnp.concatenate([v, values_add], axis=1)
    return attend(q, keys, values, jnp.concatenate([causal_mask(key_valid), mask_add], axis=-1), scale)
  return gated_mix(attend(q, k_local, v, causal_mask(key_valid), scale),
                   attend(q, keys_add, values_add, mask_add, scale), mask_add, gate)


def patch_forward(monkeypatch, sources, visible):
  """Makes transformer.forward's memory layers use the runtime-gather attention with this plan."""
  from fot_jax.model import transformer
  src, vis = jnp.asarray(sources), jnp.asarray(visible)

  def attention(q, k_local, k_mem, v, key_valid, _visible, scale, gate=None, impl="dense", chunk_size=512):
    return crossbatch_attention(q, k_local, k_mem, v, key_valid, src, vis, scale, gate)
  monkeypatch.setattr(transformer, "crossbatch_attention", attention)
