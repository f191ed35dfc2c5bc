"""Streamed memory retrieval: exact top-k, approximate (bin-max) top-k recall, and online-softmax attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model import retrieval


def _data(q=8, m=5000, d=16, seed=0):
  rng = np.random.RandomState(seed)
  valid = rng.rand(m) > 0.1
  return (jnp.asarray(rng.randn(q, d), jnp.float32), jnp.asarray(rng.randn(m, d), jnp.float32),
          jnp.asarray(rng.randn(m, 4), jnp.float32), jnp.asarray(valid))


def test_streamed_exact_top_k_equals_full_top_k():
  q, keys, _, valid = _data()
  scores = jnp.where(valid[None], q @ keys.T, -jnp.inf)
  want_vals, want_idx = jax.lax.top_k(scores, 10)
  vals, idx = jax.jit(lambda *a: retrieval.streamed_top_k(*a, k=10, block=777))(q, keys, valid)
  np.testing.assert_allclose(vals, want_vals, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.sort(idx, -1), np.sort(want_idx, -1))
  assert bool(valid[idx].all()), "invalid keys must never be retrieved"


def test_binned_top_k_reaches_the_recall_target_and_returns_true_scores():
  q, keys, _, valid = _data(q=32, m=20000, seed=1)
  scores = q @ keys.T
  _, exact = jax.lax.top_k(scores, 16)
  vals, approx = retrieval.binned_max_k(scores, 16, recall_target=0.95)
  assert retrieval.recall(approx, exact) >= 0.95
  np.testing.assert_allclose(vals, jnp.take_along_axis(scores, approx, axis=-1), rtol=1e-6)
  # Fewer bins lose more: the recall target is what buys the accuracy.
  _, coarse = retrieval.binned_max_k(scores, 16, recall_target=0.3)
  assert retrieval.recall(coarse, exact) < retrieval.recall(approx, exact)


def test_streamed_dense_attention_equals_softmax():
  q, keys, values, valid = _data(m=3000, seed=2)
  scores = jnp.where(valid[None], (q @ keys.T) * 0.25, -jnp.inf)
  want = jax.nn.softmax(scores, axis=-1) @ values
  got = jax.jit(lambda *a: retrieval.streamed_dense_attention(*a, scale=0.25, block=1024))(q, keys, values, valid)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_bins_for_recall_grows_with_k_and_target():
  assert retrieval.bins_for_recall(64, 0.95) > retrieval.bins_for_recall(16, 0.95)
  assert retrieval.bins_for_recall(16, 0.99) > retrieval.bins_for_recall(16, 0.9)
  with pytest.raises(ValueError, match="recall_target"):
    retrieval.bins_for_recall(8, 1.0)


def test_streamed_top_k_larger_than_memory_is_an_error():
  q, keys, _, valid = _data(m=50)
  with pytest.raises(ValueError, match="k=51"):
    retrieval.streamed_top_k(q, keys, valid, k=51)
