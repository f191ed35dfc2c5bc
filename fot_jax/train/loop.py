"""The training loop: one plan and one batch per step through the jitted step, then logging, evaluation and
checkpoints at their intervals; SIGTERM (or orbax's preemption notice) saves the current step and stops."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import time
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from fot_jax.train import checkpoint as ckpt
from fot_jax.train import metrics as metrics_lib
from fot_jax.train.config import PlanChoice, TrainConfig
from fot_jax.train.errors import TrainingError
from fot_jax.train.hf_export import PeriodicExporter
from fot_jax.train.setup import DataBundle, global_array, plan_array
from fot_jax.train.sharding import batch_sharding

log = logging.getLogger("fot_jax.train")


@dataclasses.dataclass
class TrainResult:
  step: int  # steps completed (== the last checkpoint's step unless stopped early)
  history: list[dict[str, float]]  # per logged step, process 0
  stopped: str = "finished"  # "finished" | "preempted"


@dataclasses.dataclass(frozen=True)
class LoopContext:
  """Everything the loop reads but never changes: the run's config, where it writes, and its compiled steps."""
  config: TrainConfig
  config_json: dict[str, Any]  # the config as recorded with every checkpoint
  workdir: str
  manager: Any  # orbax CheckpointManager
  mesh: Mesh
  data: DataBundle
  train_step: Any  # jitted (state, batch, visible) -> (state, metrics)
  eval_step: Any  # jitted (params, batch, visible) -> summed eval metrics
  is_main: bool  # process 0: prints and writes metrics
  exporter: PeriodicExporter  # checkpoint.export_hf_every (a no-op when 0)


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


def _global_batch(ctx: LoopContext, local: dict[str, np.ndarray], batch_size: int) -> dict[str, jax.Array]:
  sharding = batch_sharding(ctx.mesh)
  return {k: global_array(sharding, v, (batch_size,) + v.shape[1:]) for k, v in local.items()}


def evaluate(ctx: LoopContext, params) -> dict[str, float]:
  """Loss and accuracy per token over eval.num_batches held-out batches."""
  e = ctx.config.eval
  visible = plan_array(e.plan(), ctx.mesh)
  ce = correct = tokens = 0.0
  for batch in ctx.data.make_eval():
    out = jax.device_get(ctx.eval_step(params, _global_batch(ctx, batch, e.batch_size), visible))
    ce, correct, tokens = ce + out["ce_sum"], correct + out["correct_sum"], tokens + out["tokens"]
  tokens = max(tokens, 1.0)
  return {"loss": ce / tokens, "accuracy": correct / tokens, "tokens": tokens}


class _Throughput:
  """Tokens/s and MFU between log lines, restarted after every compile (a compile is not throughput)."""

  def __init__(self, ctx: LoopContext):
    c = ctx.config
    self.model, self.seq_len = c.model, c.data.seq_len
    self.tokens_per_step = c.data.batch_size * c.data.seq_len
    self.peak = metrics_lib.device_peak_flops(jax.devices()[0], c.log.device_peak_flops)
    self.window_t = self.run_t = time.perf_counter()
    self.window_steps = self.run_steps = 0

  def restart(self):
    self.window_t = self.run_t = time.perf_counter()
    self.window_steps = self.run_steps = 0

  def count(self):
    self.window_steps += 1
    self.run_steps += 1

  def scalars(self, now: float, d: int) -> dict[str, float]:
    out = {}
    if self.window_steps:
      tps = self.window_steps * self.tokens_per_step / (now - self.window_t)
      out = {"tokens_per_s": tps, "mfu": metrics_lib.mfu(tps, self.model.flops_per_token(self.seq_len, d),
                                                          jax.device_count(), self.peak)}
    self.window_t, self.window_steps = now, 0
    return out


def run(ctx: LoopContext, state, start: int) -> TrainResult:
  """Trains from step `start` to config.num_steps (or a preemption); returns the steps done and the history."""
  c = ctx.config
  plans: dict[PlanChoice, Any] = {}  # each plan of the run, built once (keyed by the plan, not its d)
  logger = metrics_lib.MetricLogger(ctx.workdir, tensorboard=c.log.tensorboard, enabled=ctx.is_main)
  speed = _Throughput(ctx)
  history: list[dict[str, float]] = []
  step, stopped = start, "finished"
  if start == 0 and ctx.is_main:
    logger.write_hparams({k: json.dumps(v) for k, v in ctx.config_json.items()})
  if start >= c.num_steps:
    log.info("workdir %s already holds step %d >= num_steps=%d; nothing to do", ctx.workdir, start, c.num_steps)
  try:
    with _Preemption() as preemption:
      while step < c.num_steps:
        choice = c.fot.choice_at(step, c.seed)
        new_plan = choice not in plans
        if new_plan:
          plans[choice] = plan_array(choice.build(c.data.micro_size, c.fot.k, c.fot.stepping), ctx.mesh)
        batch = _global_batch(ctx, ctx.data.train.next_batch(), c.data.batch_size)
        t_step = time.perf_counter()
        state, m = ctx.train_step(state, batch, plans[choice])
        m = jax.device_get(m)
        if new_plan:
          log.info("step %d: ran the first step of plan %s (W=%d, compiled if new) in %.1fs", step + 1,
                   choice.name, choice.window, time.perf_counter() - t_step)
        step += 1
        if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
          ckpt.finish_saves(ctx.manager)
          raise TrainingError(
              f"non-finite loss at step {step} (loss={m['loss']}, grad_norm={m['grad_norm']}, d={choice.d}); "
              f"stopped without saving. The last good checkpoint is step {ctx.manager.latest_step()} in "
              f"{ckpt.checkpoint_dir(ctx.workdir)}. Lower config.optim.learning_rate or enable "
              f"config.optim.grad_clip, then rerun to resume.")
        if new_plan:
          speed.restart()
        else:
          speed.count()
        if step % c.log.every_steps == 0 or step == c.num_steps:
          now = time.perf_counter()
          scalars = {k: float(v) for k, v in m.items() if k != "tokens"}
          scalars["d"] = choice.d
          scalars.update(speed.scalars(now, choice.d))
          logger.write(step, scalars)
          history.append({"step": step, **scalars})
          if ctx.is_main:
            print(metrics_lib.progress_line(step, c.num_steps, scalars, now - speed.run_t, speed.run_steps),
                  flush=True)
        if c.eval.every_steps and ctx.data.make_eval and (step % c.eval.every_steps == 0 or step == c.num_steps):
          ev = evaluate(ctx, state["params"])
          logger.write(step, ev, kind="eval")
          history.append({"step": step, **{f"eval_{k}": v for k, v in ev.items()}})
          if ctx.is_main:
            print(f"eval step {step}: loss {ev['loss']:.4f} acc {ev['accuracy']:.3f}", flush=True)
          speed.window_t = time.perf_counter()
        # Multi-process runs rely on orbax's reached_preemption (jax's preemption service agrees on one step
        # across hosts); a local SIGTERM flag alone could make hosts disagree about whether to save.
        preempted = ctx.manager.reached_preemption(step) or (preemption.requested and jax.process_count() == 1)
        # The interval policy is ours (orbax would also save the first step of a fresh run); orbax keeps N.
        if preempted or step == c.num_steps or step % c.checkpoint.every_steps == 0:
          ckpt.save(ctx.manager, step, state, ctx.config_json, ctx.data.train.get_state(), force=True)
        ctx.exporter.maybe_export(step, state["params"])
        if preempted:
          stopped = "preempted"
          log.warning("preemption requested: saved step %d, stopping", step)
          if ctx.is_main:
            print(f"preempted: saved step {step} in {ckpt.checkpoint_dir(ctx.workdir)}", flush=True)
          break
  finally:
    logger.close()
  return TrainResult(step=step, history=history, stopped=stopped)
