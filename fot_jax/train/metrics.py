"""Training metrics: writers (TensorBoard through clu + a JSONL file), MFU, and the console progress line.

MFU = achieved model FLOP/s / (peak FLOP/s per device * devices), with the analytic FLOPs of
ModelConfig.flops_per_token (causal attention at half, crossbatch attention in full). Peaks are the vendors'
dense bf16 numbers; the CPU peak is measured (an f32 matmul through XLA) because it depends on the host.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fot_jax.train import tpu_specs

# Dense bf16 peak FLOP/s per JAX device, by device_kind: TPUs from the one table in tpu_specs, plus GPUs.
PEAK_FLOPS: dict[str, float] = {
    **{kind: tpu_specs.SPECS[gen].peak_flops for kind, gen in tpu_specs.KINDS.items()},
    "h100": 989e12,  # SXM, dense bf16 ("NVIDIA H100 80GB HBM3")
    "h200": 989e12,  # the H100's compute with more, faster memory ("NVIDIA H200")
    "a100": 312e12,
}

_CPU_PEAK: float | None = None


def measure_cpu_peak(size: int = 1024, repeats: int = 5) -> float:
  """Measured f32 matmul FLOP/s of this host through XLA (the MFU denominator on CPU); cached per process."""
  global _CPU_PEAK
  if _CPU_PEAK is None:
    cpu = jax.local_devices(backend="cpu")[0]  # this process's own device (multi-host safe)
    # A one-device mesh of its own: the measurement must not depend on the caller's ambient mesh.
    with jax.set_mesh(jax.sharding.Mesh(np.asarray([cpu]), ("host",))):
      a = jax.device_put(jnp.ones((size, size), jnp.float32), cpu)
      mm = jax.jit(lambda x: x @ x)
      mm(a).block_until_ready()
      best = float("inf")
      for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    _CPU_PEAK = 2 * size ** 3 / best
  return _CPU_PEAK


def device_peak_flops(device: jax.Device | None = None, override: float = 0.0) -> float:
  """Peak FLOP/s of one device: override if > 0, else the table by device_kind, else the measured CPU peak."""
  if override and override > 0:
    return float(override)
  device = device or jax.devices()[0]
  kind = getattr(device, "device_kind", "").lower()
  for name in sorted(PEAK_FLOPS, key=len, reverse=True):
    if name in kind:
      return PEAK_FLOPS[name]
  if device.platform == "cpu":
    # Fake CPU devices share the same cores: the host peak is the peak of all of them together.
    return measure_cpu_peak() / max(len(jax.local_devices(backend="cpu")), 1)
  raise ValueError(f"no peak FLOP/s known for device kind {kind!r}; set config.log.device_peak_flops")


def mfu(tokens_per_s: float, flops_per_token: float, num_devices: int, peak_per_device: float) -> float:
  return tokens_per_s * flops_per_token / (peak_per_device * num_devices)


class MetricLogger:
  """Writes scalars to TensorBoard (clu) and <workdir>/metrics.jsonl on process 0; no-op elsewhere."""

  def __init__(self, workdir: str, tensorboard: bool = True, enabled: bool = True):
    self.enabled = enabled
    self.writer = None
    self.jsonl = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
    if tensorboard:
      try:
        from clu import metric_writers  # imports TensorFlow (and needs the tensorboard package): only when asked
      except ImportError as e:
        logging.getLogger("fot_jax.train").warning("TensorBoard logging off (%s); metrics go to metrics.jsonl", e)
      else:
        self.writer = metric_writers.create_default_writer(os.path.join(workdir, "tensorboard"),
                                                           just_logging=False, asynchronous=True)

  def write(self, step: int, scalars: Mapping[str, Any], kind: str = "train") -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in scalars.items()}
    self.jsonl.write(json.dumps({"step": int(step), "kind": kind, **values}) + "\n")
    self.jsonl.flush()
    if self.writer is not None:
      self.writer.write_scalars(step, {f"{kind}/{k}": v for k, v in values.items()})

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    if self.enabled and self.writer is not None:
      flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
      self.writer.write_hparams(flat)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.flush()
      self.writer.close()
      self.writer = None
    if self.jsonl is not None:
      self.jsonl.close()
      self.jsonl = None


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_line(step: int, num_steps: int, scalars: Mapping[str, float], elapsed: float,
                  steps_done: int) -> str:
  """'step 120/400 (30%) loss 3.12 acc 0.41 | 9.8k tok/s MFU 12.3% | ETA 01:05'."""
  rate = steps_done / elapsed if elapsed > 0 and steps_done else 0.0
  eta = (num_steps - step) / rate if rate else float("nan")
  parts = [f"step {step}/{num_steps} ({100 * step / num_steps:.0f}%)"]
  for key, fmt in (("loss", "loss {:.4f}"), ("accuracy", "acc {:.3f}"), ("grad_norm", "gnorm {:.3f}"),
                   ("learning_rate", "lr {:.2e}"), ("d", "d {:.0f}")):
    if key in scalars:
      parts.append(fmt.format(scalars[key]))
  line = " ".join(parts)
  if "tokens_per_s" in scalars:
    line += f" | {scalars['tokens_per_s'] / 1e3:.1f}k tok/s"
  if "mfu" in scalars:
    line += f" MFU {100 * scalars['mfu']:.1f}%"
  line += f" | ETA {_fmt_time(eta) if np.isfinite(eta) else '?'}"
  return line
