"""Neighbour exchange: each device gets the W entries that precede its rows in the micro-batch, nothing more.

Crossbatch slot c of entry b holds entry (b - c - 1) mod B (fot_jax.model.crossbatch), so every context a shard
needs lies in the W rows just before its own, in the micro-batch's cyclic order. Under a batch-sharded mesh the
rows of a micro-batch are spread in order over the devices of the batch axes (data, fsdp), n = B / shards per
device; those W rows live on the previous ceil(W / n) devices of that ring and arrive by collective-permutes of
exactly W rows in all, once per memory layer and pass (the gradient returns through the transposed permutes).
Without a mesh the same windowed rows are a static slice of the batch. Either way the attention reads slot c of
local row r at the static position W - 1 - c + r of the windowed rows: no runtime gather over the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

BATCH_AXES = ("data", "fsdp")  # mesh axes of the batch rows, major first (sharding.LOGICAL_RULES["batch"])
HEAD_AXIS = "tensor"  # mesh axis of the heads
SCOPE = "crossbatch_exchange"  # named scope of the permutes (compile_check attributes their bytes to crossbatch)


@dataclasses.dataclass(frozen=True)
class Ring:
  """The devices holding one micro-batch's rows, in row order: mesh axes (major first) and their total size."""
  axes: tuple[str, ...]
  size: int


def window_rows(x: jax.Array, window: int, ring: Ring | None = None) -> jax.Array:
  """x [n, ...] (this shard's rows) -> [W + n, ...]: the W rows before the first local row (cyclically), then x.

  ring None: x is the whole micro-batch (W < n). Otherwise piece s (s = 1, 2, ...) is the last min(n, rows
  still needed) rows of the shard s places back on the ring, one collective-permute each.
  """
  n = x.shape[0]
  if window == 0:
    return x
  if ring is None or ring.size == 1:
    if window >= n:
      raise ValueError(f"crossbatch window W={window} must be smaller than the micro-batch size {n}")
    return jnp.concatenate([x[n - window:], x])
  if window >= n * ring.size:
    raise ValueError(f"crossbatch window W={window} must be smaller than the micro-batch size {n * ring.size}")
  pieces, need, shift = [], window, 1
  with jax.named_scope(SCOPE):
    while need:
      part = x[n - min(n, need):]
      if shift % ring.size:
        perm = [(i, (i + shift) % ring.size) for i in range(ring.size)]
        part = jax.lax.ppermute(part, ring.axes, perm)
      pieces.append(part)
      need -= part.shape[0]
      shift += 1
  return jnp.concatenate(pieces[::-1] + [x])


def slot_rows(ext: jax.Array, slot: int | jax.Array, window: int, rows: int, axis: int = 0) -> jax.Array:
  """The contexts of slot `slot` (offset slot + 1) for the `rows` local entries: ext[W-1-slot : W-1-slot+rows]."""
  start = window - 1 - slot
  if isinstance(slot, int):
    return jax.lax.slice_in_dim(ext, start, start + rows, axis=axis)
  return jax.lax.dynamic_slice_in_dim(ext, start, rows, axis=axis)


def batch_ring(batch: int) -> tuple[Ring | None, str | None, jax.sharding.AbstractMesh | None]:
  """(ring, head axis, mesh) of the context mesh (jax.set_mesh) for a micro-batch of `batch` rows.

  No mesh, or a mesh whose batch axes have one device: (None, head axis or None, mesh or None). A batch that the
  batch axes cannot split evenly raises: the exchange cannot be expressed and there is no silent fallback.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return None, None, None
  names = set(mesh.axis_names)
  axes = tuple(a for a in BATCH_AXES if a in names and mesh.shape[a] > 1)
  size = int(np.prod([mesh.shape[a] for a in axes])) if axes else 1
  if batch % size:
    raise ValueError(f"crossbatch exchange: a micro-batch of {batch} entries cannot be split evenly over the "
                     f"mesh's batch axes {axes} ({size} devices); use a micro-batch size (data.batch_size / "
                     f"data.micro_batches) that is a multiple of {size}")
  head = HEAD_AXIS if HEAD_AXIS in names and mesh.shape[HEAD_AXIS] > 1 else None
  return (Ring(axes, size) if axes else None), head, mesh


def per_shard(fn: Callable, batch: int, heads: int, kv_heads: int, layouts: Sequence[str],
              check_vma: bool = True) -> Callable:
  """fn(*arrays, ring=...) run on each device's rows of the context mesh (shard_map), or once without a mesh.

  layouts name each array's axes: "bthd" [B, T, heads, hd], "bt" [B, T] (also [B, W]), "h" [heads]. Heads go
  over the tensor axis when it divides both head counts, else every tensor shard computes all heads.
  check_vma: JAX's tracking of which values vary over which mesh axes; it keeps the backward pass free of
  conservative all-reduces over the axes an input is replicated on. Off only for kernels that cannot be
  tracked (Pallas custom calls).
  """
  ring, head, mesh = batch_ring(batch)
  if mesh is None or (ring is None and head is None):
    return lambda *arrays: fn(*arrays, ring=None)
  if head and (heads % mesh.shape[head] or kv_heads % mesh.shape[head]):
    head = None
  rows = ring.axes if ring else None
  specs = {"bthd": P(rows, None, head, None), "bt": P(rows, None), "h": P(head)}
  in_specs = tuple(specs[layout] for layout in layouts)
  return jax.shard_map(lambda *arrays: fn(*arrays, ring=ring), mesh=mesh, in_specs=in_specs,
                       out_specs=specs["bthd"], check_vma=check_vma)
