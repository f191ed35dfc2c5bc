"""Inference with memory (docs/BEHAVIOUR.md section 3): windowing edge cases, top-k memory, generation over a
cache flush."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.inference import MemoryInference, MemoryOptions, segments_reference
from fot_jax.model.transformer import forward
from tests.model.helpers import random_tokens, tiny_config, tiny_params

_forward = jax.jit(forward, static_argnames=("config",))


def _spec_boundaries(n, window, lcl):
  """docs/BEHAVIOUR.md section 3 written out independently: windows of W over [0, N - LCL), then the final window."""
  n_mem = max(n - lcl, 0)
  bounds = list(range(0, n_mem, window)) + ([n_mem] if n_mem else [])
  return (bounds or [0]) + [n]


def _encode(config, tokens, window, lcl, options=MemoryOptions()):
  runner = MemoryInference(tiny_params(config), config, tokens.shape[0], window=window, last_context_length=lcl,
                           mem_dtype="float32", options=options)
  return runner, np.asarray(runner.encode(tokens))


@pytest.mark.parametrize("n, window, lcl", [
    (10, 16, 12),  # N < LCL: one window, no memory
    (14, 16, 8),  # LCL < N <= W: split although N fits one window
    (24, 8, 12),  # LCL > W: the final window is longer than W
    (45, 8, 6),  # several full windows, a short one, then the final window
])
def test_windowing_matches_the_spec(n, window, lcl):
  config = tiny_config()
  tokens = random_tokens((2, n), config.vocab_size, seed=n)
  runner, logits = _encode(config, tokens, window, lcl)
  bounds = _spec_boundaries(n, window, lcl)
  assert [a for a, _ in runner.windows(n)] == bounds[:-1]
  assert runner.memory_size == bounds[-2] and runner.cache_len == n - bounds[-2]
  reference = np.asarray(segments_reference(tiny_params(config), config, tokens, bounds))
  np.testing.assert_allclose(logits, reference, atol=2e-5, rtol=0)
  if len(bounds) == 2:  # a single window is a plain causal forward
    np.testing.assert_allclose(logits, np.asarray(_forward(tiny_params(config), jnp.asarray(tokens), config)),
                               atol=2e-5, rtol=0)


def test_memory_changes_the_logits_of_later_windows():
  config = tiny_config()
  tokens = random_tokens((1, 40), config.vocab_size, seed=3)
  _, with_memory = _encode(config, tokens, 16, 8)
  no_memory_config = config.replace(mem_layers=())
  _, without = _encode(no_memory_config, tokens, 16, 8)
  np.testing.assert_allclose(with_memory[:, :16], without[:, :16], atol=2e-5, rtol=0)
  assert np.abs(with_memory[:, 16:] - without[:, 16:]).max() > 1e-2


@pytest.mark.parametrize("approx", [False, True])
def test_topk_with_k_at_least_memory_size_equals_dense(approx):
  config = tiny_config()
  tokens = random_tokens((2, 40), config.vocab_size, seed=5)
  dense_runner, dense = _encode(config, tokens, 8, 8)
  assert dense_runner.memory_size == 32
  _, topk = _encode(config, tokens, 8, 8, MemoryOptions(topk=64, approx=approx))
  np.testing.assert_allclose(topk, dense, atol=2e-5, rtol=0)


def test_small_topk_differs_from_dense_but_stays_close_to_memoryless_structure():
  config = tiny_config()
  tokens = random_tokens((1, 40), config.vocab_size, seed=6)
  _, dense = _encode(config, tokens, 8, 8)
  _, top2 = _encode(config, tokens, 8, 8, MemoryOptions(topk=2))
  np.testing.assert_allclose(top2[:, :8], dense[:, :8], atol=2e-5, rtol=0)  # no memory yet in window 0
  assert np.abs(top2[:, 8:] - dense[:, 8:]).max() > 1e-3


def test_generation_across_a_cache_flush_equals_full_recompute():
  window, lcl, prompt_len, new = 8, 6, 19, 9
  config = tiny_config()
  params = tiny_params(config)
  prompt = random_tokens((1, prompt_len), config.vocab_size, seed=11)
  runner = MemoryInference(params, config, 1, window=window, last_context_length=lcl, mem_dtype="float32")
  generated = runner.generate(prompt, new)[0]
  assert runner.memory_size > prompt_len - lcl, "the test must cross at least one cache flush"
  # Replay: the cache starts with the final prompt window; each step evicts the whole cache when it is full.
  seq = list(prompt[0])
  bounds = _spec_boundaries(prompt_len, window, lcl)
  cache_start = bounds[-2]
  for i, token in enumerate(generated):
    logits = np.asarray(segments_reference(params, config, np.asarray([seq]), bounds))
    assert int(np.argmax(logits[0, -1])) == int(token), f"token {i} differs from the full recompute"
    if len(seq) + 1 - cache_start > window:  # the next step would overflow: the cache is flushed first
      cache_start = len(seq)
      bounds = bounds[:-1] + [cache_start]
    seq.append(int(token))
    bounds = bounds[:-1] + [len(seq)] if bounds[-1] != cache_start else bounds + [len(seq)]


def test_multi_doc_memory_persists_and_single_doc_resets():
  config = tiny_config()
  params = tiny_params(config)
  doc_a, doc_b = random_tokens((1, 24), config.vocab_size, 1), random_tokens((1, 16), config.vocab_size, 2)
  runner = MemoryInference(params, config, 1, window=8, last_context_length=8, mem_dtype="float32")
  runner.encode(doc_a)
  multi = np.asarray(runner.encode(doc_b))
  assert runner.memory_size == 24 + 8
  runner.reset()
  single = np.asarray(runner.encode(doc_b))
  assert runner.memory_size == 8
  assert np.abs(multi - single).max() > 1e-3


def test_bad_inputs_are_rejected():
  config = tiny_config()
  runner = MemoryInference(tiny_params(config), config, 2, window=8, last_context_length=8)
  with pytest.raises(ValueError, match="batch=2"):
    runner.encode(np.zeros((3, 5), np.int32))
  with pytest.raises(ValueError, match="at most W=8"):
    runner.step(np.zeros((2, 9), np.int32))
  with pytest.raises(ValueError, match="top-k"):
    MemoryInference(tiny_params(config), config, 1, options=MemoryOptions(topk=0))


@pytest.mark.parametrize("mem_layers, topk, overrides", [
    ((1,), None, {}),  # one memory layer: its read and everything above it are skipped while feeding
    ((0, 2), None, {"qk_norm": True}),  # the lower memory layer still reads memory while feeding
    ((1,), 3, {"mem_positionals": "none"}),
])
def test_feeding_the_front_then_encoding_the_end_equals_encoding_everything(mem_layers, topk, overrides):
  config = tiny_config(mem_layers=mem_layers, **overrides)
  tokens = random_tokens((2, 53), config.vocab_size, seed=7)
  window, lcl = 8, 11
  options = MemoryOptions(topk=topk)
  _, full = _encode(config, tokens, window, lcl, options)
  runner = MemoryInference(tiny_params(config), config, 2, window=window, last_context_length=lcl,
                           mem_dtype="float32", options=options)
  n_mem = runner.windows(53)[-1][0]
  runner.feed(tokens[:, :n_mem])
  assert runner.memory_size == n_mem and runner.cache_len == 0
  tail = np.asarray(runner.encode(tokens[:, n_mem:]))
  np.testing.assert_allclose(tail, full[:, n_mem:], atol=2e-5, rtol=0)
  wrong = MemoryInference(tiny_params(config), config, 2, window=window, last_context_length=lcl,
                          mem_dtype="float32", options=options)
  wrong.feed(tokens[:, 1:n_mem + 1])  # a shifted front: the guard must be able to fail
  assert np.abs(np.asarray(wrong.encode(tokens[:, n_mem:])) - full[:, n_mem:]).max() > 1e-3
