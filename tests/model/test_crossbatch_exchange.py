"""Static-window crossbatch with neighbour exchange == the runtime-gather crossbatch it replaced.

Logits and gradients of the whole model (dense and chunked paths) for released plans, the 7B mix and several d,
on one device and on 8-device CPU meshes (1,8,1) and (2,4,1) with the exchange (shard_map + ppermute), against
tests/model/legacy_crossbatch.py on one device. Also the exchange itself against a cyclic roll, and its refusal
of a batch the mesh cannot split.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from fot_jax.model import exchange
from fot_jax.model.crossbatch import mix_plan, released_plan
from fot_jax.model.params import logical_axes
from fot_jax.model.transformer import forward
from fot_jax.train import sharding
from fot_jax.train import step as step_lib
from tests.model import legacy_crossbatch as legacy
from tests.model.helpers import random_tokens, tiny_config, tiny_params

MIX_7B = ((0, 0), (1, 2), (2, 5), (3, 4))
TOL = 1e-5


@pytest.mark.parametrize("mesh_shape, rows, window", [
    ((1, 8, 1), 8, 1), ((1, 8, 1), 16, 3), ((1, 8, 1), 16, 7), ((2, 4, 1), 16, 5), ((1, 8, 1), 8, 7),
    ((2, 4, 1), 8, 3)])
def test_window_rows_are_the_cyclic_predecessors(mesh_shape, rows, window):
  """Each shard's windowed rows are rows b-W .. b-1 (mod B) then its own, for W below, equal to and above the
  rows per device, and W = B - 1 (the window reaches around the whole ring)."""
  mesh = sharding.make_mesh(mesh_shape)
  x = jnp.arange(rows * 3, dtype=jnp.float32).reshape(rows, 3)
  with jax.set_mesh(mesh):
    ring, _, _ = exchange.batch_ring(rows)
    assert ring is not None and ring.size == 8
    spec = P(ring.axes, None)
    per_device = rows // ring.size
    fn = jax.shard_map(lambda a: exchange.window_rows(a, window, ring), mesh=mesh, in_specs=spec, out_specs=spec)
    out = np.asarray(jax.jit(fn)(jax.device_put(x, NamedSharding(mesh, spec))))
  out = out.reshape(ring.size, window + per_device, 3)
  for shard in range(ring.size):
    first = shard * per_device
    want = np.asarray(x)[[(first + r) % rows for r in range(-window, per_device)]]
    np.testing.assert_array_equal(out[shard], want)


def test_a_batch_the_mesh_cannot_split_is_refused():
  with jax.set_mesh(sharding.make_mesh((1, 8, 1))):
    with pytest.raises(ValueError, match="micro-batch of 12 entries cannot be split evenly"):
      exchange.batch_ring(12)


def _plans():
  """(name, new plan, legacy (sources, visible)) for released plans with several d, and the 7B mix."""
  out = [(f"released B=16 k=4 d={d}", released_plan(16, 4, d), legacy.released_sources(16, 4, d))
         for d in (1, 3, 5)]
  out.append(("released B=16 k=1 d=2 no stepping", released_plan(16, 1, 2, stepping=False),
              legacy.released_sources(16, 1, 2, stepping=False)))
  out.append(("7B mix B=16", mix_plan(16, 4, MIX_7B), legacy.mix_sources(16, 4, MIX_7B)))
  return out


PLANS = _plans()


def _model_loss(config, visible, tokens, mask):
  def loss(params):
    logits = forward(params, tokens, config, input_mask=mask, visible=visible, remat="full")
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.roll(tokens, -1, axis=1)[..., None], -1)[..., 0]
    return jnp.sum(logp * mask), logits
  return jax.value_and_grad(loss, has_aux=True)


@functools.lru_cache(maxsize=None)
def _legacy_run(impl: str, index: int):
  """Logits and gradients of the runtime-gather implementation on one device (the reference)."""
  _, plan, (sources, visible) = PLANS[index]
  config, params, tokens, mask = _setup(impl)
  mp = pytest.MonkeyPatch()
  try:
    legacy.patch_forward(mp, sources, visible)
    (_, logits), grads = jax.jit(_model_loss(config, jnp.asarray(plan.visible), tokens, mask))(params)
    return np.asarray(logits), jax.tree.map(np.asarray, grads)
  finally:
    mp.undo()


def _setup(impl):
  config = tiny_config(attention_impl=impl, attention_chunk_size=8, mem_layers=(1, 2))
  params = tiny_params(config)
  tokens = jnp.asarray(random_tokens((16, 20), config.vocab_size, seed=5))
  mask = np.ones((16, 20), bool)
  mask[3, 15:] = False  # right padding in one entry
  return config, params, tokens, jnp.asarray(mask)


def _assert_equal_to_legacy(impl, index, mesh_shape):
  config, params, tokens, mask = _setup(impl)
  _, plan, _ = PLANS[index]
  visible = jnp.asarray(plan.visible)
  fn = jax.jit(_model_loss(config, visible, tokens, mask))
  if mesh_shape is None:
    (_, logits), grads = fn(params)
  else:
    mesh = sharding.make_mesh(mesh_shape)
    with jax.set_mesh(mesh):
      p = jax.device_put(params, sharding.tree_shardings(params, logical_axes(config), mesh))
      tokens = jax.device_put(tokens, sharding.batch_sharding(mesh))
      mask = jax.device_put(mask, sharding.batch_sharding(mesh))
      fn = jax.jit(_model_loss(config, visible, tokens, mask))
      (_, logits), grads = fn(p)
  ref_logits, ref_grads = _legacy_run(impl, index)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=TOL, rtol=TOL)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, atol=TOL, rtol=TOL), grads, ref_grads)


MESHES = {"1dev": None, "mesh181": (1, 8, 1), "mesh241": (2, 4, 1)}
# The default suite runs one case per path and mesh kind; the whole grid is slow (each case compiles twice).
FAST = [("dense", 1, "1dev"), ("dense", 4, "mesh181"), ("chunked", 1, "mesh241")]
GRID = [(impl, index, mesh) for impl in ("dense", "chunked") for index in range(len(PLANS)) for mesh in MESHES
        if (impl, index, mesh) not in FAST and (impl == "dense" or index in (1, 4))]


def _case_id(case):
  impl, index, mesh = case
  return f"{impl}-{PLANS[index][0]}-{mesh}"


@pytest.mark.parametrize("case", FAST, ids=_case_id)
def test_model_equals_runtime_gather(case):
  impl, index, mesh = case
  _assert_equal_to_legacy(impl, index, MESHES[mesh])


@pytest.mark.slow
@pytest.mark.parametrize("case", GRID, ids=_case_id)
def test_model_equals_runtime_gather_grid(case):
  impl, index, mesh = case
  _assert_equal_to_legacy(impl, index, MESHES[mesh])


def test_micro_batches_on_a_mesh_equal_runtime_gather_per_micro_batch(monkeypatch):
  """Gradient accumulation over 2 micro-batches of 8 on fsdp=8 (one entry per device each): the exchange runs per
  micro-batch, wrapping around inside it, and gives the runtime-gather gradients."""
  config, params, tokens, mask = _setup("chunked")
  plan = released_plan(8, 4, 3)
  batch = {"inputs": tokens, "targets": jnp.roll(tokens, -1, axis=1), "loss_mask": mask.astype(jnp.float32),
           "input_mask": mask}
  mesh = sharding.make_mesh((1, 8, 1))
  with jax.set_mesh(mesh):
    bs = sharding.batch_sharding(mesh)
    sharded = {k: jax.device_put(v, bs) for k, v in batch.items()}
    p = jax.device_put(params, sharding.tree_shardings(params, logical_axes(config), mesh))
    run = jax.jit(lambda p, b: step_lib.loss_and_grads(p, b, jnp.asarray(plan.visible), config, micro_batches=2,
                                                       remat="full", micro_sharding=bs))
    loss, grads, _, _ = run(p, sharded)
  legacy.patch_forward(monkeypatch, *legacy.released_sources(8, 4, 3))
  ref_loss, ref_grads, _, _ = jax.jit(lambda p, b: step_lib.loss_and_grads(
      p, b, jnp.asarray(plan.visible), config, micro_batches=2, remat="full"))(params, batch)
  np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=TOL, rtol=TOL), grads,
               ref_grads)
