"""TrainConfig: the whole training config, typed and frozen, converted once from the ml_collections file.

`TrainConfig.from_config_dict(c)` checks every section (each names its own field in errors) and the checks
between sections that need no devices; `check_devices(n, processes)` adds those that depend on the mesh. Every
failure is a ConfigError "config.<field>: expected ..., found ...", raised before anything compiles.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from fot_jax.model.config import ModelConfig
from fot_jax.train.config.crossbatch import CrossbatchConfig
from fot_jax.train.config.fields import Invalid, fail, non_negative_int, positive_int, text
from fot_jax.train.config.sections import (
    CheckpointConfig, DataConfig, DistributedConfig, EvalConfig, LogConfig, MeshConfig, OptimConfig)
from fot_jax.train.errors import ConfigError

# config key -> its section type (the order of the recorded JSON).
SECTIONS = {"fot": CrossbatchConfig, "data": DataConfig, "optim": OptimConfig, "mesh": MeshConfig,
            "distributed": DistributedConfig, "checkpoint": CheckpointConfig, "log": LogConfig, "eval": EvalConfig}
TOP_LEVEL = {"seed": non_negative_int, "num_steps": positive_int, "init_from": text}


def model_config_from(values: dict[str, Any]) -> ModelConfig:
  """The ModelConfig of config.model, with ModelConfig's own error prefixed by the config path."""
  try:
    return ModelConfig.from_dict(dict(values))
  except (ValueError, TypeError) as e:
    msg = str(e).replace("ModelConfig.", "config.model.").replace("ModelConfig:", "config.model:")
    raise ConfigError(msg) from None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Every setting of a training run, by concern."""
  model: ModelConfig
  fot: CrossbatchConfig
  data: DataConfig
  optim: OptimConfig
  mesh: MeshConfig
  distributed: DistributedConfig
  checkpoint: CheckpointConfig
  log: LogConfig
  eval: EvalConfig
  seed: int = 0
  num_steps: int = 1000
  init_from: str = ""  # a workdir holding a checkpoint (training or conversion output): params only

  @classmethod
  def from_config_dict(cls, c) -> "TrainConfig":
    """The typed config of an ml_collections ConfigDict (or nested dict); raises ConfigError naming the field."""
    values = c.to_dict() if hasattr(c, "to_dict") else dict(c)
    unknown = sorted(set(values) - set(SECTIONS) - set(TOP_LEVEL) - {"model"})
    if unknown:
      fail(unknown[0], f"a config field ({', '.join(['model', *SECTIONS, *TOP_LEVEL])})", values[unknown[0]])
    top = {}
    for name, check in TOP_LEVEL.items():
      if name in values:
        try:
          top[name] = check(values[name])
        except Invalid as e:
          fail(name, str(e), values[name])
    sections = {name: section.parse(values.get(name, {})) for name, section in SECTIONS.items()}
    return cls(model=model_config_from(values.get("model", {})), **sections, **top)

  def __post_init__(self):
    d, fot = self.data, self.fot
    if d.batch_size % (d.micro_batches * fot.k):
      fail("data.batch_size", f"a multiple of data.micro_batches * fot.k = {d.micro_batches} * {fot.k} (each "
           f"micro-batch holds whole k-entry document streams)", d.batch_size)
    if d.seq_len > self.model.max_position_embeddings:
      fail("data.seq_len", f"at most model.max_position_embeddings={self.model.max_position_embeddings}", d.seq_len)
    fot.check_batch(d.micro_size)
    if any(x > 0 for x in fot.d_values()) and not self.model.mem_layers:
      fail("model.mem_layers", "at least one memory layer when crossbatch d > 0", self.model.mem_layers)
    if self.checkpoint.export_hf_every:
      from fot_jax.convert.hf import check_exportable
      try:
        check_exportable(self.model)
      except ValueError as e:
        fail("checkpoint.export_hf_every", f"0 for a model with no Hugging Face form ({e})",
             self.checkpoint.export_hf_every)

  def check_devices(self, num_devices: int | None = None, process_count: int = 1) -> "TrainConfig":
    """The checks that depend on the devices and processes (mesh sizes, batch rows per device); returns self."""
    d, e = self.data, self.eval
    if (d.batch_size // self.fot.k) % process_count:
      fail("data.batch_size", f"batch_size / fot.k document streams divisible by the {process_count} processes",
           d.batch_size)
    if e.every_steps and (e.batch_size // e.k) % process_count:
      fail("eval.batch_size", f"eval.batch_size / eval.k divisible by the {process_count} processes", e.batch_size)
    if num_devices is None:
      return self
    sizes = self.mesh.sizes(num_devices)
    rows = sizes[0] * sizes[1]
    if d.batch_size % rows:
      fail("data.batch_size", f"a multiple of the mesh's batch axes data*fsdp = {rows}", d.batch_size)
    if rows > 1 and d.micro_size % rows and any(w > 0 for w in self.fot.windows()):
      self._exchange_error(rows, sizes)
    if e.every_steps and e.batch_size % rows:
      fail("eval.batch_size", f"a multiple of the mesh's batch axes data*fsdp = {rows}", e.batch_size)
    return self

  def _exchange_error(self, rows: int, sizes: tuple[int, ...]):
    """The crossbatch window is exchanged between neighbouring devices, each holding micro_size / rows entries of
    every micro-batch: a micro-batch the batch axes cannot split evenly has no such layout."""
    batch, micro, k = self.data.batch_size, self.data.micro_batches, self.fot.k
    fixes = [f"data.micro_batches={m}" for m in range(micro, 0, -1)
             if batch % (m * k) == 0 and (batch // m) % rows == 0][:1]
    unit = micro * math.lcm(k, rows)
    fixes.append(f"data.batch_size={-(-batch // unit) * unit}")
    fail("data.batch_size/data.micro_batches", f"micro-batches whose {self.data.micro_size} entries split evenly "
         f"over the mesh's batch axes data*fsdp = {rows} (mesh.shape={sizes}): crossbatch exchanges its window "
         f"between neighbouring devices that each hold an equal run of every micro-batch; e.g. "
         + " or ".join(fixes), f"{batch}/{micro}")

  def to_json(self) -> dict[str, Any]:
    """The config as plain JSON values, nested as in the config file (recorded with every checkpoint)."""
    out: dict[str, Any] = {name: getattr(self, name) for name in TOP_LEVEL}
    out["model"] = self.model.to_dict()
    out.update({name: getattr(self, name).to_dict() for name in SECTIONS})
    return out
