"""Helpers for sweep files: lists of override dicts combined by grid product, zip, and concatenation.

A sweep is a list of jobs; a job is a dict {dotted config key: value}. Build one from axes:

  grid({"optim.learning_rate": [1e-3, 3e-3], "data.batch_size": [8, 16]})   # 4 jobs (product)
  zipped(sweep("fot.d", [2, 4]), sweep("fot.d_after", [4, 8]))              # 2 jobs (pairwise)
  product(fixed({"num_steps": 200}), grid({...}))                           # shared overrides
  chain(grid({...}), grid({...}))                                           # union of two sweeps
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping, Sequence

Job = dict[str, Any]


def sweep(key: str, values: Iterable[Any]) -> list[Job]:
  """One axis: [{key: v} for v in values]."""
  values = list(values)
  if not values:
    raise ValueError(f"sweep({key!r}, ...): no values")
  return [{key: v} for v in values]


def fixed(overrides: Mapping[str, Any]) -> list[Job]:
  """A single job; product() with it adds shared overrides to every job of another sweep."""
  return [dict(overrides)]


def _merge(jobs: Sequence[Job]) -> Job:
  out: Job = {}
  for job in jobs:
    clash = set(out) & set(job)
    if clash:
      raise ValueError(f"sweep axes set the same key twice: {sorted(clash)}")
    out.update(job)
  return out


def product(*sweeps: Sequence[Job]) -> list[Job]:
  """Cartesian product: every combination, the first sweep varying slowest."""
  return [_merge(combo) for combo in itertools.product(*sweeps)]


def zipped(*sweeps: Sequence[Job]) -> list[Job]:
  """Elementwise: the i-th job merges the i-th job of each sweep; lengths must match."""
  lengths = {len(s) for s in sweeps}
  if len(lengths) > 1:
    raise ValueError(f"zipped: sweeps have different lengths {[len(s) for s in sweeps]}")
  return [_merge(combo) for combo in zip(*sweeps)]


def chain(*sweeps: Sequence[Job]) -> list[Job]:
  """Concatenation: the jobs of each sweep in turn."""
  return [dict(job) for s in sweeps for job in s]


def grid(axes: Mapping[str, Iterable[Any]]) -> list[Job]:
  """Product over {key: values} axes, in the mapping's order."""
  return product(*(sweep(k, v) for k, v in axes.items()))
