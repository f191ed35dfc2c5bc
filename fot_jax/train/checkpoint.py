"""Orbax checkpoints of fot_jax (the only module that knows orbax).

Layout: <workdir>/checkpoints/<step>/{state, data_state, config}
  state:      PyTree {"params": ..., "opt_state": ... (optional), "step": int}
  data_state: JSON, the batcher's get_state() (optional)
  config:     JSON, {"model": ModelConfig.to_dict(), ...the resolved run config...}
Orbax writes each step to a temporary directory and renames it when complete, so a crash never leaves a step
that restore would pick up half-written. A step that is complete but cannot be read (a file deleted or truncated
afterwards) is reported as UnreadableCheckpointError: its path and what is wrong, in one line.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from fot_jax.model.config import ModelConfig
from fot_jax.model.params import abstract_params
from fot_jax.train.errors import CheckpointSaveError, UnreadableCheckpointError

CHECKPOINT_SUBDIR = "checkpoints"
UNREADABLE_SUBDIR = "checkpoints_unreadable"  # where training moves steps it could not read (kept, never deleted)
# Files every step written by save() holds; a missing one is named instead of orbax's lookup error.
STEP_FILES = ("_CHECKPOINT_METADATA", "state/_METADATA", "state/manifest.ocdbt", "config/metadata",
              "data_state/metadata")


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
  """Saves one step (asynchronously when the manager is async). Returns whether a save was started.

  A failed write (e.g. a full disk), here or from an earlier asynchronous save, is a CheckpointSaveError."""
  items = {"state": ocp.args.StandardSave(state), "config": ocp.args.JsonSave(config)}
  items["data_state"] = ocp.args.JsonSave(data_state if data_state is not None else {})
  try:
    return manager.save(step, args=ocp.args.Composite(**items), force=force)
  except Exception as e:  # noqa: BLE001 - orbax re-raises the async writer's error in many types
    raise save_failed(manager, e) from e


def finish_saves(manager: ocp.CheckpointManager) -> None:
  """Waits for pending asynchronous saves; a failed one is a CheckpointSaveError."""
  try:
    manager.wait_until_finished()
  except Exception as e:  # noqa: BLE001
    raise save_failed(manager, e) from e


def save_failed(manager: ocp.CheckpointManager, error: BaseException) -> CheckpointSaveError:
  """One line: where the save failed, why (the root cause, e.g. no space left) and which steps are intact."""
  root = _root_cause(error)
  directory = str(manager.directory)
  try:
    kept = sorted(int(name) for name in os.listdir(directory) if name.isdigit()) if "://" not in directory else []
  except OSError:
    kept = []
  fix = "free space" if getattr(root, "errno", None) in (errno.ENOSPC, errno.EDQUOT) else "fix the cause"
  resume = (f"the complete steps {kept} are kept; {fix} and rerun the same command to resume from step "
            f"{kept[-1]}" if kept else f"no complete step was written; {fix} and rerun")
  return CheckpointSaveError(f"saving a checkpoint under {directory} failed ({type(root).__name__}: "
                             f"{str(root).splitlines()[0] if str(root) else 'no detail'}); {resume}")


def set_aside(workdir: str, step: int) -> str:
  """Moves an unreadable step to <workdir>/checkpoints_unreadable/<step> (or <step>.<n> if taken), out of reach
  of later saves of the same step number and of orbax's keep-N cleanup; returns the new path."""
  root = os.path.join(os.path.dirname(checkpoint_dir(workdir)), UNREADABLE_SUBDIR)
  os.makedirs(root, exist_ok=True)
  dest, n = os.path.join(root, str(step)), 1
  while os.path.exists(dest):
    dest, n = os.path.join(root, f"{step}.{n}"), n + 1
  os.rename(step_dir(workdir, step), dest)
  return dest


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
    return step, read_config(manager, workdir, step)


def read_config(manager: ocp.CheckpointManager, workdir: str, step: int) -> dict[str, Any]:
  """The stored config JSON of `step`; UnreadableCheckpointError when it cannot be read (or lacks files that
  every read of the step needs: named up front, as orbax's own failure there is a long TensorStore report)."""
  missing = [name for name in missing_step_files(workdir, step) if name in _needed_files(workdir, step)]
  if missing:
    raise UnreadableCheckpointError(step_dir(workdir, step), step, f"missing file {', '.join(missing)}")
  restored = restore_or_name(manager, workdir, step, ocp.args.Composite(config=ocp.args.JsonRestore()))
  if not isinstance(restored["config"], dict):
    raise UnreadableCheckpointError(step_dir(workdir, step), step, "wrong structure: its config is not a JSON object")
  return restored["config"]


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
  """(params, model config, step) from a training or converted checkpoint, without the optimizer state.

  Every stored parameter is checked against the stored model config first (missing, extra, misshaped)."""
  step, config = restore_config(workdir, step)
  try:
    model_config = ModelConfig.from_dict(config["model"])
  except (KeyError, TypeError, ValueError) as e:
    raise UnreadableCheckpointError(step_dir(workdir, step), step,
                                    f"wrong structure: its config holds no valid model ({e})") from e
  target = abstract_params(model_config)
  check_stored_params(workdir, step, target)
  if sharding is None:  # one device by default; arrays saved from numpy carry no sharding of their own
    sharding = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), target)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), target, sharding)
  with make_manager(workdir, read_only=True) as manager:
    restored = restore_or_name(manager, workdir, step, ocp.args.Composite(
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
    finish_saves(manager)
  return checkpoint_dir(workdir)


# ---- trainer helpers: restore onto a mesh, clear errors --------------------------------------------------------
def with_shardings(abstract: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying target shardings: restore places every array straight onto the new mesh."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def restore_training(manager: ocp.CheckpointManager, workdir: str, step: int, target_state: Any
                     ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
  """(state, data_state, stored config) of `step`, or an UnreadableCheckpointError naming the step and the fault."""
  restored = restore_or_name(manager, workdir, step, ocp.args.Composite(
      state=ocp.args.StandardRestore(target_state), data_state=ocp.args.JsonRestore(),
      config=ocp.args.JsonRestore()))
  return restored["state"], restored["data_state"] or {}, restored["config"] or {}


def read_data_state(manager: ocp.CheckpointManager, workdir: str, step: int) -> dict[str, Any]:
  """The stored batcher state of `step` ({} when none was saved)."""
  restored = restore_or_name(manager, workdir, step, ocp.args.Composite(data_state=ocp.args.JsonRestore()))
  return restored["data_state"] or {}


# ---- naming what is wrong with a step -----------------------------------------------------------------------
def restore_or_name(manager: ocp.CheckpointManager, workdir: str, step: int, args: Any) -> Any:
  """manager.restore(step, args), or an UnreadableCheckpointError naming the step and what is wrong."""
  try:
    return manager.restore(step, args=args)
  except Exception as e:  # noqa: BLE001 - orbax raises many types; named by unreadable()
    _quiet_leftover_reads()
    raise unreadable(workdir, step, e) from e


LEFTOVER_READ = "while reading array index"  # orbax's message for a failed read of one array


def _quiet_leftover_reads() -> None:
  """A failed read leaves orbax's reads of the step's other arrays as failed coroutines that Python prints, with
  a TensorStore spec each, when they are collected ('Exception ignored in'). The first failure is reported, so
  these are dropped; every other unraisable exception still reaches the previous hook."""
  previous = sys.unraisablehook
  if getattr(previous, "drops_leftover_reads", False):
    return

  def hook(unraisable):
    if LEFTOVER_READ not in str(unraisable.exc_value):
      previous(unraisable)
  hook.drops_leftover_reads = True
  sys.unraisablehook = hook


def step_dir(workdir: str, step: int) -> str:
  return os.path.join(checkpoint_dir(workdir), str(step))


def missing_step_files(workdir: str, step: int) -> list[str]:
  """STEP_FILES absent from a local step directory ([] for remote workdirs: not checked)."""
  if "://" in workdir:
    return []
  root = step_dir(workdir, step)
  return [name for name in STEP_FILES if not os.path.exists(os.path.join(root, name))]


def _needed_files(workdir: str, step: int) -> tuple[str, ...]:
  """STEP_FILES that any orbax layout of a step holds: the metadata, and the OCDBT manifest when the step's
  arrays are in an OCDBT database (per-process ocdbt.process_* folders)."""
  state = os.path.join(step_dir(workdir, step), "state")
  ocdbt = os.path.isdir(state) and any(name.startswith("ocdbt.process_") for name in os.listdir(state))
  return ("state/_METADATA", "config/metadata") + (("state/manifest.ocdbt",) if ocdbt else ())


def _root_cause(error: BaseException) -> BaseException:
  seen = {id(error)}
  while (error.__cause__ or error.__context__) is not None and id(error.__cause__ or error.__context__) not in seen:
    error = error.__cause__ or error.__context__
    seen.add(id(error))
  return error


_KINDS = (  # (words in the error text, what is wrong), first match wins
    (("OUT_OF_RANGE", "DATA_LOSS", "truncated", "Error reading", "while reading array"),
     "truncated or corrupt data file"),
    (("JSONDecodeError", "Expecting value", "UnicodeDecodeError", "state metadata"), "corrupt metadata"),
    (("NOT_FOUND", "does not exist", "FileNotFoundError", "No such file"), "missing file"),
    (("structure", "was not found in the checkpoint", "KeyError", "shape", "Shape"), "wrong structure"),
)


def describe_failure(error: BaseException) -> str:
  """'<what is wrong>: <orbax's own first line, without the TensorStore spec dump>'."""
  root = _root_cause(error)
  detail = f"{type(root).__name__}: {root}".splitlines()[0]
  for marker in (" [tensorstore_spec", " See full TensorStore details"):
    detail = detail.split(marker)[0]
  detail = detail if len(detail) <= 300 else detail[:300] + "..."
  text = " ".join(f"{type(e).__name__}: {e}" for e in (error, root))
  kind = next((what for words, what in _KINDS if any(w in text for w in words)), "cannot be read")
  return f"{kind} ({detail})"


def unreadable(workdir: str, step: int, error: BaseException) -> UnreadableCheckpointError:
  """The one-line error for a step orbax failed to read: missing files by name, else the kind of fault."""
  missing = missing_step_files(workdir, step)
  problem = f"missing file {', '.join(missing)}" if missing else describe_failure(error)
  return UnreadableCheckpointError(step_dir(workdir, step), step, problem)


def _key_name(entry) -> str:
  for attr in ("key", "idx", "name"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def flat_shapes(tree: Any, prefix: str = "") -> dict[str, tuple[int, ...]]:
  """{'layers/q_proj': shape} of a tree of arrays, ShapeDtypeStructs or orbax ArrayMetadata."""
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
  return {prefix + "/".join(_key_name(k) for k in path): tuple(leaf.shape) for path, leaf in leaves
          if hasattr(leaf, "shape")}


def stored_shapes(workdir: str, step: int) -> dict[str, tuple[int, ...]]:
  """{'params/layers/q_proj': shape} of every array in a step's state, from its metadata (no data read)."""
  try:
    metadata = ocp.PyTreeCheckpointer().metadata(os.path.join(step_dir(workdir, step), "state"))
    tree = getattr(metadata, "item_metadata", metadata)
    if tree is None:
      raise ValueError("no readable state metadata in state/_METADATA")
    return flat_shapes(tree)
  except Exception as e:  # noqa: BLE001
    raise unreadable(workdir, step, e) from e


def check_stored_params(workdir: str, step: int, target_params: Any) -> None:
  """Every stored parameter against target_params (from the stored config): missing, extra or misshaped
  tensors are named as wrong structure, before any data is read."""
  from fot_jax.convert.checks import tensor_problems
  found = {k: v for k, v in stored_shapes(workdir, step).items() if k.startswith("params/")}
  problems = tensor_problems(found, flat_shapes(target_params, "params/"))
  if problems:
    raise UnreadableCheckpointError(step_dir(workdir, step), step,
                                    f"wrong structure: its tensors do not match its config.model: "
                                    f"{'; '.join(problems)}")


def all_steps(workdir: str) -> list[int]:
  """Complete steps under workdir (orbax ignores its temporary, uncommitted directories)."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    return []
  with make_manager(workdir, read_only=True) as manager:
    return sorted(manager.all_steps())
