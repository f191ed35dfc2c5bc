"""Trainer tests share one persistent XLA compilation cache (also handed to their subprocesses): the same tiny
train step is compiled by several runs and processes, and recompiling it dominates the test time."""

import os
import tempfile

import jax
import pytest

CACHE_DIR = os.path.join(tempfile.gettempdir(), "fot_jax_test_xla_cache")


@pytest.fixture(scope="session", autouse=True)
def compilation_cache():
  os.makedirs(CACHE_DIR, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = CACHE_DIR
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  yield
