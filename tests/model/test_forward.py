"""Training-mode forward: sharded == single device, chunked == dense, scanned == unrolled, NNX wrapper, configs."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fot_jax.model.config import ModelConfig, layer_runs, preset
from fot_jax.model.crossbatch import released_plan
from fot_jax.model.module import FoTLlama
from fot_jax.model.params import logical_axes, num_params_of
from fot_jax.model.transformer import forward
from fot_jax.train import sharding
from tests.model.helpers import random_tokens, tiny_config, tiny_params

PLAN = released_plan(batch=8, k=2, d=1)


def _loss_and_grads(config, params, tokens, **kwargs):
  def loss(p):
    logits = forward(p, tokens, config, visible=jnp.asarray(PLAN.visible), **kwargs)
    return jnp.mean(jax.nn.log_softmax(logits)[..., 0])
  return jax.jit(jax.value_and_grad(loss))(params)


def test_forward_on_an_8_device_mesh_equals_single_device():
  assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
  config = tiny_config()
  params = tiny_params(config)
  tokens = jnp.asarray(random_tokens((8, 16), config.vocab_size))
  run = jax.jit(lambda p, t: forward(p, t, config, visible=jnp.asarray(PLAN.visible)))
  single = np.asarray(run(params, tokens))
  mesh = sharding.make_mesh((2, 2, 2))  # batch over (data, fsdp), heads and MLP over tensor
  shardings = sharding.tree_shardings(params, logical_axes(config), mesh)
  assert shardings["layers"]["q_proj"].spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")
  sharded = run(jax.device_put(params, shardings), jax.device_put(tokens, sharding.batch_sharding(mesh)))
  assert len(sharded.sharding.device_set) == 8
  np.testing.assert_allclose(np.asarray(sharded), single, atol=1e-5, rtol=0)


def test_chunked_model_equals_dense_model_values_and_gradients():
  dense = tiny_config(attention_impl="dense")
  chunked = dense.replace(attention_impl="chunked", attention_chunk_size=8)
  params = tiny_params(dense)
  tokens = jnp.asarray(random_tokens((8, 20), dense.vocab_size, seed=1))  # L not a multiple of the chunk
  loss_d, grad_d = _loss_and_grads(dense, params, tokens)
  loss_c, grad_c = _loss_and_grads(chunked, params, tokens)
  np.testing.assert_allclose(loss_c, loss_d, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4), grad_c, grad_d)


def test_scanned_layers_equal_unrolled_layers():
  config = tiny_config(num_layers=5, mem_layers=(2,))
  assert layer_runs(config) == [(0, 2, False), (2, 3, True), (3, 5, False)]
  params = tiny_params(config)
  tokens = jnp.asarray(random_tokens((8, 8), config.vocab_size, seed=2))
  loss_s, grad_s = _loss_and_grads(config, params, tokens, scan_layers=True, remat="full")
  loss_u, grad_u = _loss_and_grads(config, params, tokens, scan_layers=False)
  np.testing.assert_allclose(loss_s, loss_u, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5), grad_s, grad_u)


def test_nnx_module_matches_the_pure_forward():
  config = tiny_config()
  model = FoTLlama(config, params=tiny_params(config))
  graphdef, state = nnx.split(model)
  tokens = jnp.asarray(random_tokens((2, 8), config.vocab_size))
  np.testing.assert_array_equal(np.asarray(nnx.merge(graphdef, state)(tokens)),
                                np.asarray(forward(tiny_params(config), tokens, config)))
  assert model.layers["q_proj"].get_metadata()["logical_axes"] == ("layers", "embed", "q_heads")


def test_presets_and_parameter_counts():
  assert preset("longllama_3b").mem_layers == (6, 12, 18)
  assert preset("longllama_7b").mem_layers == (8, 16, 24)
  assert preset("code_longllama_7b").rope_theta == 1e6 and preset("code_longllama_7b").vocab_size == 32016
  assert 3.3e9 < preset("longllama_3b").num_params() < 3.6e9  # OpenLLaMA-3B: 3.43B
  assert 6.6e9 < preset("longllama_7b").num_params() < 6.8e9  # LLaMA-7B: 6.74B
  tiny = tiny_config()
  assert tiny.num_params() == num_params_of(tiny_params(tiny)) and tiny.num_params() < 1_000_000


def test_flops_count_crossbatch_in_full_and_causal_at_half():
  config = preset("longllama_3b")
  base = config.flops_per_token(2048, crossbatch_d=0)
  more = config.flops_per_token(2048, crossbatch_d=3)
  per_context = 3 * len(config.mem_layers) * 4 * config.hidden_size * 2048
  assert more - base == pytest.approx(3 * per_context)
  longer = config.flops_per_token(4096, crossbatch_d=0) - base  # doubling L adds half of 2048 keys per layer
  assert longer == pytest.approx(3 * config.num_layers * 4 * config.hidden_size * 1024)


@pytest.mark.parametrize("overrides, field", [
    (dict(mem_layers=(4,)), "mem_layers"),
    (dict(hidden_size=66), "hidden_size"),
    (dict(num_kv_heads=3), "num_kv_heads"),
    (dict(mem_positionals="last"), "mem_positionals"),
    (dict(attention_impl="flash"), "attention_impl"),
    (dict(dtype="float64"), "dtype"),
])
def test_invalid_configs_name_the_field(overrides, field):
  with pytest.raises(ValueError, match=re.escape(f"ModelConfig.{field}")):
    preset("tiny", **overrides)


def test_config_round_trips_through_a_dict():
  config = tiny_config(mem_layers=(1, 3))
  assert ModelConfig.from_dict(config.to_dict()) == config
  with pytest.raises(ValueError, match="unknown fields"):
    ModelConfig.from_dict({**config.to_dict(), "mem_layer": [1]})


def test_changing_the_plan_recompiles_only_per_distinct_window():
  config = tiny_config()
  params = tiny_params(config)
  tokens = jnp.asarray(random_tokens((8, 8), config.vocab_size, seed=3))
  run = jax.jit(lambda p, t, v: forward(p, t, config, visible=v))
  plans = [released_plan(8, 2, 1), released_plan(8, 4, 3), released_plan(8, 4, 3, stepping=False),
           released_plan(8, 1, 1), released_plan(8, 2, 3)]
  outputs = [np.asarray(run(params, tokens, jnp.asarray(p.visible))) for p in plans]
  assert run._cache_size() == 2  # W in {1, 3}: one compilation each, whatever the mix
  assert np.abs(outputs[1] - outputs[2]).max() > 1e-4  # different visibility, same compilation
