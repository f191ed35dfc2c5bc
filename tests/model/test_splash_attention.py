"""The splash-attention (Pallas TPU kernel) path equals the dense path, run in Pallas interpret mode on CPU.

Values and gradients for the spec's visibility tables (released_plan(6,1,2), released_plan(8,4,3)), the 7B mix,
padding, GQA, the gate ablation, memory (inference) attention, a whole model, and under a mesh (shard_map).
Lengths are deliberately not multiples of 128: the path pads them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from fot_jax.model import attention
from fot_jax.model.attention import crossbatch_attention_dense
from fot_jax.model.chunked_attention import crossbatch_attention
from fot_jax.model.config import preset
from fot_jax.model.crossbatch import empty_plan, mix_plan, released_plan
from fot_jax.model.params import init_params
from fot_jax.model.splash_attention import (BlockCausalMask, crossbatch_attention_splash,
                                            memory_attention_splash)
from fot_jax.model.transformer import forward
from fot_jax.train.sharding import make_mesh

TOL = 2e-5


def _inputs(plan, length, heads, kv_heads, head_dim=16, pad=0, seed=0):
  rng = np.random.default_rng(seed)
  b = plan.batch
  arrays = tuple(jnp.asarray(rng.normal(size=(b, length, n, head_dim)), jnp.float32)
                 for n in (heads, kv_heads, kv_heads, kv_heads))
  key_valid = np.ones((b, length), bool)
  if pad:
    key_valid[::2, length - pad:] = False  # every other entry ends with padding
  probe = jnp.asarray(rng.normal(size=(b, length, heads, head_dim)), jnp.float32)
  return arrays, (jnp.asarray(key_valid), jnp.asarray(plan.visible)), probe


def _value_and_grads(attn, arrays, rest, probe, scale, gate=None):
  def loss(q, k_local, k_mem, v):
    out = attn(q, k_local, k_mem, v, *rest, scale, gate)
    return jnp.sum(out * probe), out

  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))(*arrays)
  return out, grads


def _assert_same(plan, length, heads, kv_heads, pad=0, gate=None):
  arrays, rest, probe = _inputs(plan, length, heads, kv_heads, pad=pad)
  scale = 16 ** -0.5
  out_d, grads_d = _value_and_grads(crossbatch_attention_dense, arrays, rest, probe, scale, gate)
  out_s, grads_s = _value_and_grads(crossbatch_attention_splash, arrays, rest, probe, scale, gate)
  assert out_s.shape == out_d.shape and out_s.dtype == out_d.dtype
  np.testing.assert_allclose(out_s, out_d, atol=TOL, rtol=TOL)
  for name, gs, gd in zip(("q", "k_local", "k_mem", "v"), grads_s, grads_d):
    np.testing.assert_allclose(gs, gd, atol=TOL, rtol=TOL, err_msg=f"gradient wrt {name}")


@pytest.mark.parametrize("plan, length, heads, kv_heads, pad", [
    (released_plan(6, 1, 2), 40, 2, 2, 0),  # spec table B=6, k=1, d=2 (MHA)
    (released_plan(8, 4, 3), 100, 4, 2, 7),  # spec table B=8, k=4, d=3 stepping (GQA, right padding)
    (mix_plan(8, 4, ((0, 0), (1, 2), (2, 1), (3, 0))), 24, 2, 1, 3),  # a per-position mix (MQA)
    (empty_plan(2), 130, 2, 2, 5),  # d = 0, L just above one 128-block
])
def test_splash_equals_dense(plan, length, heads, kv_heads, pad):
  _assert_same(plan, length, heads, kv_heads, pad)


def test_splash_gate_equals_dense():
  gate = jnp.asarray([0.3, -1.2], jnp.float32)
  _assert_same(released_plan(6, 1, 2), 20, 2, 2, pad=4, gate=gate)


def test_dispatcher_and_config_select_splash():
  plan = released_plan(6, 1, 2)
  arrays, rest, _ = _inputs(plan, 16, 2, 2)
  out = crossbatch_attention(*arrays, *rest, 0.25, impl="splash")
  np.testing.assert_allclose(out, crossbatch_attention_dense(*arrays, *rest, 0.25), atol=TOL, rtol=TOL)
  assert preset("tiny", attention_impl="splash").attention_impl == "splash"


def test_block_causal_mask():
  mask = BlockCausalMask(3, 9, start=3, causal_len=3)
  expected = np.ones((3, 9), bool)
  expected[:, 3:6] = np.tril(np.ones((3, 3), bool))
  np.testing.assert_array_equal(mask[:, :], expected)
  assert mask == BlockCausalMask(3, 9, 3, 3) and hash(mask) == hash(BlockCausalMask(3, 9, 3, 3))
  np.testing.assert_array_equal(BlockCausalMask(2, 4, 0, 0)[:, :], np.ones((2, 4), bool))


def _inference_inputs(b=2, t=20, window=36, mem=50, heads=4, kv_heads=2, hd=16, seed=1):
  """Inputs shaped like fot_jax.model.inference: [cache | window] local keys, then memory."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  q = normal(b, t, heads, hd)
  k_local, v_local = normal(b, window + t, kv_heads, hd), normal(b, window + t, kv_heads, hd)
  cache_valid = np.ones((b, window), bool)
  cache_valid[0, :5] = False
  cache_valid[:, 30:] = False  # beyond cache_len
  new_valid = np.ones((b, t), bool)
  new_valid[1, -3:] = False
  new_mask = np.tril(np.ones((t, t), bool))[None] & new_valid[:, None, :]
  local_mask = np.concatenate([np.broadcast_to(cache_valid[:, None], (b, t, window)), new_mask], axis=-1)
  mem_valid = np.ones((b, mem), bool)
  mem_valid[1, 40:] = False
  return (q, k_local, v_local, jnp.asarray(local_mask), normal(b, mem, kv_heads, hd), normal(b, mem, kv_heads, hd),
          jnp.asarray(mem_valid))


@pytest.mark.parametrize("gate", [None, jnp.asarray([0.5, -0.5, 1.0, 0.0], jnp.float32)])
def test_memory_attention_splash_equals_dense(gate):
  args = _inference_inputs()
  scale = 16 ** -0.5
  dense = attention.memory_attention(*args, scale, gate=gate)
  fused = jax.jit(lambda *a: memory_attention_splash(*a, scale, gate=gate))(*args)
  np.testing.assert_allclose(fused, dense, atol=TOL, rtol=TOL)
  with pytest.raises(ValueError, match="top-k"):
    memory_attention_splash(*args, scale, topk=4)


def test_model_forward_and_grads_splash_equals_dense():
  config = preset("tiny", num_layers=2, mem_layers=(1,))
  params = init_params(config, 0)
  plan = released_plan(4, 2, 1)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, config.vocab_size, (4, 24)), jnp.int32)

  def loss(p, cfg):
    logits = forward(p, tokens, cfg, visible=jnp.asarray(plan.visible))
    return jnp.mean(jax.nn.log_softmax(logits)[..., 0]), logits

  (_, ld), gd = jax.jit(jax.value_and_grad(lambda p: loss(p, config), has_aux=True))(params)
  splash_cfg = config.replace(attention_impl="splash")
  (_, ls), gs = jax.jit(jax.value_and_grad(lambda p: loss(p, splash_cfg), has_aux=True))(params)
  np.testing.assert_allclose(ls, ld, atol=1e-4, rtol=1e-4)
  for a, b in zip(jax.tree.leaves(gs), jax.tree.leaves(gd)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_splash_under_mesh_uses_shard_map():
  """With a context mesh the kernel runs per shard (batch over data/fsdp, heads over tensor), the window arriving
  by neighbour exchange (ppermute) through the crossbatch dispatcher."""
  mesh = make_mesh((1, 4, 2), jax.devices()[:8])
  plan = released_plan(8, 4, 3)
  arrays, rest, probe = _inputs(plan, 24, 4, 2, pad=3)
  heads = NamedSharding(mesh, P(("data", "fsdp"), None, "tensor", None))
  arrays = tuple(jax.device_put(a, heads) for a in arrays)
  with jax.set_mesh(mesh):
    fn = jax.jit(lambda *a: crossbatch_attention(*a, *rest, 0.25, impl="splash"))
    jaxpr = str(fn.trace(*arrays).jaxpr)
    assert "shard_map" in jaxpr and "ppermute" in jaxpr
    out = fn(*arrays)
  np.testing.assert_allclose(out, crossbatch_attention_dense(*arrays, *rest, 0.25), atol=TOL, rtol=TOL)


def test_memory_inference_through_splash_equals_dense():
  from fot_jax.model.inference import MemoryInference
  from tests.model.helpers import random_tokens, tiny_config, tiny_params
  config = tiny_config()
  params = tiny_params(config)
  tokens = random_tokens((1, 40), config.vocab_size, seed=4)
  run = lambda cfg: np.asarray(MemoryInference(params, cfg, 1, window=16, last_context_length=8,
                                               mem_dtype="float32").encode(tokens))
  dense = run(config)
  np.testing.assert_allclose(run(config.replace(attention_impl="splash")), dense, atol=2e-5, rtol=0)
  assert np.abs(dense[:, 16:] - run(config.replace(mem_layers=()))[:, 16:]).max() > 1e-2  # memory mattered
