"""Optimisers and learning-rate schedules from config.optim (optax).

AdamW or Adafactor, a schedule (warmup + cosine, warmup + inverse square root, constant), global-norm clipping,
and weight decay with a mask (kernels decay; norms never; embeddings only when asked).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def make_schedule(optim, num_steps: int) -> optax.Schedule:
  """config.optim -> step -> learning rate."""
  lr, warmup = float(optim.learning_rate), int(optim.warmup_steps)
  if optim.schedule == "constant":
    if not warmup:
      return optax.constant_schedule(lr)
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
  if optim.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=max(num_steps, warmup + 1),
        end_value=lr * float(optim.min_lr_ratio))
  if optim.schedule == "rsqrt":
    scale = max(warmup, 1)

    def rsqrt(step):
      step = jnp.asarray(step, jnp.float32)
      warm = lr * step / scale
      return jnp.where(step < warmup, warm, lr * jnp.sqrt(scale / jnp.maximum(step, 1.0)))
    return rsqrt
  raise ValueError(f"config.optim.schedule: expected cosine, rsqrt or constant, found {optim.schedule!r}")


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


def make_optimizer(optim, num_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, schedule). Clipping happens before the update rule; decay is decoupled (AdamW style)."""
  schedule = make_schedule(optim, num_steps)
  mask = lambda params: decay_mask(params, bool(optim.decay_embeddings))
  if optim.optimizer == "adamw":
    rule = optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps, weight_decay=optim.weight_decay,
                       mask=mask)
  elif optim.optimizer == "adafactor":
    rule = optax.adafactor(schedule, weight_decay_rate=optim.weight_decay or None, weight_decay_mask=mask,
                           multiply_by_parameter_scale=False, clipping_threshold=None)
  else:
    raise ValueError(f"config.optim.optimizer: expected adamw or adafactor, found {optim.optimizer!r}")
  chain = [optax.clip_by_global_norm(optim.grad_clip)] if optim.grad_clip else []
  return optax.chain(*chain, rule), schedule
