"""The identity of docs/BEHAVIOUR.md section 2: crossbatch training on one packed document == memory inference
on the whole text."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.crossbatch import released_plan
from fot_jax.model.inference import MemoryInference
from fot_jax.model.transformer import forward
from tests.model.helpers import random_tokens, tiny_config, tiny_params

L = 16


_forward = jax.jit(forward, static_argnames=("config",))


def _train_logits(params, config, doc, k, plan=None):
  chunks = jnp.asarray(doc.reshape(k, L))
  if plan is None:
    return np.asarray(_forward(params, chunks, config)).reshape(1, k * L, -1)
  return np.asarray(_forward(params, chunks, config, visible=jnp.asarray(plan.visible))).reshape(1, k * L, -1)


# k = 2, 3, 4 across two mem_layers sets and both thetas (each combination compiles, so not the full product).
@pytest.mark.parametrize("k, mem_layers, theta", [(2, (2,), 1e4), (3, (0, 3), 1e6), (4, (2,), 1e6),
                                                  (4, (0, 3), 1e4)])
def test_crossbatch_training_equals_memory_inference(k, mem_layers, theta):
  config = tiny_config(mem_layers=mem_layers, rope_theta=theta, max_position_embeddings=L, last_context_length=L)
  params = tiny_params(config)
  doc = random_tokens((1, k * L), config.vocab_size, seed=k)
  plan = released_plan(batch=k, k=k, d=k - 1, stepping=True)
  trained = _train_logits(params, config, doc, k, plan)
  inferred = np.asarray(MemoryInference(params, config, batch=1, mem_dtype="float32").encode(doc))
  np.testing.assert_allclose(trained, inferred, atol=2e-5, rtol=0)
  # Negative control: without memory the later chunks' logits change, so the identity is not vacuous.
  no_memory = _train_logits(params, config, doc, k)
  assert np.abs(no_memory[:, L:] - inferred[:, L:]).max() > 1e-2
  np.testing.assert_allclose(no_memory[:, :L], inferred[:, :L], atol=2e-5, rtol=0)


def test_identity_without_positional_encoding_in_memory_layers():
  config = tiny_config(mem_layers=(1,), mem_positionals="none", max_position_embeddings=L, last_context_length=L)
  params = tiny_params(config)
  doc = random_tokens((1, 3 * L), config.vocab_size, seed=7)
  trained = _train_logits(params, config, doc, 3, released_plan(3, 3, 2))
  inferred = np.asarray(MemoryInference(params, config, batch=1, mem_dtype="float32").encode(doc))
  np.testing.assert_allclose(trained, inferred, atol=2e-5, rtol=0)
