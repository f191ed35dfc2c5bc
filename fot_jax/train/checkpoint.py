"""Orbax checkpoints of fot_jax (the only module that knows orbax).

Layout: <workdir>/checkpoints/<step>/{state, data_state, config}
  state:      PyTree {"params": ..., "opt_state": ... (optional), "step": int}
  data_state: JSON, the batcher's get_state() (optional)
  config:     JSON, {"model": ModelConfig.to_dict(), ...the resolved run config...}
Orbax writes each step to a temporary directory and renames it when complete, so a crash never leaves a step
that restore would pick up half-written.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from fot_jax.model.config import ModelConfig
from fot_jax.model.params import abstract_params

CHECKPOINT_SUBDIR = "checkpoints"


def checkpoint_dir(workdir: str) -> str:
  """<workdir>/checkpoints, absolute for local paths (orbax refuses relative ones); gs:// kept as is."""
  if "://" not in workdir:
    workdir = os.path.abspath(workdir)
  return os.path.join(workdir, CHECKPOINT_SUBDIR)


def make_manager(workdir: str, *, max_to_keep: int | None = 3, save_interval_steps: int = 1,
                 async_save: bool = True, read_only: bool = False) -> ocp.CheckpointManager:
  """A CheckpointManager over the three items, with keep-N, interval policy and async saves."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, save_interval_steps=save_interval_steps,
      enable_async_checkpointing=async_save, read_only=read_only, create=not read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_names=("state", "data_state", "config"))


def save(manager: ocp.CheckpointManager, step: int, state: dict[str, Any], config: dict[str, Any],
         data_state: dict[str, Any] | None = None, force: bool = False) -> bool:
  """Saves one step (asynchronously when the manager is async). Returns whether a save was started."""
  items = {"state": ocp.args.StandardSave(state), "config": ocp.args.JsonSave(config)}
  items["data_state"] = ocp.args.JsonSave(data_state if data_state is not None else {})
  return manager.save(step, args=ocp.args.Composite(**items), force=force)


def latest_step(workdir: str) -> int | None:
  """The newest complete step under workdir, or None."""
  if not os.path.isdir(checkpoint_dir(workdir)) and "://" not in workdir:
    return None
  with make_manager(workdir, read_only=True) as manager:
    return manager.latest_step()


def restore_config(workdir: str, step: int | None = None) -> tuple[int, dict[str, Any]]:
  """(step, stored config JSON) of `step` (default: latest)."""
  with make_manager(workdir, read_only=True) as manager:
    step = _resolve_step(manager, workdir, step)
    restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return step, restored["config"]


def restore(manager: ocp.CheckpointManager, step: int, target_state: Any) -> tuple[Any, dict[str, Any]]:
  """Restores (state, data_state) of `step` onto target_state's shapes, dtypes and shardings.

  target_state may hold ShapeDtypeStructs with shardings (restoring onto a different mesh works).
  """
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target_state), data_state=ocp.args.JsonRestore()))
  return restored["state"], restored["data_state"]


def _resolve_step(manager: ocp.CheckpointManager, workdir: str, step: int | None) -> int:
  steps = manager.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoint found under {checkpoint_dir(workdir)}")
  if step is None:
    return max(steps)
  if step not in steps:
    raise FileNotFoundError(f"checkpoint step {step} not found under {checkpoint_dir(workdir)}; "
                            f"available steps: {sorted(steps)}")
  return step


def load_params(workdir: str, step: int | None = None, sharding: Any = None) -> tuple[Any, ModelConfig, int]:
  """(params, model config, step) from a training or converted checkpoint, without the optimizer state."""
  step, config = restore_config(workdir, step)
  model_config = ModelConfig.from_dict(config["model"])
  target = abstract_params(model_config)
  if sharding is None:  # one device by default; arrays saved from numpy carry no sharding of their own
    sharding = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), target)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), target, sharding)
  with make_manager(workdir, read_only=True) as manager:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            item={"params": target},
            restore_args={"params": jax.tree.map(lambda a: ocp.ArrayRestoreArgs(
                dtype=a.dtype, sharding=getattr(a, "sharding", None)), target)},
            partial_restore=True)))
  return restored["state"]["params"], model_config, step


def save_params_checkpoint(workdir: str, params: Any, model_config: ModelConfig, step: int = 0,
                           extra_config: dict[str, Any] | None = None) -> str:
  """Writes params as a step of a new checkpoint directory (conversion output). Refuses existing checkpoints."""
  if latest_step(workdir) is not None:
    raise FileExistsError(f"{checkpoint_dir(workdir)} already holds checkpoints; refusing to overwrite")
  config = {"model": model_config.to_dict(), **(extra_config or {})}
  with make_manager(workdir, async_save=False) as manager:
    save(manager, step, {"params": params, "step": step}, config)
    manager.wait_until_finished()
  return checkpoint_dir(workdir)


# ---- trainer helpers: restore onto a mesh, clear errors --------------------------------------------------------
def with_shardings(abstract: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying target shardings: restore places every array straight onto the new mesh."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def restore_training(manager: ocp.CheckpointManager, workdir: str, step: int, target_state: Any
                     ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
  """(state, data_state, stored config) of `step`, or a RuntimeError that names the damaged checkpoint."""
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target_state), data_state=ocp.args.JsonRestore(),
        config=ocp.args.JsonRestore()))
  except Exception as e:  # noqa: BLE001 - orbax raises many types; the user needs the path and the cause
    raise RuntimeError(f"checkpoint step {step} under {checkpoint_dir(workdir)} cannot be restored "
                       f"({type(e).__name__}: {e}). It is left untouched; move it away to resume from an "
                       f"earlier step, or use a new --workdir.") from e
  return restored["state"], restored["data_state"] or {}, restored["config"] or {}


def all_steps(workdir: str) -> list[int]:
  """Complete steps under workdir (orbax ignores its temporary, uncommitted directories)."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    return []
  with make_manager(workdir, read_only=True) as manager:
    return sorted(manager.all_steps())
