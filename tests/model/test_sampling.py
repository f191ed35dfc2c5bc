"""Sampling generation: the filters keep the right tokens, draws follow the distribution, seeds reproduce, and
MemoryInference.generate handles stop tokens and rows of different lengths."""

import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.inference import MemoryInference
from fot_jax.model.sampling import Sampling, filter_logits, next_tokens
from tests.model.helpers import random_tokens, tiny_config, tiny_params

PROBS = np.log(np.asarray([[0.5, 0.3, 0.15, 0.05]], np.float32))


def test_filters_keep_the_top_tokens():
  kept = lambda **kw: np.isfinite(np.asarray(filter_logits(jnp.asarray(PROBS), **kw)))[0].tolist()
  assert kept(temperature=1.0, top_p=1.0, top_k=2) == [True, True, False, False]
  assert kept(temperature=1.0, top_p=0.7, top_k=None) == [True, True, False, False]  # 0.5 < 0.7 <= 0.8
  assert kept(temperature=1.0, top_p=0.5, top_k=None) == [True, False, False, False]
  assert kept(temperature=1.0, top_p=0.9, top_k=None) == [True, True, True, False]


def test_draws_follow_the_tempered_distribution_and_seeds_reproduce():
  logits = jnp.asarray(np.repeat(PROBS, 4000, axis=0))
  draws = np.asarray(next_tokens(logits, 0, Sampling(temperature=1.0, seed=3)))
  np.testing.assert_allclose(np.bincount(draws, minlength=4) / len(draws), [0.5, 0.3, 0.15, 0.05], atol=0.03)
  hot = np.asarray(next_tokens(logits, 0, Sampling(temperature=2.0, seed=3)))
  assert np.mean(hot == 0) < np.mean(draws == 0) - 0.05  # a higher temperature flattens the distribution
  again = np.asarray(next_tokens(logits, 0, Sampling(temperature=1.0, seed=3)))
  other = np.asarray(next_tokens(logits, 0, Sampling(temperature=1.0, seed=4)))
  np.testing.assert_array_equal(draws, again)
  assert (draws != other).mean() > 0.3
  top2 = np.asarray(next_tokens(logits, 0, Sampling(temperature=1.0, top_k=2)))
  assert set(top2.tolist()) == {0, 1}


def _runner(batch=2):
  config = tiny_config()
  return MemoryInference(tiny_params(config), config, batch, window=8, last_context_length=6, mem_dtype="float32",
                         initial_capacity=64)


def test_generate_sampling_seed_top_k_and_greedy_default():
  runner = _runner()
  prompt = random_tokens((2, 13), 512, seed=1)
  greedy = runner.generate(prompt, 10)
  runner.reset()
  np.testing.assert_array_equal(runner.generate(prompt, 10, sampling=Sampling(temperature=1.0, top_k=1)), greedy)
  runs = []
  for seed in (0, 0, 1):
    runner.reset()
    runs.append(runner.generate(prompt, 10, sampling=Sampling(temperature=1.5, seed=seed)))
  np.testing.assert_array_equal(runs[0], runs[1])
  assert (runs[0] != runs[2]).any() and (runs[0] != greedy).any()


def test_generate_rows_of_different_lengths_and_stop_tokens():
  runner = _runner()
  short, long_ = random_tokens((1, 9), 512, seed=2)[0], random_tokens((1, 15), 512, seed=3)[0]
  batched = runner.generate([short, long_], [10, 6])
  assert batched.shape == (2, 10)
  # Each row equals the same row generated alone (left padding is masked out)...
  alone = MemoryInference(runner.params, runner.config, 1, window=8, last_context_length=6, mem_dtype="float32",
                          initial_capacity=64)
  padded = np.concatenate([np.zeros(6, np.int32), short])[None]
  valid = np.arange(15)[None] >= 6
  np.testing.assert_array_equal(batched[0], alone.generate(padded, 10, valid=valid)[0])
  alone.reset()
  np.testing.assert_array_equal(batched[1, :6], alone.generate(long_[None], 6)[0])
  assert (batched[1, 6:] == runner.config.pad_token_id).all()  # the row's own max_new_tokens
  # ...whatever the padding tokens are.
  alone.reset()
  np.testing.assert_array_equal(alone.generate(np.where(valid, padded, 7), 10, valid=valid)[0], batched[0])
  # A stop token ends its row only; later positions are padding.
  stop = int(batched[0, 2])
  runner.reset()
  stopped = runner.generate([short, long_], [10, 6], stop_tokens=[stop], pad_token_id=-1)
  first = int(np.argmax(batched[0] == stop))
  np.testing.assert_array_equal(stopped[0, :first + 1], batched[0, :first + 1])
  assert (stopped[0, first + 1:] == -1).all()


def test_bad_sampling_settings_name_the_field():
  for kw, field in ((dict(temperature=-1.0), "temperature"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
                    (dict(top_k=0), "top_k")):
    with pytest.raises(ValueError, match=f"Sampling.{field}"):
      Sampling(**kw)
  with pytest.raises(ValueError, match="max_new_tokens"):
    _runner().generate(random_tokens((2, 5), 512), [3, -1])
