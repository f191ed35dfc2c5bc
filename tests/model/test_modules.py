"""The NNX modules (FoTLlama, MemoryAttention, InferenceMemory) and the attention backend registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fot_jax.model import backends
from fot_jax.model.attention import crossbatch_attention_dense
from fot_jax.model.crossbatch import released_plan
from fot_jax.model.inference import MemoryInference
from fot_jax.model.modules import FoTLlama, InferenceMemory, MemoryAttention
from fot_jax.model.params import logical_axes, param_shapes
from fot_jax.model.transformer import forward
from tests.model.helpers import random_tokens, tiny_config, tiny_params

PLAN = released_plan(batch=4, k=2, d=1)


def _paths(tree, is_leaf=None):
  return sorted("/".join(str(k.key) for k in path)
                for path, _ in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0])


@pytest.mark.parametrize("overrides", [{}, {"attention_impl": "chunked", "attention_chunk_size": 8, "mem_gate": True}])
def test_module_forward_equals_pure_forward_bitwise(overrides):
  config = tiny_config(**overrides)
  params = tiny_params(config)
  tokens = jnp.asarray(random_tokens((4, 16), config.vocab_size))
  visible = jnp.asarray(PLAN.visible)
  through_module = jax.jit(lambda p, t: FoTLlama.from_params(config, p)(t, visible=visible, remat="full"))
  pure = jax.jit(lambda p, t: forward(p, t, config, visible=visible, remat="full"))
  np.testing.assert_array_equal(np.asarray(through_module(params, tokens)), np.asarray(pure(params, tokens)))


def test_every_param_carries_its_logical_axes():
  config = tiny_config(qk_norm=True, mem_gate=True)
  model = FoTLlama(config, seed=0)
  flat = list(nnx.to_flat_state(nnx.state(model, nnx.Param)))
  expected = logical_axes(config)
  assert len(flat) == len(jax.tree.leaves(param_shapes(config), is_leaf=lambda x: isinstance(x, tuple)))
  for path, param in flat:
    axes = param.get_metadata()["logical_axes"]
    want = expected["layers"][path[1]] if path[0] == "layers" else expected[path[0]]
    assert axes == want, path
    assert len(axes) == param.get_value().ndim, path
  assert model.logical_axes() == expected


def test_params_tree_keeps_the_checkpoint_names():
  config = tiny_config(qk_norm=True)
  params = tiny_params(config)
  model = FoTLlama.from_params(config, params)
  want = _paths(param_shapes(config), is_leaf=lambda x: isinstance(x, tuple))
  assert _paths(model.params()) == want
  assert _paths(nnx.state(model).to_pure_dict()) == want
  assert want[0] == "embed_tokens" and "layers/q_proj" in want
  for got, ref in zip(jax.tree.leaves(model.params()), jax.tree.leaves(params)):
    assert got is ref  # wrapped, not copied


def test_split_merge_round_trip():
  config = tiny_config()
  model = FoTLlama.from_params(config, tiny_params(config))
  graphdef, state = nnx.split(model)
  doubled = jax.tree.map(lambda x: 2 * x, state)
  merged = nnx.merge(graphdef, doubled)
  assert isinstance(merged, FoTLlama) and isinstance(merged.layers.memory_attention, MemoryAttention)
  for got, ref in zip(jax.tree.leaves(merged.params()), jax.tree.leaves(model.params())):
    np.testing.assert_array_equal(np.asarray(got), 2 * np.asarray(ref))
  tokens = jnp.asarray(random_tokens((2, 8), config.vocab_size))
  again = nnx.merge(graphdef, state)
  np.testing.assert_array_equal(np.asarray(again(tokens)), np.asarray(model(tokens)))


def test_from_params_rejects_a_tree_that_does_not_fit_the_config():
  config = tiny_config()
  params = tiny_params(config)
  wrong = r"params embed_tokens: expected shape \(300, 64\) for the config, found \(512, 64\)"
  with pytest.raises(ValueError, match=wrong):
    FoTLlama.from_params(config.replace(vocab_size=300), params)
  missing = {**params, "layers": {k: v for k, v in params["layers"].items() if k != "o_proj"}}
  with pytest.raises(ValueError, match="missing.*layers/o_proj"):
    FoTLlama.from_params(config, missing)


def test_unknown_backend_names_the_field_and_lists_the_registered():
  with pytest.raises(ValueError, match=r"model\.attention_impl: .*\['chunked', 'dense', 'splash'.*found 'flash'"):
    backends.get("flash")
  with pytest.raises(ValueError, match=r"ModelConfig\.attention_impl: .*'dense'.*found 'flash'"):
    tiny_config(attention_impl="flash")
  with pytest.raises(ValueError, match="already registered"):
    backends.register(backends.AttentionBackend("dense", lambda *a, **k: None))


@pytest.fixture
def recording_backend():
  """A user backend 'recorded': dense attention that records each call (training and inference)."""
  calls = []

  def crossbatch(q, k_local, k_mem, v, key_valid, visible, scale, gate, *, ring, partition, chunk_size):
    calls.append("crossbatch")
    return crossbatch_attention_dense(q, k_local, k_mem, v, key_valid, visible, scale, gate, ring)

  def memory_read(*args):
    calls.append("memory_read")
    return backends.inference.default_memory_read(*args)

  backends.register(backends.AttentionBackend("recorded", crossbatch, memory_read=memory_read))
  yield calls
  backends.unregister("recorded")


def test_a_registered_backend_is_used_by_the_module(recording_backend):
  dense = tiny_config()
  custom = dense.replace(attention_impl="recorded")
  params = tiny_params(dense)
  tokens = jnp.asarray(random_tokens((4, 16), dense.vocab_size))
  visible = jnp.asarray(PLAN.visible)
  run = lambda config: np.asarray(jax.jit(lambda p: FoTLlama.from_params(config, p)(tokens, visible=visible))(params))
  reference = run(dense)
  assert recording_backend == []
  np.testing.assert_array_equal(run(custom), reference)
  assert recording_backend.count("crossbatch") == len(dense.mem_layers)
  doc = random_tokens((1, 24), dense.vocab_size)
  ref = np.asarray(MemoryInference(params, dense, 1, window=8, last_context_length=8, mem_dtype="float32").encode(doc))
  got = FoTLlama.from_params(custom, params).memory(1, window=8, last_context_length=8, mem_dtype="float32")
  np.testing.assert_array_equal(np.asarray(got.encode(doc)), ref)
  assert "memory_read" in recording_backend


def test_inference_memory_equals_memory_inference():
  config = tiny_config()
  params = tiny_params(config)
  doc = random_tokens((2, 20), config.vocab_size, seed=3)
  memory = FoTLlama.from_params(config, params).memory(2, window=8, last_context_length=6, mem_dtype="float32")
  assert isinstance(memory, InferenceMemory) and memory.model.config == config
  ref = MemoryInference(params, config, 2, window=8, last_context_length=6, mem_dtype="float32")
  np.testing.assert_array_equal(np.asarray(memory.encode(doc)), np.asarray(ref.encode(doc)))
  assert memory.memory_size == ref.memory_size > 0
