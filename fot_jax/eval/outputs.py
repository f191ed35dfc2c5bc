"""What the evaluations write: atomic JSON results (NaN as null), figures (matplotlib on Agg), progress lines."""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np


def write_json(path: str, result: dict) -> None:
  """Writes a result atomically; every result records the vocabulary its token ids mean."""
  if "vocab" not in result:
    raise ValueError(f"internal: the {result.get('task')!r} result records no vocabulary")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(_jsonable(result), f, indent=1, sort_keys=False, allow_nan=True)
    f.write("\n")
  os.replace(tmp, path)


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, (np.floating, float)):
    return None if math.isnan(float(x)) else float(x)
  if isinstance(x, np.integer):
    return int(x)
  if isinstance(x, np.bool_):
    return bool(x)
  return x


def figure_path(args) -> str:
  if getattr(args, "figure", None):
    return args.figure
  root, _ = os.path.splitext(args.out)
  return root + ".png"


def pyplot():
  """matplotlib.pyplot on the Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def finish_axes(ax, xlabel: str, ylabel: str, title: str | None = None, *, log2_x: bool = True,
                unit_y: bool = False) -> None:
  """The look the evaluation figures share: a log2 x axis, a [0, 1] y axis for shares, labels, grid and legend."""
  if log2_x:
    ax.set_xscale("log", base=2)
  if unit_y:
    ax.set_ylim(-0.03, 1.03)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title is not None:
    ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def publish(args, result: dict, plot, compare=()) -> dict:
  """Writes the result (--out) and its figure, with the --compare runs beside it; returns the result."""
  write_json(args.out, result)
  plot(result, figure_path(args), compare, result["label"])
  return result


def save_figure(fig, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  pyplot().close(fig)


class Progress:
  """'task: i/n (x.x s) detail' lines on stderr, at most every `every` seconds (always the last one)."""

  def __init__(self, task: str, total: int, quiet: bool = False, every: float = 5.0):
    self.task, self.total, self.quiet, self.every = task, total, quiet, every
    self.start = self.last = time.time()

  def __call__(self, done: int, detail: str = "") -> None:
    now = time.time()
    if self.quiet or (now - self.last < self.every and done < self.total):
      return
    self.last = now
    print(f"{self.task}: {done}/{self.total} ({now - self.start:.1f}s) {detail}", file=sys.stderr, flush=True)
