"""Training: a typed config -> mesh, data, sharded state -> the loop -> orbax checkpoints and metrics.

`train(config, workdir)` runs the same way on a laptop CPU and on a TPU pod: every process builds the same
mesh, reads only its own batch rows, and takes part in every save. A workdir with checkpoints resumes from the
latest complete step (params, optimizer, data position); `config.init_from` starts from another checkpoint's
params (fine-tuning a converted model). The pieces: setup (state layout, data, compiled steps), resume (where
the run starts), loop (the steps).
"""

from __future__ import annotations

import logging
import os
import time

import jax

from fot_jax.data.instruct import InstructDataError
from fot_jax.train import checkpoint as ckpt
from fot_jax.train import config_paths, loop, resume
from fot_jax.train.barrier import StartupBarrierError, startup_barrier
from fot_jax.train.config import TrainConfig
from fot_jax.train.errors import TrainingError
from fot_jax.train.hf_export import PeriodicExporter
from fot_jax.train.loop import LoopContext, TrainResult
from fot_jax.train.setup import (
    build_data, check_workdir, initialize_distributed, jit_eval_step, jit_train_step, remove_if_empty, state_layout)

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "remove_if_empty", "state_layout", "train"]
log = logging.getLogger("fot_jax.train")


def train(config: TrainConfig, workdir: str) -> TrainResult:
  """Trains config.num_steps steps in workdir (resuming if it holds checkpoints). See module doc.

  A start that fails before writing any file removes the workdir it created, so no empty workdir is left.
  """
  if not isinstance(config, TrainConfig):
    raise TypeError(f"train() takes a TrainConfig (TrainConfig.from_config_dict(...)), found {type(config)}")
  created = not os.path.exists(workdir)
  try:
    return _train(config, workdir)
  except BaseException:
    if created and jax.process_index() == 0:
      remove_if_empty(workdir)
    raise


def _train(config: TrainConfig, workdir: str) -> TrainResult:
  initialize_distributed(config.distributed)
  config.check_devices(jax.device_count(), jax.process_count())
  config_paths.check_exist(config)  # before the workdir exists: a missing file leaves nothing behind
  check_workdir(workdir)
  try:
    startup_barrier(float(config.distributed.initialization_timeout), process_index=jax.process_index(),
                    process_count=jax.process_count())
  except StartupBarrierError as e:
    raise TrainingError(str(e)) from e
  mesh = config.mesh.build()
  optimizer, schedule = config.optim.build(config.num_steps)
  abstract, shardings = state_layout(config.model, optimizer, mesh)
  t0 = time.perf_counter()
  try:
    data = build_data(config, mesh)
  except InstructDataError as e:  # a malformed data line is the user's to fix: one line, exit 2, no traceback
    raise TrainingError(str(e)) from e
  log.info("mesh %s over %d devices (%d processes); %s params; data ready in %.1fs", dict(mesh.shape),
           jax.device_count(), jax.process_count(), f"{config.model.num_params():,}", time.perf_counter() - t0)

  config_json = config.to_json()
  if data.sentencepiece_model:  # the export bundles the vocabulary files recorded here
    config_json["data"]["sentencepiece_model"] = data.sentencepiece_model
  if data.hf_tokenizer:
    config_json["data"]["hf_tokenizer"] = data.hf_tokenizer

  manager = ckpt.make_manager(workdir, max_to_keep=config.checkpoint.keep,
                              save_interval_steps=config.checkpoint.every_steps,
                              async_save=config.checkpoint.async_save)
  is_main = jax.process_index() == 0
  exporter = PeriodicExporter(workdir, config.checkpoint.export_hf_every, config.model, config_json, is_main)
  try:
    state, start = resume.init_or_restore(config, workdir, manager, optimizer, abstract, shardings, data,
                                          config_json)
    ctx = LoopContext(config=config, config_json=config_json, workdir=workdir, manager=manager, mesh=mesh, data=data,
                      train_step=jit_train_step(config, mesh, optimizer, schedule, shardings),
                      eval_step=jit_eval_step(config, mesh, shardings), is_main=is_main,
                      exporter=exporter)
    with jax.set_mesh(mesh):  # kernels under shard_map (splash) partition over the ambient mesh
      result = loop.run(ctx, state, start)
    ckpt.finish_saves(manager)
    return result
  finally:
    exporter.wait()
    try:
      manager.wait_until_finished()
      manager.close()
    except Exception:  # noqa: BLE001 - a failed save is already being reported (finish_saves or save)
      log.debug("closing the checkpoint manager after a failed save", exc_info=True)
