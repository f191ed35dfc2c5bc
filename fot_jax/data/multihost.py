"""Multi-host input: which batch rows this process owns under a sharding, and the global jax.Array of a batch.

The batcher already gives each process its own rows (documents of its own stream slots only); these helpers
line those rows up with the sharding the train step expects.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def local_row_range(sharding, global_shape: tuple[int, ...]) -> tuple[int, int]:
  """The contiguous [start, stop) batch rows held by this process's devices under `sharding`."""
  starts, stops = [], []
  for idx in sharding.addressable_devices_indices_map(global_shape).values():
    sl = idx[0] if idx else slice(None)
    start, stop, _ = sl.indices(global_shape[0])
    starts.append(start)
    stops.append(stop)
  a, b = min(starts), max(stops)
  covered = np.zeros(b - a, bool)
  for s, e in zip(starts, stops):
    covered[s - a:e - a] = True
  if not covered.all():
    raise ValueError(f"this process's batch rows under {sharding} are not contiguous; use a mesh whose data "
                     "axes put each process's devices on one contiguous block of the batch")
  return a, b


def process_split(sharding, batch_size: int, seq_len: int, k: int) -> tuple[int, int]:
  """(process_index, process_count) to give the batcher so its rows match `sharding`'s local rows.

  Requires every process to own an equal, contiguous, whole-stream block of rows (batch axis sharded over
  processes in process order, as jax.make_mesh lays devices out).
  """
  a, b = local_row_range(sharding, (batch_size, seq_len))
  rows = b - a
  if rows == batch_size:
    return 0, 1
  if batch_size % rows or a % rows or rows % k:
    raise ValueError(f"process rows [{a}, {b}) of batch_size={batch_size} are not an equal block of whole "
                     f"k={k} streams")
  return a // rows, batch_size // rows


def make_global_batch(local: Mapping[str, np.ndarray], sharding, batch_size: int) -> dict:
  """Assembles the global jax.Arrays [batch_size, L] from this process's rows (make_array_from_process_local_data)."""
  import jax
  out = {}
  for key, value in local.items():
    global_shape = (batch_size,) + tuple(value.shape[1:])
    out[key] = jax.make_array_from_process_local_data(sharding, value, global_shape)
  return out
