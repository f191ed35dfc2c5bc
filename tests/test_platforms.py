"""Quiet on CPU: with libtpu installed and no TPU attached, commands print no libtpu start-up noise
(fot_jax.platforms), while an explicit platform choice or an accelerator is left alone."""

import os
import subprocess
import sys

import pytest

from fot_jax import platforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBTPU_NOISE = ("E0000", "TPU_WORKER_HOSTNAMES", "TPU_ACCELERATOR_TYPE", "libtpu")


def _has_libtpu() -> bool:
  try:
    import libtpu  # noqa: F401
  except ImportError:
    return False
  return True


@pytest.mark.skipif(not _has_libtpu(), reason="without libtpu there is no TPU start-up noise to suppress")
@pytest.mark.skipif(platforms.accelerator_present(), reason="an accelerator may be attached: JAX picks the platform")
def test_a_command_on_cpu_prints_no_libtpu_noise(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}  # as a user's shell: nothing chosen
  env.update(PYTHONPATH=ROOT, ALLOW_MULTIPLE_LIBTPU_LOAD="1")  # libtpu's lock held elsewhere would hide the noise
  # Fails after JAX has started its backends (validation counts the devices), before any data work.
  proc = subprocess.run([sys.executable, "-m", "fot_jax.train", "--config=configs/experiments/tiny_fot.py:quick",
                         f"--config.data.vocab={tmp_path / 'missing.model'}", f"--workdir={tmp_path / 'run'}"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr
  assert not [line for line in proc.stderr.splitlines() if any(n in line for n in LIBTPU_NOISE)], proc.stderr
  assert proc.stderr.strip().startswith("fot_jax.train: error: config.data.vocab"), proc.stderr


@pytest.mark.parametrize("name, value", [("JAX_PLATFORMS", "cpu"), ("TPU_NAME", "my-tpu"),
                                         ("JAX_FORCE_TPU_INIT", "1")])
def test_an_explicit_choice_is_left_alone(monkeypatch, name, value):
  monkeypatch.setenv(name, value)
  monkeypatch.setattr(platforms, "accelerator_present", lambda: False)
  assert not platforms.use_cpu_without_accelerators()


@pytest.mark.parametrize("accelerator", [True, False])
def test_cpu_is_chosen_only_without_an_accelerator(monkeypatch, accelerator):
  import jax
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  for name in platforms.TPU_SETTINGS:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(platforms, "accelerator_present", lambda: accelerator)
  before = jax.config.jax_platforms
  jax.config.update("jax_platforms", None)  # as in a process whose user chose nothing
  try:
    assert platforms.use_cpu_without_accelerators() is (not accelerator)
    assert (os.environ.get("JAX_PLATFORMS") == "cpu") is (not accelerator)
    assert (jax.config.jax_platforms == "cpu") is (not accelerator)
  finally:
    jax.config.update("jax_platforms", before)
