"""Streamed memory attention in MemoryInference: equal to the materialised reference, temporaries independent of
the memory size, and memory sharded over an 8-device mesh equal to one device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.inference import MemoryInference, MemoryOptions, window_step
from fot_jax.model.memory import init_state
from tests.model.helpers import random_tokens, tiny_config, tiny_params

TOL = 1e-5


def _runner(config, batch, options, window=8, lcl=6, **kw):
  return MemoryInference(tiny_params(config), config, batch, window=window, last_context_length=lcl,
                         mem_dtype="float32", options=options, **kw)


def _mesh(n=8):
  return jax.make_mesh((n,), ("memory",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:n])


def _encode_docs(runner, docs, valid=None):
  """Multi-doc: memory kept across documents; returns the logits of every document."""
  return [np.asarray(runner.encode(d, None if valid is None else valid[i])) for i, d in enumerate(docs)]


@pytest.mark.parametrize("topk", [None, 5])
def test_streamed_equals_reference_multi_doc_with_padding(topk):
  config = tiny_config()
  docs = [random_tokens((2, 45), config.vocab_size, seed=1), random_tokens((2, 30), config.vocab_size, seed=2)]
  valid = [np.ones((2, 45), bool), np.ones((2, 30), bool)]
  valid[0][1, :5] = False  # left padding in one row
  ref = _encode_docs(_runner(config, 2, MemoryOptions(topk=topk, streamed=False), initial_capacity=64), docs, valid)
  # block 4 < memory slots: several blocks, and memory grows from 8 to 64 slots while encoding.
  runner = _runner(config, 2, MemoryOptions(topk=topk, block=4))
  got = _encode_docs(runner, docs, valid)
  assert runner.memory_size == 45 - 6 + 30 and runner.state.capacity > 8
  for r, g, v in zip(ref, got, valid):
    assert np.abs(r - g)[v].max() <= TOL


def test_streamed_gate_ablation_equals_reference():
  config = tiny_config(mem_gate=True)
  tokens = random_tokens((1, 40), config.vocab_size, seed=4)
  ref = np.asarray(_runner(config, 1, MemoryOptions(streamed=False), initial_capacity=64).encode(tokens))
  got = np.asarray(_runner(config, 1, MemoryOptions(block=4), initial_capacity=64).encode(tokens))
  np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("topk", [None, pytest.param(3, marks=pytest.mark.slow)])
def test_streamed_generation_across_flushes_equals_reference(topk):
  config = tiny_config()
  prompt = random_tokens((2, 19), config.vocab_size, seed=11)
  logits = {}
  for name, options in (("ref", MemoryOptions(topk=topk, streamed=False)), ("streamed", MemoryOptions(topk=topk,
                                                                                                   block=4))):
    runner = _runner(config, 2, options, initial_capacity=64)
    out = [np.asarray(runner.encode(prompt))[:, -1]]
    for i in range(20):  # teacher-forced so both runners see the same tokens; crosses two cache flushes
      out.append(np.asarray(runner.step(prompt[:, i % 19][:, None]))[:, -1])
    assert runner.memory_size >= 19 - 6 + 16
    logits[name] = np.stack(out)
  np.testing.assert_allclose(logits["streamed"], logits["ref"], atol=TOL, rtol=0)


def _temp_bytes(config, options, capacity, mem_dtype="float32", queries=64):
  state = jax.eval_shape(lambda: init_state(config, 1, 64, capacity, mem_dtype))
  tokens = jax.ShapeDtypeStruct((1, queries), jnp.int32)
  valid = jax.ShapeDtypeStruct((1, queries), bool)
  compiled = window_step.lower(tiny_params(config), state, tokens, valid, config=config, options=options,
                               cache_empty=True).compile()
  return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("topk", [None, pytest.param(8, marks=pytest.mark.slow)])
def test_window_step_temporaries_do_not_grow_with_memory(topk):
  config = tiny_config(mem_layers=(1, 2))  # two memory layers: reading one must not copy it out of the buffer
  small, big = 1 << 12, 1 << 16
  streamed = [_temp_bytes(config, MemoryOptions(topk=topk, block=1024), c) for c in (small, big)]
  reference = [_temp_bytes(config, MemoryOptions(topk=topk, streamed=False), c) for c in (small, big)]
  assert streamed[1] <= streamed[0] * 1.05 + 4096, streamed
  # The reference materialises [B, K, G, T, C] logits: it grows ~16x, which is what the streamed path avoids.
  assert reference[1] > 8 * reference[0], reference
  assert streamed[1] < reference[1] / 8


@pytest.mark.parametrize("queries", [64, 1])
def test_window_step_temporaries_do_not_grow_with_bf16_memory(queries):
  # On CPU, bf16 dot products run in float32: the step must convert one block at a time, not the whole memory.
  # One query (generation) takes the per-head dots, which must keep that property too.
  config = tiny_config(mem_layers=(1, 2))
  small, big = (_temp_bytes(config, MemoryOptions(block=1024), c, "bfloat16", queries) for c in (1 << 12, 1 << 16))
  assert big <= small * 1.05 + 4096, (small, big)


@pytest.mark.parametrize("topk", [None, pytest.param(4, marks=pytest.mark.slow)])
def test_memory_sharded_over_8_devices_equals_one_device(topk):
  config = tiny_config()
  # Windows of 8 (then 6) only, and one growth of the memory (8 -> 16 slots per device): few compilations.
  docs = [random_tokens((2, 54), config.vocab_size, seed=5), random_tokens((2, 22), config.vocab_size, seed=6)]
  one = _runner(config, 2, MemoryOptions(topk=topk, block=4), initial_capacity=64)
  sharded = _runner(config, 2, MemoryOptions(topk=topk, block=4, mesh=_mesh(), mem_axis="memory"),
                    initial_capacity=64)
  for doc in docs:
    np.testing.assert_allclose(np.asarray(sharded.encode(doc)), np.asarray(one.encode(doc)), atol=TOL, rtol=0)
  # The memory grew under jit and stays sharded: every device holds an equal share of the slots.
  mem_k = sharded.state.mem_k
  assert sharded.memory_size == one.memory_size == 54 - 6 + 22
  assert len(mem_k.sharding.device_set) == 8 and mem_k.addressable_shards[0].data.shape[3] == mem_k.shape[3] // 8
  assert sharded.mem_fill * 8 >= sharded.memory_size and mem_k.shape[3] > 64
  np.testing.assert_array_equal(sharded.generate(docs[1], 12), one.generate(docs[1], 12))


def test_bad_memory_options_name_the_field():
  with pytest.raises(ValueError, match="mem_axis"):
    MemoryOptions(mesh=_mesh(2))
  with pytest.raises(ValueError, match="mem_axis.*one of the mesh axes"):
    MemoryOptions(mesh=_mesh(2), mem_axis="data")
  with pytest.raises(ValueError, match="approx"):
    MemoryOptions(approx=True)
  with pytest.raises(ValueError, match="block"):
    MemoryOptions(block=0)


def test_few_queries_read_wider_blocks_that_divide_memory():
  from fot_jax.model.memory_attention import widened_block
  assert widened_block(512, 512, 1 << 15) == 512  # a full window: the configured block
  assert widened_block(512, 1, 1 << 15) == 2048  # one query: up to WIDE_BLOCK keys per block
  assert widened_block(512, 1, 1 << 20) == 2048  # bounded whatever the memory size
  assert widened_block(512, 1, 512 * 66) == 512 * 3  # a divisor of the slots, so no block runs past the end
  assert widened_block(512, 1, 512) == 512 and widened_block(4096, 1, 1 << 15) == 4096


@pytest.mark.parametrize("queries,group", [(1, 1), (3, 2), (40, 1)])
def test_per_head_dots_equal_the_batched_products(monkeypatch, queries, group):
  # Few-query steps on CPU multiply each (batch row, kv head) as its own 2-D dot; forcing the batched einsum
  # (PER_HEAD_DOTS = 0) must give the same statistics, and many queries never take the per-head form.
  from fot_jax.model import memory_attention as ma
  rng = np.random.default_rng(0)
  b, kh, slots, hd = 2, 3, 96, 8
  qg = jnp.asarray(rng.standard_normal((b, queries, kh, group, hd)), jnp.float32)
  mem_k, mem_v = (jnp.asarray(rng.standard_normal((2, b, kh, slots, hd)), jnp.float32) for _ in range(2))
  valid = jnp.asarray(rng.random((b, slots)) < 0.8)
  run = lambda: ma.finish(ma.dense_memory_stats(qg, mem_k, mem_v, valid, 80, 0.3, 32, jnp.float32, layer=1))
  assert ma._per_head(ma.heads_first(qg)) == (queries * group <= ma.FEW_QUERIES)
  per_head = np.asarray(run())
  monkeypatch.setattr(ma, "PER_HEAD_DOTS", 0)
  assert not ma._per_head(ma.heads_first(qg))
  np.testing.assert_allclose(per_head, np.asarray(run()), atol=1e-6, rtol=0)


def test_generation_step_reads_memory_without_batched_dots_or_block_copies():
  # What makes generation fast on CPU (measured 40 -> 18.5 ms per token at 32k memory): head-major memory blocks
  # feed plain 2-D dots. A batched dot, or a copy of a whole memory block, in the step's HLO would undo that.
  from fot_jax.model.memory_attention import widened_block
  config = tiny_config(mem_layers=(1, 2))
  slots, group = 1 << 12, config.num_heads // config.kv_heads
  block = widened_block(1024, 1, slots)
  state = jax.eval_shape(lambda: init_state(config, 1, 64, slots, "float32"))
  tokens, valid = jax.ShapeDtypeStruct((1, 1), jnp.int32), jax.ShapeDtypeStruct((1, 1), bool)
  hlo = window_step.lower(tiny_params(config), state, tokens, valid, config=config,
                          options=MemoryOptions(block=1024), cache_empty=False).compile().as_text().splitlines()
  dots = [line for line in hlo if " dot(" in line]
  output = lambda line, op: line.split(op)[0]
  assert [line for line in dots if f"f32[{group},{block}]" in output(line, "dot(")], dots  # one per kv head
  assert not [line for line in dots if "lhs_batch_dims" in line and str(block) in output(line, "dot(")]
  assert not [line for line in hlo if " copy(" in line and f"{block},{config.head_dim}]" in output(line, "copy(")]
