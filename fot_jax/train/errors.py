"""Errors training, evaluation and export raise for things the user must act on; each prints as one line.

Checkpoint errors also subclass ValueError so the evaluation and export commands, which report ValueError as a
user error, print them the same way the trainer does.
"""

from __future__ import annotations


class ConfigError(ValueError):
  """A config field has an invalid value; the message starts with the field's path."""


class TrainingError(RuntimeError):
  """Training stopped for a reason the user must act on (non-finite loss, bad checkpoint, ...)."""


class CheckpointError(TrainingError, ValueError):
  """A checkpoint step cannot be used; the message names its path."""


class UnreadableCheckpointError(CheckpointError):
  """A step's files are missing, truncated or hold the wrong structure (damage, not a config change)."""

  def __init__(self, path: str, step: int, problem: str):
    super().__init__(f"checkpoint step {step} at {path} is unreadable: {problem}")
    self.path, self.step, self.problem = path, step, problem


class CheckpointSaveError(CheckpointError):
  """Writing a step failed (e.g. the disk is full); the earlier steps are untouched."""


class CheckpointConfigMismatch(ConfigError, TrainingError):
  """The config asks for a different model or data layout than the checkpoint holds; the checkpoint is fine."""
