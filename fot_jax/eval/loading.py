"""One loader for evaluation: an orbax workdir (training or conversion output) or a Hugging Face folder."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp

from fot_jax.model.config import ModelConfig
from fot_jax.model.modules import FoTLlama


@dataclasses.dataclass
class LoadedModel:
  model: FoTLlama  # the module over the loaded parameters, with the overridden config
  source: str  # "orbax" or "hf"
  step: int | None = None

  @property
  def params(self) -> Any:
    """The fot_jax parameter tree (jax arrays)."""
    return self.model.params()

  @property
  def config(self) -> ModelConfig:
    return self.model.config


def mem_layers_flag(value: str | None) -> tuple[int, ...] | None:
  """--mem_layers: None keeps the checkpoint's layers, '' disables memory, '1,2' sets them."""
  if value is None:
    return None
  from fot_jax.model.config import parse_mem_layers
  try:
    return parse_mem_layers(value)
  except ValueError as e:
    raise ValueError(f"--mem_layers: expected comma-separated integers, found {value!r}") from e


def checkpoint_kind(path: str) -> str:
  """'orbax' for a workdir with checkpoints/, 'hf' for a folder with config.json; FileNotFoundError otherwise."""
  from fot_jax.train.checkpoint import CHECKPOINT_SUBDIR
  if not os.path.isdir(path):
    raise FileNotFoundError(f"--checkpoint {path}: no such directory")
  if os.path.isdir(os.path.join(path, CHECKPOINT_SUBDIR)):
    return "orbax"
  if os.path.isfile(os.path.join(path, "config.json")):
    return "hf"
  raise FileNotFoundError(f"--checkpoint {path}: neither an orbax workdir ({CHECKPOINT_SUBDIR}/) nor a Hugging "
                          f"Face folder (config.json)")


def load_model(path: str, step: int | None = None, **config_overrides) -> LoadedModel:
  """Loads the model (an FoTLlama module); config_overrides (None values ignored) replace ModelConfig fields
  (validated)."""
  kind = checkpoint_kind(path)
  overrides = {k: v for k, v in config_overrides.items() if v is not None}
  if kind == "orbax":
    from fot_jax.train.checkpoint import load_params
    params, config, step = load_params(path, step)
  else:
    from fot_jax.convert.hf import load_hf_folder
    numpy_params, config = load_hf_folder(path)
    params = jax.tree.map(jnp.asarray, numpy_params)
  return LoadedModel(FoTLlama.from_params(config.replace(**overrides) if overrides else config, params), kind, step)
