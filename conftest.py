"""Pytest setup shared by all tests: 8 fake CPU devices for mesh tests, set before JAX is imported."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_executables():
  """Drop JAX's compiled executables after each test module: one long session of several hundred tests otherwise
  keeps every executable alive, and XLA's CPU compiler crashed (SIGSEGV) late in such a session."""
  yield
  import sys
  if "jax" in sys.modules:
    sys.modules["jax"].clear_caches()
