"""Checks a training config once, before anything is compiled, and names the offending field.

Every check raises ConfigError("<field path>: <what was expected>, found <value>") so a typo in a 3B run's
command line fails in a second, not after an hour of compilation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fot_jax.convert.hf import check_exportable
from fot_jax.model.config import ModelConfig
from fot_jax.model.crossbatch import mix_window, parse_mix
from fot_jax.model.transformer import REMAT_POLICIES
from fot_jax.train import plans

OPTIMIZERS = ("adamw", "adafactor")
SCHEDULES = ("cosine", "rsqrt", "constant")
D_SCHEDULES = ("fixed", "switch", "sample")
PLANS = ("released", "mix")


class ConfigError(ValueError):
  """A config field has an invalid value; the message starts with the field's path."""


def _fail(field: str, expected: str, found: Any):
  raise ConfigError(f"config.{field}: expected {expected}, found {found!r}")


def _positive_int(c, field: str, allow_zero: bool = False):
  value = _get(c, field)
  ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and (value >= 0 if allow_zero
                                                                                 else value > 0)
  if not ok:
    _fail(field, "a non-negative integer" if allow_zero else "a positive integer", value)
  return int(value)


def _get(c, field: str):
  node = c
  for part in field.split("."):
    node = node[part]
  return node


def model_config_from(c) -> ModelConfig:
  """The ModelConfig of config.model, with ModelConfig's own error prefixed by the config path."""
  try:
    return ModelConfig.from_dict(dict(c.model.to_dict()))
  except (ValueError, TypeError) as e:
    msg = str(e).replace("ModelConfig.", "config.model.").replace("ModelConfig:", "config.model:")
    raise ConfigError(msg) from None


def d_values(fot) -> list[int]:
  """Every crossbatch d the schedule can use (one compiled train step each)."""
  if fot.plan == "mix":
    return [plans.mix_d(m) for m in plans.mixes(fot)]
  if fot.d_schedule == "fixed":
    return [int(fot.d)]
  if fot.d_schedule == "switch":
    return [int(fot.d), int(fot.d_after)]
  return sorted({int(x) for x in fot.d_choices})


def windows(fot) -> list[int]:
  """The crossbatch window W (slots, one compiled step each) of every plan the schedule can use."""
  if fot.plan == "mix":
    return [mix_window(parse_mix(m)) for m in plans.mixes(fot)]
  return d_values(fot)


def _exchange_error(batch: int, micro: int, k: int, micro_size: int, rows: int, sizes: list[int]):
  """The crossbatch window is exchanged between neighbouring devices, each holding micro_size / rows entries of
  every micro-batch: a micro-batch the batch axes cannot split evenly has no such layout."""
  fixes = [f"data.micro_batches={m}" for m in range(micro, 0, -1)
           if batch % (m * k) == 0 and (batch // m) % rows == 0][:1]
  unit = micro * math.lcm(k, rows)
  fixes.append(f"data.batch_size={-(-batch // unit) * unit}")
  _fail("data.batch_size/data.micro_batches", f"micro-batches whose {micro_size} entries split evenly over the "
        f"mesh's batch axes data*fsdp = {rows} (mesh.shape={tuple(sizes)}): crossbatch exchanges its window "
        f"between neighbouring devices that each hold an equal run of every micro-batch; e.g. "
        + " or ".join(fixes), f"{batch}/{micro}")


def validate(c, num_devices: int | None = None, process_count: int = 1) -> ModelConfig:
  """Validates the whole config; returns the ModelConfig. num_devices: check mesh.shape against it."""
  model = model_config_from(c)
  _positive_int(c, "num_steps")
  _positive_int(c, "seed", allow_zero=True)

  # data and batching
  if not isinstance(c.data.task, str) or not c.data.task:
    _fail("data.task", "a task name (e.g. 'stdlib', 'dict_lookup', 'mixture:offline')", c.data.task)
  batch = _positive_int(c, "data.batch_size")
  seq_len = _positive_int(c, "data.seq_len")
  micro = _positive_int(c, "data.micro_batches")
  k = _positive_int(c, "fot.k")
  if batch % (micro * k):
    _fail("data.batch_size", f"a multiple of data.micro_batches * fot.k = {micro} * {k} (each micro-batch holds "
          f"whole k-entry document streams)", batch)
  micro_size = batch // micro
  if (batch // k) % process_count:
    _fail("data.batch_size", f"batch_size / fot.k document streams divisible by the {process_count} processes",
          batch)
  if seq_len > model.max_position_embeddings:
    _fail("data.seq_len", f"at most model.max_position_embeddings={model.max_position_embeddings}", seq_len)
  _positive_int(c, "data.max_docs", allow_zero=True)

  # FoT crossbatch
  if c.fot.plan not in PLANS:
    _fail("fot.plan", f"one of {PLANS}", c.fot.plan)
  if c.fot.plan == "mix":
    fields = [("fot.mix", c.fot.mix)]
    if getattr(c.fot, "mix_after", ""):
      fields.append(("fot.mix_after", c.fot.mix_after))
      _positive_int(c, "fot.switch_step", allow_zero=True)
    for field, mix in fields:
      try:
        pairs = parse_mix(mix)
      except ValueError as e:
        _fail(field, f"'positives:negatives' pairs ({e})", mix)
      if len(pairs) != k:
        _fail(field, f"one pair per chunk position (fot.k={k})", mix)
      for j, (p, n) in enumerate(pairs):
        if p > j:
          _fail(field, f"at most {j} positives at chunk position {j}", mix)
        if n > micro_size - k:
          _fail(field, f"at most {micro_size - k} negatives (micro-batch {micro_size} minus the own stream)", mix)
    if len(fields) == 2 and plans.mix_d(c.fot.mix) == plans.mix_d(c.fot.mix_after):
      _fail("fot.mix_after", f"a mix whose d (largest positives + negatives) differs from fot.mix's "
            f"d={plans.mix_d(c.fot.mix)} (each d compiles one train step and names its plan)", c.fot.mix_after)
  else:
    if c.fot.d_schedule not in D_SCHEDULES:
      _fail("fot.d_schedule", f"one of {D_SCHEDULES}", c.fot.d_schedule)
    _positive_int(c, "fot.d", allow_zero=True)
    if c.fot.d_schedule == "switch":
      _positive_int(c, "fot.d_after", allow_zero=True)
      _positive_int(c, "fot.switch_step", allow_zero=True)
    if c.fot.d_schedule == "sample":
      choices = tuple(c.fot.d_choices)
      if not choices or any(not isinstance(x, int) or x < 0 for x in choices):
        _fail("fot.d_choices", "a non-empty tuple of non-negative integers", c.fot.d_choices)
    for d in d_values(c.fot):
      field = {"fixed": "fot.d", "switch": "fot.d/fot.d_after", "sample": "fot.d_choices"}[c.fot.d_schedule]
      if d >= micro_size:
        _fail(field, f"d below the micro-batch size data.batch_size/data.micro_batches = {micro_size}", d)
  if any(d > 0 for d in d_values(c.fot)) and not model.mem_layers:
    _fail("model.mem_layers", "at least one memory layer when crossbatch d > 0", model.mem_layers)

  # optimisation
  if c.optim.optimizer not in OPTIMIZERS:
    _fail("optim.optimizer", f"one of {OPTIMIZERS}", c.optim.optimizer)
  if c.optim.schedule not in SCHEDULES:
    _fail("optim.schedule", f"one of {SCHEDULES}", c.optim.schedule)
  if not c.optim.learning_rate > 0:
    _fail("optim.learning_rate", "a positive number", c.optim.learning_rate)
  _positive_int(c, "optim.warmup_steps", allow_zero=True)
  for field in ("weight_decay", "grad_clip"):
    if c.optim[field] < 0:
      _fail(f"optim.{field}", "a non-negative number", c.optim[field])

  # mesh
  shape = tuple(c.mesh.shape)
  if len(shape) != 3 or any(not isinstance(s, int) or (s <= 0 and s != -1) for s in shape) or shape.count(-1) > 1:
    _fail("mesh.shape", "(data, fsdp, tensor): three positive sizes, at most one -1", c.mesh.shape)
  if num_devices is not None:
    known = int(np.prod([s for s in shape if s != -1]))
    if (-1 in shape and num_devices % known) or (-1 not in shape and known != num_devices):
      _fail("mesh.shape", f"sizes whose product matches the {num_devices} devices", c.mesh.shape)
    if known > 0 and num_devices % known == 0:
      sizes = [num_devices // known if x == -1 else x for x in shape]
      rows = sizes[0] * sizes[1]
      if batch % rows:
        _fail("data.batch_size", f"a multiple of the mesh's batch axes data*fsdp = {rows}", batch)
      if rows > 1 and micro_size % rows and any(w > 0 for w in windows(c.fot)):
        _exchange_error(batch, micro, k, micro_size, rows, sizes)
      if c.eval.every_steps and c.eval.batch_size % rows:
        _fail("eval.batch_size", f"a multiple of the mesh's batch axes data*fsdp = {rows}", c.eval.batch_size)
  if c.mesh.remat not in REMAT_POLICIES:
    _fail("mesh.remat", f"one of {sorted(REMAT_POLICIES)}", c.mesh.remat)

  # checkpoint, log, eval
  _positive_int(c, "checkpoint.every_steps")
  _positive_int(c, "checkpoint.keep")
  if _positive_int(c, "checkpoint.export_hf_every", allow_zero=True):
    try:
      check_exportable(model)
    except ValueError as e:
      _fail("checkpoint.export_hf_every", f"0 for a model with no Hugging Face form ({e})",
            c.checkpoint.export_hf_every)
  _positive_int(c, "log.every_steps")
  _positive_int(c, "eval.every_steps", allow_zero=True)
  if c.eval.every_steps:
    eb, ek = _positive_int(c, "eval.batch_size"), _positive_int(c, "eval.k")
    _positive_int(c, "eval.num_batches")
    if eb % ek:
      _fail("eval.batch_size", f"a multiple of eval.k={ek}", eb)
    if (eb // ek) % process_count:
      _fail("eval.batch_size", f"eval.batch_size / eval.k divisible by the {process_count} processes", eb)
    ed = _positive_int(c, "eval.d", allow_zero=True)
    if ed >= eb:
      _fail("eval.d", f"below eval.batch_size={eb}", ed)
  return model
