"""The training loop: config -> mesh, data, sharded state -> jitted steps -> orbax checkpoints and metrics.

`train(config, workdir)` runs the same way on a laptop CPU and on a TPU pod: every process builds the same
mesh, reads only its own batch rows, and takes part in every save. A workdir with checkpoints resumes from the
latest complete step (params, optimizer, data position); `config.init_from` starts from another checkpoint's
params (fine-tuning a converted model).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import time
from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fot_jax.data.instruct import InstructDataError
from fot_jax.model.config import ModelConfig
from fot_jax.model.params import init_params, logical_axes
from fot_jax.train import checkpoint as ckpt
from fot_jax.train import config_paths, config_validation, metrics as metrics_lib, optim, plans, step as step_lib
from fot_jax.train.barrier import StartupBarrierError, startup_barrier
from fot_jax.train.config_validation import ConfigError
from fot_jax.train.errors import CheckpointConfigMismatch, TrainingError, UnreadableCheckpointError
from fot_jax.train.hf_export import PeriodicExporter
from fot_jax.train.sharding import batch_sharding, make_mesh, replicated, tree_shardings

log = logging.getLogger("fot_jax.train")


@dataclasses.dataclass
class TrainResult:
  step: int  # steps completed (== the last checkpoint's step unless stopped early)
  history: list[dict[str, float]]  # per logged step, process 0
  stopped: str = "finished"  # "finished" | "preempted"


# ---- setup ---------------------------------------------------------------------------------------------------
def initialize_distributed(dist) -> None:
  """jax.distributed.initialize: explicit coordinator (CPU/GPU), or auto-detected on TPU pods.

  num_processes == 0 with no coordinator address means "ask the platform" (TPU VMs and GKE know their peers).
  """
  if jax.distributed.is_initialized():
    return
  if not dist.coordinator_address and dist.num_processes == 0:
    jax.distributed.initialize()
    return
  if not dist.coordinator_address or dist.num_processes <= 1:
    return
  try:
    jax.distributed.initialize(coordinator_address=dist.coordinator_address, num_processes=dist.num_processes,
                               process_id=dist.process_id,
                               initialization_timeout=int(dist.initialization_timeout))
  except Exception as e:  # noqa: BLE001
    raise TrainingError(f"jax.distributed.initialize: process {dist.process_id} of {dist.num_processes} could not "
                        f"join the coordinator at {dist.coordinator_address} within "
                        f"{dist.initialization_timeout}s ({e}); every process must start with the same "
                        f"coordinator address and a distinct process_id in [0, {dist.num_processes})") from e


def check_workdir(workdir: str) -> None:
  """Fails early, with the path, if the workdir cannot be written."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}_{jax.process_index()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise TrainingError(f"--workdir {workdir!r} is not writable: {e}") from e


def jsonable(value: Any) -> Any:
  """ConfigDict/tuples/numpy -> plain JSON values."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value


def _fit(sharding: NamedSharding, shape: tuple[int, ...], mesh: Mesh) -> NamedSharding:
  """A sharding valid for `shape`: specs longer than the rank or not dividing a dimension fall back to None."""
  spec = tuple(sharding.spec)
  if len(spec) > len(shape):
    return replicated(mesh)
  out = []
  for dim, entry in zip(shape, spec + (None,) * (len(shape) - len(spec))):
    names = (entry,) if isinstance(entry, str) else tuple(entry or ())
    size = int(np.prod([mesh.shape[n] for n in names])) if names else 1
    out.append(entry if dim % size == 0 else None)
  return NamedSharding(mesh, P(*out))


def state_layout(model: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh) -> tuple[Any, Any]:
  """(abstract train state, its shardings): params by the logical rules, optimizer state like its params."""
  abstract = jax.eval_shape(lambda: step_lib.init_state(init_params(model, jax.random.key(0)), optimizer))
  param_sh = tree_shardings(abstract["params"], logical_axes(model), mesh)
  is_sh = lambda x: isinstance(x, NamedSharding)
  opt_sh = optax.tree_map_params(optimizer, lambda _, s: s, abstract["opt_state"], param_sh,
                                 transform_non_params=lambda _: replicated(mesh), is_leaf=is_sh)
  opt_sh = jax.tree.map(lambda a, s: _fit(s, a.shape, mesh), abstract["opt_state"], opt_sh)
  return abstract, {"params": param_sh, "opt_state": opt_sh, "step": replicated(mesh)}


@dataclasses.dataclass
class DataBundle:
  train: Any  # DocumentBatcher over this process's rows
  make_eval: Any  # () -> iterator of eval batches (fresh each evaluation), or None
  sentencepiece_model: str  # "" unless a SentencePiece vocabulary is used
  hf_tokenizer: str = ""  # the tokenizer.json of a Hugging Face vocabulary ('hf:<path>'), else ""


def build_data(config, model: ModelConfig, mesh: Mesh) -> DataBundle:
  """Vocabulary + train/validation batchers for this process's rows of the batch sharding."""
  from fot_jax.data import multihost, pipeline
  from fot_jax.data.vocab import VocabConfig, build_vocabulary
  d = config.data
  data_dir = d.data_dir or None
  vocab = build_vocabulary(VocabConfig(name=d.vocab, data_dir=data_dir))
  sp_path = getattr(vocab, "sentencepiece_model_file", "") or ""
  sharding = batch_sharding(mesh)
  pidx, pcount = multihost.process_split(sharding, d.batch_size, d.seq_len, config.fot.k)
  train = pipeline.make_batcher(d.task, "train", vocab, d.batch_size, d.seq_len, k=config.fot.k,
                                micro_batches=d.micro_batches, seed=config.seed, process_index=pidx,
                                process_count=pcount, data_dir=data_dir, shuffle=d.shuffle,
                                model_vocab_size=model.vocab_size, align_documents=d.align_documents,
                                subset_paths=dict(d.get("subset_paths") or {}))
  make_eval = None
  if config.eval.every_steps:
    e = config.eval
    epidx, epcount = multihost.process_split(sharding, e.batch_size, d.seq_len, e.k)

    def make_eval():
      batcher = pipeline.make_batcher(d.task, "validation", vocab, e.batch_size, d.seq_len, k=e.k, seed=config.seed,
                                      process_index=epidx, process_count=epcount, data_dir=data_dir,
                                      shuffle=False, model_vocab_size=model.vocab_size,
                                      align_documents=d.align_documents,
                                      subset_paths=dict(d.get("subset_paths") or {}))
      return (batcher.next_batch() for _ in range(e.num_batches))
    make_eval()  # fail now, not at the first evaluation, if the split cannot be batched
  return DataBundle(train, make_eval, sp_path, getattr(vocab, "tokenizer_file", "") or "")


def global_array(mesh_sharding: NamedSharding, value: np.ndarray, global_shape: tuple[int, ...]) -> jax.Array:
  return jax.make_array_from_process_local_data(mesh_sharding, np.asarray(value), global_shape)


def plan_array(plan, mesh: Mesh) -> jax.Array:
  """The plan's runtime mask visible [B_micro, W], replicated (its window W is the compiled shape)."""
  return global_array(replicated(mesh), plan.visible, plan.visible.shape)


# ---- the loop ------------------------------------------------------------------------------------------------
class _Preemption:
  """SIGTERM -> save at the next step boundary and stop (in addition to orbax's reached_preemption)."""

  def __init__(self):
    self.requested = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread
      self._old = None
    return self

  def _handle(self, signum, frame):
    self.requested = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


def train(config, workdir: str) -> TrainResult:
  """Trains config.num_steps steps in workdir (resuming if it holds checkpoints). See module doc.

  A start that fails before writing any file removes the workdir it created, so no empty workdir is left.
  """
  created = not os.path.exists(workdir)
  try:
    return _train(config, workdir)
  except BaseException:
    if created and jax.process_index() == 0:
      remove_if_empty(workdir)
    raise


def remove_if_empty(path: str) -> None:
  """Removes the directory tree at path if it holds no files (only empty directories)."""
  if not os.path.isdir(path) or any(files for _, _, files in os.walk(path)):
    return
  for root, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
    os.rmdir(root)


def _train(config, workdir: str) -> TrainResult:
  initialize_distributed(config.distributed)
  model = config_validation.validate(config, num_devices=jax.device_count(), process_count=jax.process_count())
  config_paths.check_exist(config)  # before the workdir exists: a missing file leaves nothing behind
  check_workdir(workdir)
  try:
    startup_barrier(float(config.distributed.initialization_timeout), process_index=jax.process_index(),
                    process_count=jax.process_count())
  except StartupBarrierError as e:
    raise TrainingError(str(e)) from e
  is_main = jax.process_index() == 0
  mesh = make_mesh(tuple(config.mesh.shape))
  optimizer, schedule = optim.make_optimizer(config.optim, config.num_steps)
  abstract, shardings = state_layout(model, optimizer, mesh)
  t0 = time.perf_counter()
  try:
    data = build_data(config, model, mesh)
  except InstructDataError as e:  # a malformed data line is the user's to fix: one line, exit 2, no traceback
    raise TrainingError(str(e)) from e
  log.info("mesh %s over %d devices (%d processes); %s params; data ready in %.1fs", dict(mesh.shape),
           jax.device_count(), jax.process_count(), f"{model.num_params():,}", time.perf_counter() - t0)

  config_json = jsonable(config)
  config_json["model"] = model.to_dict()
  if data.sentencepiece_model:
    config_json["data"]["sentencepiece_model"] = data.sentencepiece_model
  if data.hf_tokenizer:  # the export writes these tokenizer files
    config_json["data"]["hf_tokenizer"] = data.hf_tokenizer

  manager = ckpt.make_manager(workdir, max_to_keep=config.checkpoint.keep,
                              save_interval_steps=config.checkpoint.every_steps,
                              async_save=config.checkpoint.async_save)
  exporter = PeriodicExporter(workdir, config.checkpoint.export_hf_every, model, config_json, is_main)
  try:
    state, start = _init_or_restore(config, workdir, manager, model, optimizer, abstract, shardings, data,
                                    config_json)
    with jax.set_mesh(mesh):  # kernels under shard_map (splash) partition over the ambient mesh
      result = _loop(config, workdir, manager, model, mesh, optimizer, schedule, state, start, shardings, data,
                     config_json, is_main, exporter)
    ckpt.finish_saves(manager)
    return result
  finally:
    exporter.wait()
    try:
      manager.wait_until_finished()
      manager.close()
    except Exception:  # noqa: BLE001 - a failed save is already being reported (finish_saves or save)
      log.debug("closing the checkpoint manager after a failed save", exc_info=True)


# Config fields (paths in the resolved config) that fix the shapes of the saved train state.
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


def _init_or_restore(config, workdir, manager, model, optimizer, abstract, shardings, data, config_json):
  if manager.all_steps():
    return _resume(config_json, workdir, manager, abstract, shardings, data)
  init = jax.jit(lambda key: step_lib.init_state(init_params(model, key), optimizer), out_shardings=shardings)
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


def _evaluate(eval_fn, params, data: DataBundle, config, mesh) -> dict[str, float]:
  e = config.eval
  plan = plans.make_plan(_eval_fot(config), e.batch_size, int(e.d))
  visible = plan_array(plan, mesh)
  sharding = batch_sharding(mesh)
  ce = correct = tokens = 0.0
  for batch in data.make_eval():
    gb = {k: global_array(sharding, v, (e.batch_size,) + v.shape[1:]) for k, v in batch.items()}
    out = jax.device_get(eval_fn(params, gb, visible))
    ce, correct, tokens = ce + out["ce_sum"], correct + out["correct_sum"], tokens + out["tokens"]
  tokens = max(tokens, 1.0)
  return {"loss": ce / tokens, "accuracy": correct / tokens, "tokens": tokens}


def _eval_fot(config):
  import ml_collections
  return ml_collections.ConfigDict({"plan": "released", "k": config.eval.k, "stepping": config.eval.stepping,
                                    "d_schedule": "fixed", "d": config.eval.d})


def jit_train_step(config, model, mesh, optimizer, schedule, shardings):
  """The jitted train step: state/batch shardings, donation of the state; compiles once per distinct window W."""
  d_cfg = config.data
  micro_size = d_cfg.batch_size // d_cfg.micro_batches
  sharding = batch_sharding(mesh)
  batch_axes = int(np.prod([mesh.shape[a] for a in ("data", "fsdp")]))
  micro_sharding = sharding if micro_size % batch_axes == 0 and d_cfg.micro_batches > 1 else None
  activations = step_lib.activation_sharding_for(mesh, micro_size)
  train_step = step_lib.make_train_step(model, optimizer, schedule, d_cfg.micro_batches, config.mesh.scan_layers,
                                        config.mesh.remat, micro_sharding, activations)
  batch_sh = {k: sharding for k in ("inputs", "targets", "loss_mask", "input_mask")}
  rep = replicated(mesh)
  return jax.jit(train_step, in_shardings=(shardings, batch_sh, rep), out_shardings=(shardings, rep),
                 donate_argnums=0)


def _loop(config, workdir, manager, model, mesh, optimizer, schedule, state, start, shardings, data,
          config_json, is_main, exporter: PeriodicExporter) -> TrainResult:
  d_cfg = config.data
  micro_size = d_cfg.batch_size // d_cfg.micro_batches
  jitted = jit_train_step(config, model, mesh, optimizer, schedule, shardings)
  sharding = batch_sharding(mesh)
  batch_sh = {k: sharding for k in ("inputs", "targets", "loss_mask", "input_mask")}
  rep = replicated(mesh)
  eval_fn = jax.jit(step_lib.make_eval_step(model, config.mesh.scan_layers,
                                            step_lib.activation_sharding_for(mesh, config.eval.batch_size)),
                    in_shardings=(shardings["params"], batch_sh, rep), out_shardings=rep)
  plan_cache = plans.PlanCache(config.fot, micro_size)
  logger = metrics_lib.MetricLogger(workdir, tensorboard=config.log.tensorboard, enabled=is_main)
  peak = metrics_lib.device_peak_flops(jax.devices()[0], config.log.device_peak_flops)
  tokens_per_step = d_cfg.batch_size * d_cfg.seq_len
  history: list[dict[str, float]] = []
  compiled_d: set[int] = set()
  window_t, window_steps = time.perf_counter(), 0
  run_t, run_steps = time.perf_counter(), 0
  step = start
  stopped = "finished"
  if start == 0 and is_main:
    logger.write_hparams({k: json.dumps(v) for k, v in config_json.items()})
  if start >= config.num_steps:
    log.info("workdir %s already holds step %d >= num_steps=%d; nothing to do", workdir, start, config.num_steps)
  try:
    with _Preemption() as preemption:
      while step < config.num_steps:
        d = plans.d_at(config.fot, step, config.seed)
        visible = plan_array(plan_cache(d), mesh)
        local = data.train.next_batch()
        batch = {k: global_array(sharding, v, (d_cfg.batch_size,) + v.shape[1:]) for k, v in local.items()}
        new_d = d not in compiled_d
        t_step = time.perf_counter()
        state, m = jitted(state, batch, visible)
        m = jax.device_get(m)
        if new_d:
          log.info("step %d: compiled and ran the train step for d=%d in %.1fs", step + 1, d,
                   time.perf_counter() - t_step)
        step += 1
        if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
          ckpt.finish_saves(manager)
          last = manager.latest_step()
          raise TrainingError(
              f"non-finite loss at step {step} (loss={m['loss']}, grad_norm={m['grad_norm']}, d={d}); stopped "
              f"without saving. The last good checkpoint is step {last} in {ckpt.checkpoint_dir(workdir)}. "
              f"Lower config.optim.learning_rate or enable config.optim.grad_clip, then rerun to resume.")
        if new_d:  # the compile is not throughput
          compiled_d.add(d)
          window_t, window_steps = time.perf_counter(), 0
          run_t, run_steps = time.perf_counter(), 0
        else:
          window_steps += 1
          run_steps += 1
        if step % config.log.every_steps == 0 or step == config.num_steps:
          now = time.perf_counter()
          scalars = {k: float(v) for k, v in m.items() if k != "tokens"}
          scalars["d"] = d
          if window_steps:
            tps = window_steps * tokens_per_step / (now - window_t)
            scalars["tokens_per_s"] = tps
            scalars["mfu"] = metrics_lib.mfu(tps, model.flops_per_token(d_cfg.seq_len, d), jax.device_count(),
                                             peak)
          window_t, window_steps = now, 0
          logger.write(step, scalars)
          history.append({"step": step, **scalars})
          if is_main:
            print(metrics_lib.progress_line(step, config.num_steps, scalars, now - run_t, run_steps), flush=True)
        if config.eval.every_steps and data.make_eval and (step % config.eval.every_steps == 0
                                                           or step == config.num_steps):
          ev = _evaluate(eval_fn, state["params"], data, config, mesh)
          logger.write(step, ev, kind="eval")
          history.append({"step": step, **{f"eval_{k}": v for k, v in ev.items()}})
          if is_main:
            print(f"eval step {step}: loss {ev['loss']:.4f} acc {ev['accuracy']:.3f}", flush=True)
          window_t = time.perf_counter()
        # Multi-process runs rely on orbax's reached_preemption (jax's preemption service agrees on one step
        # across hosts); a local SIGTERM flag alone could make hosts disagree about whether to save.
        preempted = manager.reached_preemption(step) or (preemption.requested and jax.process_count() == 1)
        # The interval policy is ours (orbax would also save the first step of a fresh run); orbax keeps N.
        if preempted or step == config.num_steps or step % config.checkpoint.every_steps == 0:
          ckpt.save(manager, step, state, config_json, data.train.get_state(), force=True)
        exporter.maybe_export(step, state["params"])
        if preempted:
          stopped = "preempted"
          log.warning("preemption requested: saved step %d, stopping", step)
          if is_main:
            print(f"preempted: saved step {step} in {ckpt.checkpoint_dir(workdir)}", flush=True)
          break
  finally:
    logger.close()
  return TrainResult(step=step, history=history, stopped=stopped)
