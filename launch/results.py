"""What a finished (or running) training job left in its workdir, read without importing JAX or orbax.

The trainer writes `<workdir>/metrics.jsonl` (one JSON object per logged step: {"step", "kind": "train" |
"eval", "loss", ...}) and orbax checkpoints under `<workdir>/checkpoints/<step>/`. Orbax writes a step into a
temporary directory and renames it when complete, so the integer-named directories are the complete steps.
This module is the one place that knows those names; adapt it if the trainer's files change.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_SUBDIR = "checkpoints"


def _open(path: str):
  if "://" in path:  # gs:// and friends through etils (orbax's own path layer)
    from etils import epath
    return epath.Path(path).open("r")
  return open(path)


def _listdir(path: str) -> list[str]:
  if "://" in path:
    from etils import epath
    p = epath.Path(path)
    return [c.name for c in p.iterdir()] if p.exists() else []
  return os.listdir(path) if os.path.isdir(path) else []


def checkpoint_steps(workdir: str) -> list[int]:
  """Complete checkpoint steps in workdir, ascending."""
  return sorted(int(n) for n in _listdir(f"{workdir.rstrip('/')}/{CHECKPOINT_SUBDIR}") if n.isdigit())


def latest_step(workdir: str) -> int | None:
  steps = checkpoint_steps(workdir)
  return steps[-1] if steps else None


def is_finished(workdir: str, num_steps: int) -> bool:
  """True when workdir holds a complete checkpoint at step >= num_steps (the trainer always saves the last)."""
  last = latest_step(workdir)
  return last is not None and last >= num_steps


def read_metrics(workdir: str) -> list[dict]:
  """The metrics.jsonl records ([] if absent); a torn last line (a killed writer) is skipped."""
  path = f"{workdir.rstrip('/')}/{METRICS_FILE}"
  try:
    with _open(path) as f:
      lines = f.read().splitlines()
  except (FileNotFoundError, OSError):
    return []
  records = []
  for line in lines:
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return records


@dataclasses.dataclass
class Summary:
  last_step: int | None = None
  final_train_loss: float | None = None
  best_eval_loss: float | None = None
  best_eval_step: int | None = None


def summarize(workdir: str) -> Summary:
  """Final train loss (the last train record) and best eval loss (the minimum over eval records)."""
  s = Summary()
  for r in read_metrics(workdir):
    loss = r.get("loss")
    if loss is None or not isinstance(loss, (int, float)) or math.isnan(loss):
      continue
    if r.get("kind", "train") == "train":
      s.final_train_loss, s.last_step = float(loss), int(r.get("step", 0))
    elif r.get("kind") == "eval" and (s.best_eval_loss is None or loss < s.best_eval_loss):
      s.best_eval_loss, s.best_eval_step = float(loss), int(r.get("step", 0))
  return s
