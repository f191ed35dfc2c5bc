"""How memory layers read their memory at inference: dense or top-k (exact, approximate or through an IVF index),
streamed in blocks, optionally sharded over a mesh axis; every combination is checked when it is built."""

from __future__ import annotations

import dataclasses

from jax.sharding import Mesh

from fot_jax.model.memory import MemoryLayout


@dataclasses.dataclass(frozen=True)
class MemoryOptions:
  """How memory layers read memory: dense (topk None) or top-k by inner product (exact or approximate).

  Attention over memory is streamed in blocks of `block` keys (temporaries independent of the memory size);
  `streamed=False` selects the reference that materialises every memory logit (for tests). With a `mesh`, the
  memory is sharded over its axis `mem_axis` and each device reads its own part. `index="ivf"` finds each
  query's top-k among the keys of the `nprobe` of `nlist` IVF lists (per kv head, per device) whose k-means
  centroids best match it, instead of scoring every memory key (fot_jax.model.memory_index); `balance` caps each
  list at that multiple of the mean list length (keys spill to their next-nearest lists; None: uncapped).
  """
  topk: int | None = None
  approx: bool = False
  block: int = 512  # memory keys per streamed block; 256-512 ran fastest on CPU (docs/INFERENCE.md)
  streamed: bool = True
  mesh: Mesh | None = None
  mem_axis: str | None = None
  index: str | None = None
  nlist: int | None = None
  nprobe: int | None = None
  balance: float | None = None

  def __post_init__(self):
    if self.topk is not None and (not isinstance(self.topk, int) or self.topk <= 0):
      raise ValueError(f"memory top-k must be positive, found {self.topk}")
    if self.approx and self.topk is None:
      raise ValueError("MemoryOptions.approx: approximate retrieval needs top-k memory (topk), found topk=None")
    if not isinstance(self.block, int) or self.block <= 0:
      raise ValueError(f"MemoryOptions.block: expected a positive number of memory keys, found {self.block!r}")
    if (self.mesh is None) != (self.mem_axis is None):
      raise ValueError(f"MemoryOptions.mem_axis: sharded memory needs both a mesh and the name of one of its "
                       f"axes, found mesh={self.mesh}, mem_axis={self.mem_axis!r}")
    if self.mesh is not None:
      if self.mem_axis not in self.mesh.axis_names:
        raise ValueError(f"MemoryOptions.mem_axis: expected one of the mesh axes {self.mesh.axis_names}, found "
                         f"{self.mem_axis!r}")
      if not self.streamed:
        raise ValueError("MemoryOptions.streamed: sharded memory (mem_axis) needs the streamed attention")
    self._check_index()

  def _check_index(self):
    if self.index is None:
      if self.nlist is not None or self.nprobe is not None or self.balance is not None:
        raise ValueError(f"MemoryOptions.nlist/nprobe/balance: they configure an index, found index=None with "
                         f"nlist={self.nlist}, nprobe={self.nprobe}, balance={self.balance}")
      return
    if self.index != "ivf":
      raise ValueError(f"MemoryOptions.index: expected None or 'ivf', found {self.index!r}")
    if self.topk is None:
      raise ValueError("MemoryOptions.index: an IVF index serves top-k memory, found dense memory (topk=None)")
    if self.approx:
      raise ValueError("MemoryOptions.index: the IVF index replaces bin-max approximate top-k; set approx=False")
    if not self.streamed:
      raise ValueError("MemoryOptions.index: the IVF index needs the streamed attention (streamed=True)")
    for name in ("nlist", "nprobe"):
      value = getattr(self, name)
      if not isinstance(value, int) or value <= 0:
        raise ValueError(f"MemoryOptions.{name}: expected a positive integer with index='ivf', found {value!r}")
    if self.balance is not None and (isinstance(self.balance, bool) or not isinstance(self.balance, (int, float))
                                     or self.balance < 1):
      raise ValueError(f"MemoryOptions.balance: expected None or a list cap of at least 1 (times the mean list "
                       f"length), found {self.balance!r}")
    if self.nprobe > self.nlist:
      raise ValueError(f"MemoryOptions.nprobe: expected at most nlist={self.nlist} lists to probe, found "
                       f"{self.nprobe}")

  @property
  def layout(self) -> MemoryLayout:
    return MemoryLayout(self.mesh, self.mem_axis)
