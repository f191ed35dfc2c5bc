"""Memory off (--no_memory) keeps the memory layers but leaves their memory empty; end_scores equals stream_scores."""

import numpy as np
import pytest

from fot_jax.eval import common
from fot_jax.model.inference import MemoryInference, MemoryOptions
from tests.model.helpers import random_tokens, tiny_config, tiny_params


def _model(config, no_memory=False):
  return common.Model(tiny_params(config), config, "ckpt", 0, "orbax", no_memory)


@pytest.mark.parametrize("mem_positionals", ["first", "none"])
def test_memory_off_sees_only_the_final_window(mem_positionals):
  config = tiny_config(mem_layers=(1,), mem_positionals=mem_positionals, max_position_embeddings=8,
                       last_context_length=8)
  tokens = random_tokens((1, 30), config.vocab_size, seed=5)
  off = common.make_runner_factory(_model(config, no_memory=True), MemoryOptions())(1)
  lp_off, _ = common.stream_scores(off, tokens)
  assert off.memory_size == 0
  alone = MemoryInference(tiny_params(config), config, 1, mem_dtype="float32")
  lp_alone, _ = common.stream_scores(alone, tokens[:, 22:])  # the final window (LCL = 8) on its own
  np.testing.assert_allclose(lp_off[:, 22:], lp_alone, atol=2e-5, rtol=0)
  on = common.make_runner_factory(_model(config), MemoryOptions())(1)
  lp_on, _ = common.stream_scores(on, tokens)
  assert np.abs(lp_on[:, 22:] - lp_off[:, 22:]).max() > 1e-3  # memory on reads the front


@pytest.mark.parametrize("no_memory", [False, True])
def test_end_scores_equal_stream_scores_where_they_are_read(no_memory):
  config = tiny_config(mem_layers=(1,), max_position_embeddings=8, last_context_length=8)
  tokens = random_tokens((1, 45), config.vocab_size, seed=9)
  factory = common.make_runner_factory(_model(config, no_memory), MemoryOptions())
  lp, pred = common.stream_scores(factory(1), tokens)
  lp_end, pred_end = common.end_scores(factory(1), tokens, first_needed=40)
  start = 45 - 8
  np.testing.assert_allclose(lp_end[:, start:], lp[:, start:], atol=2e-5, rtol=0)
  np.testing.assert_array_equal(pred_end[:, start:], pred[:, start:])
  assert np.isnan(lp_end[:, :start]).all()
  lp_early, _ = common.end_scores(factory(1), tokens, first_needed=3)  # needs the front: scored in full
  np.testing.assert_allclose(lp_early, lp, atol=2e-5, rtol=0)


def test_memory_off_refuses_whole_input_calls_that_would_keep_memory():
  config = tiny_config(mem_layers=(1,), max_position_embeddings=8, last_context_length=8)
  off = common.make_runner_factory(_model(config, no_memory=True), MemoryOptions())(1)
  with pytest.raises(common.EvalError, match="--no_memory"):
    off.generate(random_tokens((1, 20), config.vocab_size), 3)
