"""Chunked (online-softmax, custom VJP) crossbatch attention equals the dense reference path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.attention import crossbatch_attention_dense
from fot_jax.model.chunked_attention import crossbatch_attention, crossbatch_attention_chunked
from fot_jax.model.crossbatch import empty_plan, mix_plan, released_plan

TOL = 1e-5


def _inputs(plan, length, heads, kv_heads, head_dim=8, pad_frac=0.0, seed=0):
  """Random q/k_local/k_mem/v, a probe for the loss, and key_valid with right padding on some entries."""
  rng = np.random.default_rng(seed)
  b = plan.batch
  arrays = tuple(jnp.asarray(rng.normal(size=(b, length, n, head_dim)), jnp.float32)
                 for n in (heads, kv_heads, kv_heads, kv_heads))
  key_valid = np.ones((b, length), bool)
  if pad_frac:
    for i in range(0, b, 2):  # every other entry ends with padding
      key_valid[i, length - max(1, int(pad_frac * length)):] = False
  probe = jnp.asarray(rng.normal(size=(b, length, heads, head_dim)), jnp.float32)
  return arrays, (jnp.asarray(key_valid), jnp.asarray(plan.visible)), probe


def _value_and_grads(attn, arrays, rest, probe, scale):
  def loss(q, k_local, k_mem, v):
    out = attn(q, k_local, k_mem, v, *rest, scale)
    return jnp.sum(out * probe), out

  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))(*arrays)
  return out, grads


def _assert_close(plan, length, heads, kv_heads, chunk_size, pad_frac=0.0, seed=0):
  arrays, rest, probe = _inputs(plan, length, heads, kv_heads, pad_frac=pad_frac, seed=seed)
  scale = 8 ** -0.5
  out_d, grads_d = _value_and_grads(crossbatch_attention_dense, arrays, rest, probe, scale)
  chunked = lambda *a: crossbatch_attention_chunked(*a, chunk_size=chunk_size)
  out_c, grads_c = _value_and_grads(chunked, arrays, rest, probe, scale)
  assert out_c.dtype == jnp.float32 and out_c.shape == out_d.shape
  np.testing.assert_allclose(out_c, out_d, atol=TOL, rtol=TOL)
  for name, gc, gd in zip(("q", "k_local", "k_mem", "v"), grads_c, grads_d):
    np.testing.assert_allclose(gc, gd, atol=TOL, rtol=TOL, err_msg=f"gradient wrt {name}")
  return grads_c


@pytest.mark.parametrize("plan, length, heads, kv_heads, chunk_size, pad_frac", [
    (released_plan(6, 1, 2), 16, 4, 4, 8, 0.0),  # MHA, L a multiple of the chunk
    (released_plan(8, 4, 3), 24, 4, 2, 16, 0.25),  # stepping, GQA, L=24 with chunk 16, padding
    (mix_plan(12, 4, ((0, 0), (1, 2), (2, 5), (3, 4))), 7, 4, 2, 4, 0.3),  # the 7B mix, L=7 with chunk 4
    (empty_plan(3), 9, 2, 1, 4, 0.2),  # d = 0
    (released_plan(4, 1, 3, stepping=False), 5, 2, 2, 16, 0.0),  # chunk larger than L
])
def test_chunked_equals_dense(plan, length, heads, kv_heads, chunk_size, pad_frac):
  _assert_close(plan, length, heads, kv_heads, chunk_size, pad_frac)


def test_fully_masked_rows_match_dense_and_invisible_contexts_get_no_key_gradient():
  """Left padding with no visible context: the dense path's finite uniform row, reproduced exactly."""
  plan = released_plan(4, 4, 3)  # entry 0 sees no additional context
  arrays, (key_valid, visible), probe = _inputs(plan, 6, 2, 2)
  key_valid = key_valid.at[0, :2].set(False)  # rows 0 and 1 of entry 0 see no key at all
  rest = (key_valid, visible)
  out_d, grads_d = _value_and_grads(crossbatch_attention_dense, arrays, rest, probe, 0.3)
  chunked = lambda *a: crossbatch_attention_chunked(*a, chunk_size=4)
  out_c, grads_c = _value_and_grads(chunked, arrays, rest, probe, 0.3)
  assert np.all(np.isfinite(out_c))
  np.testing.assert_allclose(out_c, out_d, atol=TOL, rtol=TOL)
  for gc, gd in zip(grads_c, grads_d):
    np.testing.assert_allclose(gc, gd, atol=TOL, rtol=TOL)
  # Entry 3 fills slot 0 of entry 0, where it is invisible (entry 0 has no predecessor): k_mem[3] gets exactly 0.
  plan2 = released_plan(4, 1, 1)
  arrays, rest, probe = _inputs(plan2, 6, 2, 2, seed=1)
  _, (_, _, dk_mem, _) = _value_and_grads(chunked, arrays, rest, probe, 0.3)
  assert np.all(np.asarray(dk_mem[3]) == 0.0)
  assert np.any(np.asarray(dk_mem[2]) != 0.0)


def test_gated_dispatch_matches_dense():
  plan = released_plan(8, 4, 3)
  arrays, rest, _ = _inputs(plan, 10, 4, 2, pad_frac=0.2)
  gate = jnp.asarray([0.5, -1.0, 2.0, 0.0], jnp.float32)
  dense = crossbatch_attention(*arrays, *rest, 0.35, gate=gate, impl="dense")
  chunked = crossbatch_attention(*arrays, *rest, 0.35, gate=gate, impl="chunked", chunk_size=4)
  np.testing.assert_allclose(chunked, dense, atol=TOL, rtol=TOL)
  with pytest.raises(ValueError, match="attention_impl"):
    crossbatch_attention(*arrays, *rest, 0.35, impl="flash")


def test_bfloat16_runs_and_keeps_dtype():
  plan = released_plan(4, 1, 2)
  arrays, rest, _ = _inputs(plan, 12, 2, 2)
  arrays = tuple(x.astype(jnp.bfloat16) for x in arrays)
  out_c = crossbatch_attention_chunked(*arrays, *rest, 0.35, chunk_size=8)
  out_d = crossbatch_attention_dense(*arrays, *rest, 0.35)
  assert out_c.dtype == jnp.bfloat16
  np.testing.assert_allclose(out_c.astype(jnp.float32), out_d.astype(jnp.float32), atol=3e-2)


def test_chunked_compiled_memory_well_below_dense():
  """The compiled fwd+bwd plan of the chunked path holds far fewer temporaries than the dense one."""
  d, length = 8, 64
  plan = released_plan(d + 1, 1, d)
  arrays, rest, probe = _inputs(plan, length, 2, 2)

  def temp_bytes(attn):
    loss = lambda q, kl, km, v: jnp.sum(attn(q, kl, km, v, *rest, 0.35) * probe)
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3))).lower(*arrays).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
      pytest.skip("memory_analysis not available on this backend")
    return analysis.temp_size_in_bytes

  dense = temp_bytes(crossbatch_attention_dense)
  chunked = temp_bytes(lambda *a: crossbatch_attention_chunked(*a, chunk_size=16))
  logits_bytes = (d + 1) * 2 * length * (d + 1) * length * 4  # one float32 [B, H, L, (d+1)L] array
  assert dense >= logits_bytes
  assert chunked * 4 <= dense, (chunked, dense)
