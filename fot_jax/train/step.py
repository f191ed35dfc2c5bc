"""The loss and the train/eval steps: pure functions that the trainer jits with shardings and donation.

Train state: {"params": ..., "opt_state": ..., "step": int32 scalar} (the checkpoint layout).
Batch: {inputs, targets [B, L] int32, loss_mask [B, L] float32, input_mask [B, L] bool}.
Plan: visible [B_micro, W], built for ONE micro-batch and shared by all of them (crossbatch mixes entries
within a micro-batch only; slot c of entry b holds entry b - c - 1 of the same micro-batch, cyclically). Loss = sum(token CE * loss_mask) / sum(loss_mask) over the whole global batch, so
accumulating over M micro-batches gives exactly the big-batch gradient under the same per-micro-batch plan.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from fot_jax.model.config import ModelConfig
from fot_jax.model.modules import FoTLlama

State = dict[str, Any]
Batch = dict[str, jax.Array]


def token_stats(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(sum of masked token cross-entropy, sum of masked correct argmax predictions), float32."""
  logz = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  ce = (logz - target_logit) * loss_mask
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32) * loss_mask
  return ce.sum(), correct.sum()


def summed_loss(params, batch: Batch, visible, model: ModelConfig, scan_layers: bool = True,
                remat: str = "none", activation_sharding: NamedSharding | None = None):
  """Sum of token CE over a (micro-)batch, with the summed correct count as aux. The model is the FoTLlama
  module over the (traced) parameter tree: built while tracing, nothing added to the compiled step."""
  logits = FoTLlama.from_params(model, params)(batch["inputs"], input_mask=batch["input_mask"], visible=visible,
                                               scan_layers=scan_layers, remat=remat,
                                               activation_sharding=activation_sharding)
  ce, correct = token_stats(logits, batch["targets"], batch["loss_mask"])
  return ce, correct


def loss_and_grads(params, batch: Batch, visible, model: ModelConfig, micro_batches: int = 1,
                   scan_layers: bool = True, remat: str = "none", micro_sharding: NamedSharding | None = None,
                   activation_sharding: NamedSharding | None = None):
  """(mean loss, grads of the mean loss, accuracy, token count) with accumulation over micro_batches.

  The batch is split into M contiguous micro-batches of B/M entries (whole k-entry streams each); every
  micro-batch runs the same plan. Sums are accumulated and divided once by the global token count. Layout rule
  of the crossbatch exchange: micro-batch m is global rows [m*B/M, (m+1)*B/M), spread in row order over the
  mesh's batch axes (micro_sharding), so each device holds B/(M*shards) consecutive entries of it and the
  window's entries live on the devices just before it; the batcher's stream-to-row order is this order.
  """
  grad_fn = jax.value_and_grad(summed_loss, has_aux=True)
  tokens = jnp.maximum(batch["loss_mask"].sum(), 1.0)
  if micro_batches == 1:
    (ce, correct), grads = grad_fn(params, batch, visible, model, scan_layers, remat, activation_sharding)
  else:
    def split(x):
      x = x.reshape((micro_batches, x.shape[0] // micro_batches) + x.shape[1:])
      if micro_sharding is not None:  # keep each micro-batch spread over the batch axes of the mesh
        x = jax.lax.with_sharding_constraint(x, NamedSharding(micro_sharding.mesh, P(None, *micro_sharding.spec)))
      return x
    micro = jax.tree.map(split, batch)
    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)

    def body(carry, mb):
      g_acc, ce_acc, c_acc = carry
      (ce, correct), g = grad_fn(params, mb, visible, model, scan_layers, remat, activation_sharding)
      g_acc = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), g_acc, g)
      return (g_acc, ce_acc + ce, c_acc + correct), None
    (grads, ce, correct), _ = jax.lax.scan(body, (zeros, jnp.float32(0), jnp.float32(0)), micro)
  grads = jax.tree.map(lambda g, p: (g / tokens).astype(p.dtype), grads, params)
  return ce / tokens, grads, correct / tokens, tokens


def make_train_step(model: ModelConfig, optimizer: optax.GradientTransformation, schedule: Callable,
                    micro_batches: int = 1, scan_layers: bool = True, remat: str = "none",
                    micro_sharding: NamedSharding | None = None,
                    activation_sharding: NamedSharding | None = None) -> Callable:
  """(state, batch, visible) -> (new state, metrics). Jit it with donate_argnums=0.

  activation_sharding: [B_micro, L, D] sharding of layer activations (see activation_sharding_for).
  """

  def train_step(state: State, batch: Batch, visible):
    params = state["params"]
    loss, grads, accuracy, tokens = loss_and_grads(params, batch, visible, model, micro_batches,
                                                   scan_layers, remat, micro_sharding, activation_sharding)
    updates, opt_state = optimizer.update(grads, state["opt_state"], params)
    new_params = optax.apply_updates(params, updates)
    metrics = {"loss": loss, "accuracy": accuracy, "grad_norm": optax.global_norm(grads),
               "learning_rate": jnp.asarray(schedule(state["step"]), jnp.float32), "tokens": tokens}
    return {"params": new_params, "opt_state": opt_state, "step": state["step"] + 1}, metrics
  return train_step


def make_eval_step(model: ModelConfig, scan_layers: bool = True,
                   activation_sharding: NamedSharding | None = None) -> Callable:
  """(params, batch, visible) -> {ce_sum, correct_sum, tokens} for averaging over batches."""

  def eval_step(params, batch: Batch, visible):
    ce, correct = summed_loss(params, batch, visible, model, scan_layers,
                              activation_sharding=activation_sharding)
    return {"ce_sum": ce, "correct_sum": correct, "tokens": batch["loss_mask"].sum()}
  return eval_step


def activation_sharding_for(mesh, rows: int) -> NamedSharding | None:
  """[rows, L, D] activations with rows over (data, fsdp), when the rows divide evenly; else None (XLA decides).

  Without it, FSDP-sharded weights make XLA all-gather activations in every layer instead of the weights.
  """
  batch_axes = mesh.shape["data"] * mesh.shape["fsdp"]
  if batch_axes == 1 or rows % batch_axes:
    return None
  return NamedSharding(mesh, P(("data", "fsdp"), None, None))


def init_state(params, optimizer: optax.GradientTransformation) -> State:
  return {"params": params, "opt_state": optimizer.init(params), "step": jnp.zeros((), jnp.int32)}
