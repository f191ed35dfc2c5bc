"""An IVF index of the memory keys kept in step with the memory: trained, rebuilt and extended as windows are
flushed into memory.

One index per memory layer, batch row and kv head, [Nm, B, K, L, ...]. Sharded memory gives each device its own
L lists over its own slots (the list axis is sharded like the memory's slot axis), so every device searches only
its part and the usual top-k merge across devices follows. Rule: the centroids are trained (k-means on up to
ivf.TRAIN_PER_LIST * L keys spread over the memory) at the first flush and again whenever the memory has doubled
since they were last trained, and every key is then refiled; between trainings each flushed key is filed in the
list of its nearest centroid, or with a `balance`, of the nearest whose list is under balance * the mean list
length (ivf.file_lists). Keys are filed REFILE_CHUNK slots at a time, so the upkeep's temporaries stay bounded as
the memory grows; the page pool and page table grow (host side, before each insert) so no key is ever dropped.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from fot_jax.model import ivf
from fot_jax.model.memory import MEM_SLOT_AXIS, MemoryLayout, _per_shard

REFILE_CHUNK = 1 << 20  # slots per device filed at a time when every key is refiled after training


def index_spec(layout: MemoryLayout) -> P:
  """Every index array is [Nm, B, K, L, ...], sharded along its lists L like the memory along its slots."""
  return P(None, None, None, layout.axis)


def _flat_keys(mem_k, mem_valid, start, count: int):
  """Memory slots [start, start + count) as the index's rows: keys [G, n, hd], slots [G, n], valid [G, n]."""
  nm, b, kh, _, hd = mem_k.shape
  keys = jax.lax.dynamic_slice_in_dim(mem_k, start, count, axis=3)  # [Nm, B, K, n, hd]
  keys = keys.reshape(nm * b * kh, count, hd)
  valid = jax.lax.dynamic_slice_in_dim(mem_valid, start, count, axis=1)  # [B, n]
  valid = jnp.broadcast_to(valid[None, :, None], (nm, b, kh, count)).reshape(nm * b * kh, count)
  slots = jnp.broadcast_to(start + jnp.arange(count, dtype=jnp.int32), valid.shape)
  return keys, slots, valid


def _flat(index: ivf.IVFIndex) -> tuple[ivf.IVFIndex, tuple]:
  lead = index.count.shape[:3]
  g = lead[0] * lead[1] * lead[2]
  return jax.tree.map(lambda a: a.reshape((g,) + a.shape[3:]), index), lead


def _unflat(index: ivf.IVFIndex, lead: tuple) -> ivf.IVFIndex:
  return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), index)


def empty_memory_index(num_mem_layers: int, batch: int, kv_heads: int, head_dim: int, nlist: int, mem_dtype,
                       layout: MemoryLayout = MemoryLayout()) -> ivf.IVFIndex:
  """An untrained index: nlist lists per device, a pool of one page per list."""
  lead = (num_mem_layers, batch, kv_heads)
  build = lambda: ivf.empty_index(lead, nlist * layout.shards, head_dim, jnp.dtype(mem_dtype))
  if layout.mesh is None:
    return build()
  from jax.sharding import NamedSharding
  return jax.jit(build, out_shardings=NamedSharding(layout.mesh, index_spec(layout)))()


def _assign(index, mem_k, mem_valid, start, *, count: int, axis, balance):
  flat, _ = _flat(index)
  keys, _, valid = _flat_keys(mem_k, mem_valid, start, count)
  ids = ivf.file_lists(keys, flat.centroids, valid, flat.count, balance)
  return ids, _needed(flat, ids, valid, axis)


def _insert(index, mem_k, mem_valid, ids, start, *, count: int):
  flat, lead = _flat(index)
  keys, slots, valid = _flat_keys(mem_k, mem_valid, start, count)
  return _unflat(ivf.insert(flat, keys, slots, ids, valid), lead)


def _train(index, mem_k, mem_valid, *, fill: int, balance):
  """New centroids from a sample spread over slots [0, fill); lists emptied (the caller refiles every key)."""
  flat, lead = _flat(index)
  sample = min(fill, ivf.TRAIN_PER_LIST * flat.nlist)
  picks = jnp.asarray(ivf.spread(sample, fill))
  keys = mem_k[:, :, :, picks].reshape(flat.count.shape[0], sample, -1)
  weight = jnp.broadcast_to(mem_valid[None, :, None, picks], lead + (sample,)).reshape(-1, sample)
  centroids = ivf.kmeans(keys, weight.astype(jnp.float32), flat.nlist, balance=balance)
  return _unflat(dataclasses.replace(flat, centroids=centroids, count=jnp.zeros_like(flat.count)), lead)


def _needed(flat, ids, valid, axis):
  """(pool pages, table width) every device's index needs after filing ids: [2] int32, the same on every device."""
  needed = jnp.stack(ivf.capacity_needed(flat, ids, valid))
  return needed if axis is None else jax.lax.pmax(needed, axis)


@functools.partial(jax.jit, static_argnames=("count", "layout", "balance"))
def assign(index, mem_k, mem_valid, start, *, count: int, layout: MemoryLayout, balance: float | None):
  """Lists of memory slots [start, start + count) on every device (ivf.file_lists): (ids, longest list after
  insert)."""
  s = index_spec(layout)
  fn = _per_shard(layout, functools.partial(_assign, count=count, axis=layout.axis, balance=balance),
                  (s, layout.spec(5, MEM_SLOT_AXIS), P(None, layout.axis), P()), (P(layout.axis), P()))
  return fn(index, mem_k, mem_valid, start)


@functools.partial(jax.jit, static_argnames=("count", "layout"), donate_argnames=("index",))
def insert(index, mem_k, mem_valid, ids, start, *, count: int, layout: MemoryLayout):
  """Files memory slots [start, start + count) in their lists (ids from `assign` or `train`)."""
  s = index_spec(layout)
  fn = _per_shard(layout, functools.partial(_insert, count=count),
                  (s, layout.spec(5, MEM_SLOT_AXIS), P(None, layout.axis), P(layout.axis), P()), s)
  return fn(index, mem_k, mem_valid, ids, start)


@functools.partial(jax.jit, static_argnames=("fill", "layout", "balance"))
def train(index, mem_k, mem_valid, *, fill: int, layout: MemoryLayout, balance: float | None):
  """Retrains the centroids on slots [0, fill) of every device and empties the lists."""
  s = index_spec(layout)
  fn = _per_shard(layout, functools.partial(_train, fill=fill, balance=balance),
                  (s, layout.spec(5, MEM_SLOT_AXIS), P(None, layout.axis)), s)
  return fn(index, mem_k, mem_valid)


@functools.partial(jax.jit, static_argnames=("pool_pages", "table_width", "layout"), donate_argnames=("index",))
def grow(index, *, pool_pages: int, table_width: int, layout: MemoryLayout):
  """Every device's page pool and page table padded to the given sizes (per device)."""
  s = index_spec(layout)
  fn = functools.partial(ivf.grow, pool_pages=pool_pages, table_width=table_width)
  return _per_shard(layout, fn, (s,), s)(index)


class MemoryIndexer:
  """Host-side upkeep of the index of an InferenceState's memory (call `after_flush` after each flush)."""

  def __init__(self, layout: MemoryLayout, balance: float | None = ivf.BALANCE):
    self.layout = layout
    self.balance = balance  # lists capped at balance * mean length (ivf.file_lists); None: nearest centroid only
    self.trained_fill = 0  # slots per device when the centroids were last trained (0: untrained)

  def after_flush(self, state, start: int, count: int):
    """The state's index extended with slots [start, start + count) of every device (retrained on doubling)."""
    fill = start + count
    index = state.index
    if self.trained_fill == 0 or fill >= 2 * self.trained_fill:
      index = train(index, state.mem_k, state.mem_valid, fill=fill, layout=self.layout, balance=self.balance)
      self.trained_fill, start = fill, 0
    for first in range(start, fill, REFILE_CHUNK):  # temporaries bounded by a chunk, not the memory
      index = self._file(index, state, first, min(REFILE_CHUNK, fill - first))
    return index

  def _file(self, index, state, start: int, count: int):
    """Slots [start, start + count) of every device filed in their lists, the pool and table grown first."""
    ids, needed = assign(index, state.mem_k, state.mem_valid, start, count=count, layout=self.layout,
                         balance=self.balance)
    pages, width = (int(n) for n in needed)
    local_pages = index.pool_pages // self.layout.shards
    if pages > local_pages or width > index.table_width:
      index = grow(index, pool_pages=ivf.grown(pages, local_pages), table_width=ivf.grown(width, index.table_width),
                   layout=self.layout)
    return insert(index, state.mem_k, state.mem_valid, ids, jnp.asarray(start, jnp.int32), count=count,
                  layout=self.layout)

  def forget(self, state):
    """Empty lists, untrained (the memory was emptied)."""
    self.trained_fill = 0
    return _emptied(state.index)


@jax.jit
def _emptied(index):
  return dataclasses.replace(index, count=index.count * 0)
