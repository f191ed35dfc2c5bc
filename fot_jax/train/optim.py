"""Optimisers and learning-rate schedules from config.optim (optax).

AdamW or Adafactor, a schedule (warmup + cosine, warmup + inverse square root, constant), global-norm clipping,
and weight decay with a mask (kernels decay; norms never; embeddings only when asked).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def _constant(lr: float, warmup: int, optim, num_steps: int) -> optax.Schedule:
  if not warmup:
    return optax.constant_schedule(lr)
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])


def _cosine(lr: float, warmup: int, optim, num_steps: int) -> optax.Schedule:
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=max(num_steps, warmup + 1),
      end_value=lr * float(optim.min_lr_ratio))


def _rsqrt(lr: float, warmup: int, optim, num_steps: int) -> optax.Schedule:
  scale = max(warmup, 1)

  def rsqrt(step):
    step = jnp.asarray(step, jnp.float32)
    warm = lr * step / scale
    return jnp.where(step < warmup, warm, lr * jnp.sqrt(scale / jnp.maximum(step, 1.0)))
  return rsqrt


# config.optim.schedule name -> builder (warmup then the named shape); config checks read the names from here.
SCHEDULES = {"cosine": _cosine, "rsqrt": _rsqrt, "constant": _constant}


def make_schedule(optim, num_steps: int) -> optax.Schedule:
  """config.optim -> step -> learning rate."""
  return SCHEDULES[optim.schedule](float(optim.learning_rate), int(optim.warmup_steps), optim, num_steps)


def decay_mask(params: Any, decay_embeddings: bool = False) -> Any:
  """True where weight decay applies: matrices (kernels), not norms/temperatures; embeddings only if asked."""
  def decide(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "embed_tokens":
      return decay_embeddings
    if name.endswith("layernorm") or name in ("norm", "qk_temperature", "mem_gate"):
      return False
    return True
  return jax.tree_util.tree_map_with_path(decide, params)


def _adamw(optim, schedule, mask) -> optax.GradientTransformation:
  return optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps, weight_decay=optim.weight_decay, mask=mask)


def _adafactor(optim, schedule, mask) -> optax.GradientTransformation:
  return optax.adafactor(schedule, weight_decay_rate=optim.weight_decay or None, weight_decay_mask=mask,
                         multiply_by_parameter_scale=False, clipping_threshold=None)


# config.optim.optimizer name -> update rule; config checks read the names from here.
OPTIMIZERS = {"adamw": _adamw, "adafactor": _adafactor}


def make_optimizer(optim, num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, schedule). Clipping happens before the update rule; decay is decoupled (AdamW style)."""
  schedule = make_schedule(optim, num_steps)
  mask = lambda params: decay_mask(params, bool(optim.decay_embeddings))
  rule = OPTIMIZERS[optim.optimizer](optim, schedule, mask)
  chain = [optax.clip_by_global_norm(optim.grad_clip)] if optim.grad_clip else []
  return optax.chain(*chain, rule), schedule
