"""Local rows under a sharding, process split, and global batch assembly on 8 fake CPU devices."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from fot_jax.data import multihost  # noqa: E402
from fot_jax.data.batcher import BatcherConfig, DocumentBatcher  # noqa: E402


class _FakeProcessSharding:
  """Stands in for process p of n under a batch-sharded mesh: only its block of rows is addressable."""

  def __init__(self, p, n):
    self.p, self.n = p, n

  def addressable_devices_indices_map(self, shape):
    rows = shape[0] // self.n
    per_dev = rows // 2
    start = self.p * rows
    return {f"d{i}": (slice(start + i * per_dev, start + (i + 1) * per_dev), slice(None)) for i in range(2)}


def test_process_split_matches_sharding_rows():
  assert multihost.process_split(_FakeProcessSharding(1, 4), 16, 8, k=2) == (1, 4)
  assert multihost.local_row_range(_FakeProcessSharding(1, 4), (16, 8)) == (4, 8)
  with pytest.raises(ValueError, match="whole k=8 streams"):
    multihost.process_split(_FakeProcessSharding(0, 4), 16, 8, k=8)


def test_global_batch_from_local_rows():
  devices = np.array(jax.devices()[:8])
  if len(devices) < 8:
    pytest.skip("needs 8 (fake) devices")
  sharding = NamedSharding(Mesh(devices, ("data",)), P("data"))
  cfg = BatcherConfig(batch_size=16, seq_len=8, k=2, seed=0)
  docs = [np.arange(n) + 3 for n in (5, 40, 13, 27, 9, 31, 22, 18, 7, 50)]
  pi, pc = multihost.process_split(sharding, 16, 8, k=2)
  local = next(DocumentBatcher(docs, cfg, process_index=pi, process_count=pc))
  batch = multihost.make_global_batch(local, sharding, 16)
  assert batch["inputs"].shape == (16, 8) and batch["inputs"].sharding == sharding
  for key in local:
    np.testing.assert_array_equal(np.asarray(batch[key]), local[key])
