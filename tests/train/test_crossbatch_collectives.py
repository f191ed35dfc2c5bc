"""The communication pattern of crossbatch under FSDP, read from the partitioned HLO of the real train step.

The train step of a small FoT model is compiled for 8 fake CPU devices with fsdp=8 (two entries per device). Its
memory layers may move only the window's keys/values between devices: collective-permutes of at most W rows of
[L, K, hd], and never an all-gather / all-reduce / reduce-scatter / all-to-all of a buffer shaped like the whole
micro-batch's keys or values ([B, ..., K, hd]). The negative control, the runtime gather over the batch
(`x[sources]`, as crossbatch was implemented before the exchange), fails the same check.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.configs.experiments import tiny_fot
from fot_jax import compile_check
from fot_jax.train.config import TrainConfig
from fot_jax.train.hlo_analysis import collective_ops
from fot_jax.model import transformer
from fot_jax.model.crossbatch import window_sources
from tests.model import legacy_crossbatch as legacy

BATCH, LENGTH, D = 16, 64, 3


def _config(impl: str):
  c = tiny_fot.get_config()
  c.fot.d_schedule, c.fot.d = "fixed", D
  c.data.batch_size, c.data.seq_len = BATCH, LENGTH
  c.mesh.shape, c.mesh.remat = (1, 8, 1), "full"
  c.model.attention_impl, c.model.attention_chunk_size = impl, 32
  return c


def _compiled_ops(impl: str):
  built = compile_check.build(TrainConfig.from_config_dict(_config(impl)), jax.devices())
  hlo = compile_check.compile_step(built).as_text()
  return built, collective_ops(hlo)


def _violations(built, ops):
  """Collectives that move more than the window's keys/values, or any whole-batch key/value block."""
  model = built.model
  window_bytes = built.window * LENGTH * model.kv_heads * model.head_dim * 4  # float32 is the widest dtype here
  bad = []
  for op in ops:
    kv_block = any(dims and dims[0] == BATCH and dims[-2:] == (model.kv_heads, model.head_dim)
                   for _, dims in op.shapes)
    if (op.kind != "collective-permute" and kv_block) or (op.crossbatch and op.bytes > window_bytes):
      bad.append((op.kind, op.shapes, op.bytes, op.op_name[-80:]))
  return bad


def _runtime_gather(monkeypatch):
  """Memory layers gather their contexts with runtime indices over the global batch (the negative control)."""
  def attention(q, k_local, k_mem, v, key_valid, visible, scale, gate=None, impl="dense", chunk_size=512):
    # The indices go through an optimization barrier so XLA cannot turn them into trace-time constants.
    sources = jax.lax.optimization_barrier(jnp.asarray(window_sources(q.shape[0], visible.shape[1])))
    with jax.named_scope("crossbatch"):
      return legacy.crossbatch_attention(q, k_local, k_mem, v, key_valid, sources, visible, scale, gate)
  monkeypatch.setattr(transformer, "crossbatch_attention", attention)


def test_fsdp_train_step_moves_only_the_window():
  built, ops = _compiled_ops("chunked")
  assert built.window == D and dict(built.mesh.shape) == {"data": 1, "fsdp": 8, "tensor": 1}
  permutes = [op for op in ops if op.crossbatch and op.kind == "collective-permute"]
  assert permutes, "the exchange's collective-permutes are missing from the HLO"
  assert not _violations(built, ops), _violations(built, ops)
  # Per memory-layer pass the exchange moves W rows of keys and of values (2 entries per device: W=3 is two
  # permutes, of 2 rows and 1 row), never a whole micro-batch.
  row_bytes = LENGTH * built.model.kv_heads * built.model.head_dim * 4
  assert max(op.bytes for op in permutes) <= 2 * row_bytes


def test_runtime_gather_fails_the_guard(monkeypatch):
  _runtime_gather(monkeypatch)
  built, ops = _compiled_ops("dense")
  bad = _violations(built, ops)
  assert bad, "the runtime gather over the batch should move whole-batch key/value blocks"
  assert np.max([b[2] for b in bad]) > built.window * LENGTH * built.model.kv_heads * built.model.head_dim * 4
