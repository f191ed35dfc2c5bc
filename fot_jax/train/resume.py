"""Where a run starts: the newest readable checkpoint of its workdir (after checking it matches the config), or
fresh params (optionally the params of `init_from`). A config change is an error naming the fields, never a
silent fallback; unreadable steps are set aside, not deleted."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax

from fot_jax.model.modules import FoTLlama
from fot_jax.train import checkpoint as ckpt
from fot_jax.train import step as step_lib
from fot_jax.train.config import TrainConfig
from fot_jax.train.errors import CheckpointConfigMismatch, ConfigError, UnreadableCheckpointError

log = logging.getLogger("fot_jax.train")

# Config fields (paths in the recorded config) that fix the shapes of the saved train state.
STATE_FIELDS = ("model", "optim.optimizer", "optim.grad_clip")
# Batcher fingerprint key -> the config field that sets it (so a changed batch shape names the flag).
FINGERPRINT_FIELDS = {"batch_size": "data.batch_size", "seq_len": "data.seq_len", "k": "fot.k", "seed": "seed",
                      "shuffle": "data.shuffle", "num_epochs": "data.num_epochs", "bos_id": "data.vocab",
                      "eos_id": "data.vocab", "num_docs": "data.task", "align_documents": "data.align_documents"}


def _leaves(value, path: str) -> dict[str, Any]:
  """{'model.num_layers': 3, ...}: the dotted leaves under `path` (JSON-normalised, so tuples equal lists)."""
  if isinstance(value, dict):
    return {k: v for key, sub in value.items() for k, v in _leaves(sub, f"{path}.{key}").items()}
  return {path: json.loads(json.dumps(value))}


def _lookup(tree: dict, path: str):
  for part in path.split("."):
    tree = tree.get(part) if isinstance(tree, dict) else None
  return tree


def config_differences(stored: dict, now: dict, paths=STATE_FIELDS) -> list[str]:
  """'field: checkpoint X, now Y' for every leaf under `paths` whose value differs (grad_clip: on or off)."""
  out = []
  for path in paths:
    old, new = _lookup(stored, path), _lookup(now, path)
    if path == "optim.grad_clip":
      old, new = bool(old), bool(new)
    old, new = _leaves(old, path), _leaves(new, path)
    out += [f"{key}: checkpoint {old.get(key)!r}, now {new.get(key)!r}" for key in sorted({**old, **new})
            if old.get(key) != new.get(key)]
  return out


def config_mismatch(workdir: str, step: int, differences: list[str]) -> CheckpointConfigMismatch:
  """The config-change error: the fields with both values and the ways forward (the checkpoint is fine)."""
  return CheckpointConfigMismatch(
      f"config differs from the checkpoint (step {step} in {ckpt.checkpoint_dir(workdir)}): "
      f"{'; '.join(differences)}. The checkpoint is intact: to resume, run with its values; to train with the new "
      f"config, use a new --workdir, adding --config.init_from={workdir} to start from these params")


def _check_resumable(workdir, step, stored, config_json, data, data_state) -> None:
  """Config and batch layout against the stored step, before any array is read."""
  differences = config_differences(stored, config_json) if stored.get("model") else []
  saved_fp = (data_state or {}).get("fingerprint")
  now_fp = (getattr(data.train, "get_state", dict)() or {}).get("fingerprint") if data_state else None
  if isinstance(saved_fp, dict) and isinstance(now_fp, dict):
    for key in sorted({**saved_fp, **now_fp}):
      if saved_fp.get(key) != now_fp.get(key):
        differences.append(f"{FINGERPRINT_FIELDS.get(key, 'data')} (batcher {key}): checkpoint "
                           f"{saved_fp.get(key)!r}, now {now_fp.get(key)!r}")
  if differences:
    raise config_mismatch(workdir, step, differences)
  if data_state:
    try:
      data.train.set_state(data_state)
    except ValueError as e:
      raise config_mismatch(workdir, step, [f"data: {e}"]) from e


def _resume(config_json, workdir, manager, abstract, shardings, data):
  """(state, step) of the newest readable step. Newer unreadable steps are moved to checkpoints_unreadable/
  (kept, out of reach of later saves) with a warning; a config change is an error, never a fallback."""
  target = ckpt.with_shardings(abstract, shardings)
  bad: list[UnreadableCheckpointError] = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      stored = ckpt.read_config(manager, workdir, step)
      data_state = ckpt.read_data_state(manager, workdir, step)
      _check_resumable(workdir, step, stored, config_json, data, data_state)
      ckpt.check_stored_params(workdir, step, abstract["params"])
      state, _, _ = ckpt.restore_training(manager, workdir, step, target)
    except UnreadableCheckpointError as e:
      if "://" in workdir:  # no rename on object stores: the user moves the step
        raise UnreadableCheckpointError(e.path, e.step, f"{e.problem}; move it out of {ckpt.checkpoint_dir(workdir)} "
                                                        f"to resume from the previous step") from e
      log.warning("%s; trying the previous step", e)
      bad.append(e)
      continue
    if bad:
      _set_aside(workdir, manager, bad, step)
    log.info("resumed from step %d in %s", step, workdir)
    return state, int(step)
  raise UnreadableCheckpointError(ckpt.checkpoint_dir(workdir), bad[0].step,
                                  f"no step is readable ({'; '.join(f'step {e.step}: {e.problem}' for e in bad)}); "
                                  f"they are left in place: use a new --workdir")


def _set_aside(workdir, manager, bad, resumed_step) -> None:
  """Process 0 moves the unreadable steps aside; every process then sees the same step list."""
  moved = []
  if jax.process_index() == 0:
    moved = [ckpt.set_aside(workdir, e.step) for e in bad]
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("fot_jax_set_aside_unreadable_steps")
  manager.reload()
  log.warning("resumed from step %d, the newest readable one; unreadable step(s) %s kept in %s",
              resumed_step, [e.step for e in bad], moved or os.path.join(os.path.dirname(
                  ckpt.checkpoint_dir(workdir)), ckpt.UNREADABLE_SUBDIR))


def init_or_restore(config: TrainConfig, workdir, manager, optimizer, abstract, shardings, data, config_json):
  """(train state, first step): resumed from the workdir's checkpoints, else fresh (or init_from's params)."""
  if manager.all_steps():
    return _resume(config_json, workdir, manager, abstract, shardings, data)
  init = jax.jit(lambda key: step_lib.init_state(FoTLlama(config.model, seed=key).params(), optimizer),
                 out_shardings=shardings)
  state = init(jax.random.key(config.seed))
  if config.init_from:
    params, loaded_model, loaded_step = ckpt.load_params(config.init_from, sharding=shardings["params"])
    want = jax.tree.map(lambda a: (a.shape, str(a.dtype)), abstract["params"])
    got = jax.tree.map(lambda a: (a.shape, str(a.dtype)), params)
    if want != got:
      raise ConfigError(f"config.init_from: the checkpoint in {config.init_from!r} (model {loaded_model}) does "
                        f"not match config.model's parameter shapes")
    state["params"] = params
    state = jax.jit(lambda s: step_lib.init_state(s["params"], optimizer), out_shardings=shardings,
                    donate_argnums=0)(state)
    log.info("initialised params from %s (step %d)", config.init_from, loaded_step)
  return state, 0
