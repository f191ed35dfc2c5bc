"""The train step's pieces: scanned == unrolled layers, and accumulation over micro-batches == big batch."""

import jax
import jax.numpy as jnp
import numpy as np

from fot_jax.model.config import ModelConfig
from fot_jax.model.crossbatch import released_plan
from fot_jax.model.params import init_params
from fot_jax.model.transformer import forward
from fot_jax.train import step as step_lib

# Memory layers break the scanned runs: [0], 1 (mem), [2, 3], 4 (mem), [5] of 6.
MODEL = ModelConfig(vocab_size=64, hidden_size=32, num_heads=4, num_kv_heads=2, num_layers=6, intermediate_size=48,
                    mem_layers=(1, 4), max_position_embeddings=32, last_context_length=16, mem_dtype="float32")


SMALL = MODEL.replace(num_layers=3, mem_layers=(1,))


def _batch(b, length, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, MODEL.vocab_size, (b, length + 1)).astype(np.int32)
  mask = np.ones((b, length), np.float32)
  mask[0, :3] = 0.0  # some masked targets
  input_mask = np.ones((b, length), bool)
  input_mask[-1, -4:] = False  # padded tail of the last entry
  mask[-1, -4:] = 0.0
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": mask, "input_mask": input_mask}


def test_scanned_equals_unrolled(remat="full"):
  params = init_params(MODEL, jax.random.key(0))
  batch = _batch(4, 16)
  plan = released_plan(4, 2, 2)

  def loss(p, scan):
    logits = forward(p, batch["inputs"], MODEL, input_mask=batch["input_mask"], visible=plan.visible,
                     scan_layers=scan, remat=remat)
    return step_lib.token_stats(logits, batch["targets"], batch["loss_mask"])[0], logits

  (l_scan, logits_scan), g_scan = jax.value_and_grad(loss, has_aux=True)(params, True)
  (l_unroll, logits_unroll), g_unroll = jax.value_and_grad(loss, has_aux=True)(params, False)
  np.testing.assert_allclose(logits_scan, logits_unroll, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(l_scan, l_unroll, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_scan, g_unroll)


def test_accumulation_equals_big_batch_gradient():
  """M=2 micro-batches of 4 with a 4-entry plan == the summed loss of the two halves, each run with that plan."""
  params = init_params(SMALL, jax.random.key(1))
  batch = _batch(8, 16, seed=3)
  plan = released_plan(4, 2, 3)
  loss_acc, grads_acc, acc_acc, tokens = jax.jit(
      lambda p, b: step_lib.loss_and_grads(p, b, plan.visible, SMALL, micro_batches=2))(params, batch)
  halves = [{k: v[i * 4:(i + 1) * 4] for k, v in batch.items()} for i in range(2)]

  def big(p):
    sums = [step_lib.summed_loss(p, half, plan.visible, SMALL) for half in halves]
    n = batch["loss_mask"].sum()
    return sum(s[0] for s in sums) / n, sum(s[1] for s in sums) / n
  (loss_big, acc_big), grads_big = jax.jit(jax.value_and_grad(big, has_aux=True))(params)
  assert float(tokens) == batch["loss_mask"].sum()
  np.testing.assert_allclose(loss_acc, loss_big, rtol=1e-5)
  np.testing.assert_allclose(acc_acc, acc_big, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), grads_acc, grads_big)
  # The comparison is not vacuous: a plan that crosses micro-batches gives a different big-batch loss.
  crossing = released_plan(8, 2, 3)
  ce_cross, _ = jax.jit(step_lib.summed_loss, static_argnums=3)(params, batch, crossing.visible, SMALL)
  assert abs(float(ce_cross / batch["loss_mask"].sum()) - float(loss_big)) > 1e-6


def test_bf16_compute_with_f32_params_trains():
  model = SMALL.replace(dtype="bfloat16", param_dtype="float32")
  params = init_params(model, jax.random.key(0))
  batch = _batch(4, 8)
  plan = released_plan(4, 2, 2)
  loss, grads, _, _ = jax.jit(lambda p: step_lib.loss_and_grads(p, batch, plan.visible, model))(params)
  assert np.isfinite(float(loss))
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
