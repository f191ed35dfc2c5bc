"""Typed, frozen training config: one section per concern, each checking its own fields (see run.TrainConfig)."""

from fot_jax.train.config.crossbatch import CrossbatchConfig, PlanChoice
from fot_jax.train.config.run import TrainConfig
from fot_jax.train.config.sections import (
    CheckpointConfig, DataConfig, DistributedConfig, EvalConfig, LogConfig, MeshConfig, OptimConfig)

__all__ = ["CheckpointConfig", "CrossbatchConfig", "DataConfig", "DistributedConfig", "EvalConfig", "LogConfig",
           "MeshConfig", "OptimConfig", "PlanChoice", "TrainConfig"]
