"""Which additional contexts each batch entry sees in crossbatch training (spec section 2).

A plan is two host-side arrays for one micro-batch of B entries and a crossbatch dimension d:
  sources [B, d] int32: the entry whose keys/values fill additional-context slot c of entry b;
  visible [B, d] bool:  whether slot c takes part in entry b's softmax.
Plans are runtime inputs of the jitted step, so any mix of positives and negatives runs under one compilation
per distinct d; parameters never depend on d.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class CrossbatchPlan:
  sources: np.ndarray  # [B, d] int32, indices inside the micro-batch
  visible: np.ndarray  # [B, d] bool

  @property
  def batch(self) -> int:
    return self.sources.shape[0]

  @property
  def d(self) -> int:
    return self.sources.shape[1]

  def visible_entries(self) -> list[list[int]]:
    """For each entry: itself first, then the visible sources in slot order (the spec's check tables)."""
    return [[b] + [int(s) for s, v in zip(self.sources[b], self.visible[b]) if v] for b in range(self.batch)]

  def positives_negatives(self, k: int) -> list[tuple[int, int]]:
    """(positives, negatives) per entry, with streams of k consecutive entries."""
    out = []
    for b in range(self.batch):
      srcs = [int(s) for s, v in zip(self.sources[b], self.visible[b]) if v]
      pos = sum(1 for s in srcs if s // k == b // k)
      out.append((pos, len(srcs) - pos))
    return out


def _check_common(batch: int, k: int, d: int) -> None:
  if batch <= 0:
    raise ValueError(f"crossbatch: batch (micro-batch size) must be positive, found {batch}")
  if k <= 0:
    raise ValueError(f"crossbatch: k (entries per document stream) must be positive, found {k}")
  if batch % k:
    raise ValueError(f"crossbatch: batch={batch} must be divisible by k={k} (entries per document stream)")
  if d < 0:
    raise ValueError(f"crossbatch: d (additional contexts) must be >= 0, found {d}")


def released_plan(batch: int, k: int, d: int, stepping: bool = True) -> CrossbatchPlan:
  """The released LongLLaMA visibility: slot c-1 holds entry b-c, visible when c < n_b (spec section 2)."""
  _check_common(batch, k, d)
  if d >= batch:
    raise ValueError(f"crossbatch: d={d} must be smaller than the micro-batch size {batch}")
  sources = np.zeros((batch, d), np.int32)
  visible = np.zeros((batch, d), bool)
  for i in range(batch):
    if stepping and k > 1:
      step = -(-(d + 1) // max(k - 1, 1))
      n_i = min((i % k) * step + 1, d + 1)
    else:
      n_i = d + 1
    n_i = min(n_i, i + 1)
    for c in range(1, d + 1):
      sources[i, c - 1] = (i - c) % batch  # invisible slots point at a valid entry and are masked
      visible[i, c - 1] = c < n_i
  return CrossbatchPlan(sources, visible)


def mix_plan(batch: int, k: int, mix: Sequence[tuple[int, int]], d: int | None = None) -> CrossbatchPlan:
  """A per-position (positives, negatives) mix, e.g. the paper's 7B mix ((0,0),(1,2),(2,5),(3,4)) with k=4.

  mix[j] applies to the j-th chunk of every document stream. Positives are the j nearest earlier chunks of the
  same stream (nearest first); negatives are the nearest entries before b from other streams, wrapping around
  the micro-batch. d defaults to the largest positives+negatives; slots beyond an entry's count are invisible.
  """
  mix = [tuple(int(x) for x in pn) for pn in mix]
  if len(mix) != k:
    raise ValueError(f"crossbatch.mix: expected one (positives, negatives) pair per chunk position (k={k}), "
                     f"found {len(mix)} pairs")
  need = max((p + n for p, n in mix), default=0)
  d = need if d is None else d
  _check_common(batch, k, d)
  if need > d:
    raise ValueError(f"crossbatch.mix: needs d >= {need}, found d={d}")
  for j, (p, n) in enumerate(mix):
    if p < 0 or n < 0:
      raise ValueError(f"crossbatch.mix[{j}]: counts must be >= 0, found {(p, n)}")
    if p > j:
      raise ValueError(f"crossbatch.mix[{j}]: chunk {j} of a stream has only {j} earlier chunks, "
                       f"asked for {p} positives")
    if n > batch - k:
      raise ValueError(f"crossbatch.mix[{j}]: {n} negatives asked, but a micro-batch of {batch} with k={k} has "
                       f"only {batch - k} entries from other streams")
  sources = np.zeros((batch, d), np.int32)
  visible = np.zeros((batch, d), bool)
  for b in range(batch):
    p, n = mix[b % k]
    stream = b // k
    chosen = [b - c for c in range(1, p + 1)]
    others = [(b - c) % batch for c in range(1, batch)]
    chosen += [o for o in others if o // k != stream][:n]
    for slot in range(d):
      if slot < len(chosen):
        sources[b, slot], visible[b, slot] = chosen[slot], True
      else:
        sources[b, slot] = b  # masked
  return CrossbatchPlan(sources, visible)


def parse_mix(text: str) -> tuple[tuple[int, int], ...]:
  """Parses '0:0,1:2,2:5,3:4' into ((0,0),(1,2),(2,5),(3,4))."""
  pairs = []
  for item in text.split(","):
    item = item.strip()
    if not item:
      continue
    try:
      p, n = item.split(":")
      pairs.append((int(p), int(n)))
    except ValueError:
      raise ValueError(f"crossbatch mix: expected 'positives:negatives' pairs like '0:0,1:2', found {item!r}")
  return tuple(pairs)


def empty_plan(batch: int) -> CrossbatchPlan:
  """d = 0: memory layers see only their local context (a standard transformer)."""
  return CrossbatchPlan(np.zeros((batch, 0), np.int32), np.zeros((batch, 0), bool))
