"""Hugging Face exports during training (`checkpoint.export_hf_every`): a host copy of the params is written by
process 0 in a background thread, so training waits only for the copy (and for a previous export still running).

A failed export is logged as an error and training goes on: an export is a convenience, the orbax checkpoints
remain the record. Folders are written under a temporary name and renamed when complete; an existing folder
(a resumed run reaching the same step) is never overwritten.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from typing import Any

import jax
import numpy as np

from fot_jax.model.config import ModelConfig

log = logging.getLogger(__name__)

EXPORT_SUBDIR = "hf"


def export_dir(workdir: str, step: int) -> str:
  return os.path.join(workdir, EXPORT_SUBDIR, f"step_{step}")


def host_params(params: Any) -> Any:
  """The params as host numpy arrays; a collective across processes when the params span several hosts."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    return multihost_utils.process_allgather(params, tiled=True)
  return jax.tree.map(np.asarray, jax.device_get(params))


class PeriodicExporter:
  """Writes <workdir>/hf/step_<N> every `every` steps (0: never) from process 0; `wait()` joins the last one."""

  def __init__(self, workdir: str, every: int, model: ModelConfig, run_config: dict, is_main: bool):
    self.workdir, self.every, self.model, self.run_config, self.is_main = workdir, every, model, run_config, is_main
    self._thread: threading.Thread | None = None
    self.failures: list[str] = []

  def maybe_export(self, step: int, params: Any) -> None:
    if not self.every or step % self.every:
      return
    params = host_params(params)  # every process takes part; only process 0 writes
    if not self.is_main:
      return
    self.wait()
    self._thread = threading.Thread(target=self._write, args=(step, params), name=f"hf-export-{step}", daemon=True)
    self._thread.start()

  def _write(self, step: int, params: Any) -> None:
    from fot_jax.export import write_export  # pylint: disable=import-outside-toplevel
    final = export_dir(self.workdir, step)
    if os.path.exists(final):
      log.warning("Hugging Face export: %s already exists (a resumed run); left as it is", final)
      return
    tmp = final + ".tmp"
    try:
      shutil.rmtree(tmp, ignore_errors=True)  # a partial folder from an interrupted export
      write_export(tmp, params, self.model, self.run_config, step)
      os.rename(tmp, final)
      log.info("Hugging Face export of step %d written to %s", step, final)
    except Exception as e:  # noqa: BLE001 - an export failure must not stop training; it is reported loudly
      message = f"Hugging Face export of step {step} to {final} FAILED ({type(e).__name__}: {e}); training goes on"
      self.failures.append(message)
      log.error(message, exc_info=True)
      print(f"ERROR: {message}", file=sys.stderr, flush=True)

  def wait(self) -> None:
    if self._thread is not None:
      self._thread.join()
      self._thread = None
