"""Small shared builders for model tests: tiny configs, params and random tokens."""

import functools

import numpy as np

from fot_jax.model.config import preset
from fot_jax.model.params import init_params


def tiny_config(**overrides):
  return preset("tiny", mem_dtype="float32", **overrides)


@functools.lru_cache(maxsize=None)
def _cached_params(config, seed):
  return init_params(config, seed)


def tiny_params(config, seed: int = 0):
  return _cached_params(config, seed)


def random_tokens(shape, vocab, seed: int = 0):
  return np.random.RandomState(seed).randint(0, vocab, shape).astype(np.int32)
