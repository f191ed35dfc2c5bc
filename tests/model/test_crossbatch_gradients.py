"""Gradients flow through visible additional contexts (negatives included) and are exactly zero elsewhere."""

import jax
import jax.numpy as jnp
import numpy as np

from fot_jax.model.crossbatch import released_plan
from fot_jax.model.transformer import forward
from tests.model.helpers import tiny_config, tiny_params

L = 8
TOKENS_PER_ENTRY = 40


def test_gradients_reach_visible_negatives_only():
  config = tiny_config(mem_layers=(0,))  # the first layer: embeddings of other entries reach it directly
  params = tiny_params(config)
  plan = released_plan(batch=8, k=4, d=3, stepping=True)  # entry 5 sees 4 (positive) and 3 (negative)
  # Entry b uses its own token ids, so the embedding rows of entry b receive gradient only through entry b.
  rng = np.random.RandomState(0)
  tokens = np.stack([b * TOKENS_PER_ENTRY + rng.randint(0, TOKENS_PER_ENTRY, L) for b in range(8)])

  def loss_of_entry_5(embed):
    logits = forward({**params, "embed_tokens": embed}, jnp.asarray(tokens), config,
                     visible=jnp.asarray(plan.visible))
    return jnp.sum(logits[5] ** 2)

  grad = np.asarray(jax.jit(jax.grad(loss_of_entry_5))(params["embed_tokens"]))
  norms = [np.abs(grad[b * TOKENS_PER_ENTRY:(b + 1) * TOKENS_PER_ENTRY]).sum() for b in range(8)]
  assert norms[5] > 0 and norms[4] > 0, "own context and the positive must get gradient"
  assert norms[3] > 0, "the visible negative (previous stream) must get gradient"
  for invisible in (0, 1, 2, 6, 7):
    assert norms[invisible] == 0.0, f"entry {invisible} is invisible to entry 5 but got gradient {norms[invisible]}"
