"""The small config sections: optim, mesh, distributed, checkpoint, log, eval, data.

Each is a frozen dataclass whose fields declare their check in one line (fields.setting); a section checks its
own fields and builds its own object. Checks that relate sections (batch vs mesh, eval vs mesh) live in
run.TrainConfig.
"""

from __future__ import annotations

import dataclasses

from fot_jax.model.transformer import REMAT_POLICIES
from fot_jax.train import optim as optim_lib
from fot_jax.train.config.crossbatch import PlanChoice
from fot_jax.train.config.fields import (
    Invalid, Section, boolean, fail, non_empty_text, non_negative_float, non_negative_int, one_of, positive_float,
    positive_int, setting, text)


@dataclasses.dataclass(frozen=True)
class OptimConfig(Section):
  """The optimiser and learning-rate schedule (fot_jax.train.optim builds them)."""
  NAME = "optim"
  optimizer: str = setting("adamw", one_of(optim_lib.OPTIMIZERS))
  learning_rate: float = setting(3e-3, positive_float)
  schedule: str = setting("cosine", one_of(optim_lib.SCHEDULES))
  warmup_steps: int = setting(20, non_negative_int)
  min_lr_ratio: float = setting(0.1, non_negative_float)  # cosine: final lr = learning_rate * min_lr_ratio
  b1: float = setting(0.9, non_negative_float)
  b2: float = setting(0.95, non_negative_float)
  eps: float = setting(1e-8, non_negative_float)
  weight_decay: float = setting(0.0, non_negative_float)
  decay_embeddings: bool = setting(False, boolean)
  grad_clip: float = setting(1.0, non_negative_float)  # global-norm clipping; 0 disables

  def build(self, num_steps: int):
    """(optax optimizer, learning-rate schedule)."""
    return optim_lib.make_optimizer(self, num_steps)


def _mesh_shape(value) -> tuple[int, ...]:
  shape = tuple(value) if isinstance(value, (tuple, list)) else None
  if (shape is None or len(shape) != 3 or any(not isinstance(s, int) or isinstance(s, bool) or (s <= 0 and s != -1)
                                              for s in shape) or shape.count(-1) > 1):
    raise Invalid("(data, fsdp, tensor): three positive sizes, at most one -1")
  return shape


@dataclasses.dataclass(frozen=True)
class MeshConfig(Section):
  """The (data, fsdp, tensor) device mesh and how layers run on it."""
  NAME = "mesh"
  shape: tuple[int, ...] = setting((1, -1, 1), _mesh_shape)  # one -1 takes the remaining devices
  scan_layers: bool = setting(True, boolean)
  remat: str = setting("none", one_of(REMAT_POLICIES))

  def sizes(self, num_devices: int) -> tuple[int, ...]:
    """The mesh's sizes on num_devices devices (-1 resolved); ConfigError if the product cannot match."""
    known = 1
    for s in self.shape:
      known *= s if s != -1 else 1
    if (-1 in self.shape and num_devices % known) or (-1 not in self.shape and known != num_devices):
      fail(self.path("shape"), f"sizes whose product matches the {num_devices} devices", self.shape)
    return tuple(num_devices // known if s == -1 else s for s in self.shape)

  def batch_rows(self, num_devices: int) -> int:
    """Devices the batch is split over: data * fsdp."""
    data, fsdp, _ = self.sizes(num_devices)
    return data * fsdp

  def build(self, devices=None):
    """The jax Mesh over `devices` (default: all)."""
    import jax
    from fot_jax.train.sharding import make_mesh
    devices = list(jax.devices() if devices is None else devices)
    return make_mesh(self.sizes(len(devices)), devices)


@dataclasses.dataclass(frozen=True)
class DistributedConfig(Section):
  """Multi-host start: jax.distributed.initialize (TPU pods: automatic when num_processes == 0)."""
  NAME = "distributed"
  coordinator_address: str = setting("", text)  # "host:port"; "" -> no explicit initialisation
  num_processes: int = setting(1, non_negative_int)
  process_id: int = setting(0, non_negative_int)
  initialization_timeout: int = setting(300, positive_int)  # seconds; the start-up barrier names missing hosts


@dataclasses.dataclass(frozen=True)
class CheckpointConfig(Section):
  """Orbax checkpoints of the train state (a new field: one `setting(...)` line)."""
  NAME = "checkpoint"
  every_steps: int = setting(100, positive_int)
  keep: int = setting(3, positive_int)
  async_save: bool = setting(True, boolean)
  # >0: every N steps process 0 also writes a Hugging Face folder to <workdir>/hf/step_<N> (background thread)
  export_hf_every: int = setting(0, non_negative_int)


@dataclasses.dataclass(frozen=True)
class LogConfig(Section):
  """Console, metrics.jsonl and TensorBoard logging."""
  NAME = "log"
  every_steps: int = setting(10, positive_int)
  tensorboard: bool = setting(True, boolean)
  device_peak_flops: float = setting(0.0, non_negative_float)  # >0 overrides the peak table used for MFU


@dataclasses.dataclass(frozen=True)
class EvalConfig(Section):
  """Periodic held-out evaluation with its own released crossbatch plan (k, d)."""
  NAME = "eval"
  every_steps: int = setting(100, non_negative_int)  # 0 disables periodic eval
  num_batches: int = setting(4, positive_int)
  batch_size: int = setting(16, positive_int)
  k: int = setting(1, positive_int)
  d: int = setting(0, non_negative_int)
  stepping: bool = setting(True, boolean)

  def check(self) -> None:
    if not self.every_steps:
      return
    if self.batch_size % self.k:
      fail(self.path("batch_size"), f"a multiple of eval.k={self.k}", self.batch_size)
    if self.d >= self.batch_size:
      fail(self.path("d"), f"below eval.batch_size={self.batch_size}", self.d)

  def plan(self):
    """The crossbatch plan of every evaluation batch."""
    return PlanChoice(self.d).build(self.batch_size, self.k, self.stepping)


def _task(value) -> str:
  if not isinstance(value, str) or not value:
    raise Invalid("a task name (e.g. 'stdlib', 'dict_lookup', 'mixture:offline')")
  return value


def _subset_paths(value) -> tuple[tuple[str, str], ...]:
  """A mapping (or pairs) from LongLLaMA mixture subset names to paths."""
  from fot_jax.data.subsets import LONGLLAMA_SUBSETS
  names = {s.name for s in LONGLLAMA_SUBSETS}
  pairs = value.items() if hasattr(value, "items") else value
  try:
    pairs = sorted((str(k), v) for k, v in pairs)
  except (TypeError, ValueError):
    raise Invalid(f"a mapping from subset names ({', '.join(sorted(names))}) to paths") from None
  for name, path in pairs:
    if name not in names:
      raise Invalid(f"subset names among {', '.join(sorted(names))} (found {name!r})")
    if not isinstance(path, str):
      raise Invalid(f"a path string for subset {name!r}")
  return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
  """The training data: source, vocabulary and batch layout (a new field: one `setting(...)` line)."""
  NAME = "data"
  # A fot_jax.data.pipeline name: an offline corpus ("stdlib"), "dict_lookup", "mixture:offline",
  # "jsonl:<glob>", "instruct:<glob>", or a registered seqio task.
  task: str = setting("stdlib", _task)
  vocab: str = setting("stdlib_sp2000", non_empty_text)  # 'byte', a .model path, '<corpus>_sp<size>', 'hf:<path>'
  data_dir: str = setting("", text)  # "" -> $FOT_JAX_DATA_DIR or ~/.cache/fot_jax
  batch_size: int = setting(16, positive_int)  # B: global entries per step
  seq_len: int = setting(64, positive_int)  # L: local context
  micro_batches: int = setting(1, positive_int)  # M: gradient accumulation
  shuffle: bool = setting(True, boolean)
  align_documents: bool = setting(False, boolean)  # each document starts a new group of fot.k chunks
  # mixture:longllama: a path or glob (local or fsspec URL) per subset; kept as sorted (name, path) pairs
  subset_paths: tuple[tuple[str, str], ...] = setting((), _subset_paths)
  cache_build_processes: int = setting(1, positive_int)  # local processes building a missing token cache
  stream_workers: int = setting(0, non_negative_int)  # 'stream:' sources: threads tokenizing ahead (0: inline)

  @property
  def subset_path_map(self) -> dict[str, str]:
    return dict(self.subset_paths)

  @property
  def micro_size(self) -> int:
    """Entries per micro-batch: the entries crossbatch attention mixes."""
    return self.batch_size // self.micro_batches
