"""Which additional contexts each batch entry sees in crossbatch training.

Every plan reads its additional contexts from a window of W earlier entries of the same micro-batch: slot c
(0-based) of entry b holds entry (b - offsets[c]) mod B with the STATIC offsets 1..W (nearest first), so the
window is a fixed shape of the compiled step and its contexts come from the same device or its neighbours
(fot_jax.model.exchange). Which slots take part in entry b's softmax is a RUNTIME mask:
  visible [B, W] bool: whether slot c takes part in entry b's softmax.
A plan is that one host-side array for one micro-batch. Changing the mix of positives and negatives only changes
`visible`, so it never recompiles; each distinct window W compiles once; parameters never depend on W.
Released plans have W = d; a per-position mix has W = the largest j + n_j over chunk positions j with negatives
(positives only: the largest p_j).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class CrossbatchPlan:
  visible: np.ndarray  # [B, W] bool; slot c holds entry (b - c - 1) mod B

  @property
  def batch(self) -> int:
    return self.visible.shape[0]

  @property
  def window(self) -> int:
    """W: the number of slots (the compiled shape)."""
    return self.visible.shape[1]

  @property
  def d(self) -> int:
    """The largest number of additional contexts any entry sees (the paper's crossbatch dimension)."""
    return int(self.visible.sum(axis=1).max(initial=0))

  @property
  def offsets(self) -> tuple[int, ...]:
    """offsets[c]: how many entries back slot c reaches (static)."""
    return tuple(range(1, self.window + 1))

  @property
  def sources(self) -> np.ndarray:
    """[B, W] int32: the entry each slot holds (derived from the static offsets; for reading plans)."""
    return window_sources(self.batch, self.window)

  def visible_entries(self) -> list[list[int]]:
    """For each entry: itself first, then the visible sources nearest first (the spec's check tables)."""
    sources = self.sources
    return [[b] + [int(s) for s, v in zip(sources[b], self.visible[b]) if v] for b in range(self.batch)]

  def positives_negatives(self, k: int) -> list[tuple[int, int]]:
    """(positives, negatives) per entry, with streams of k consecutive entries."""
    out = []
    for b, seen in enumerate(self.visible_entries()):
      pos = sum(1 for s in seen[1:] if s // k == b // k)
      out.append((pos, len(seen) - 1 - pos))
    return out


def window_sources(batch: int, window: int) -> np.ndarray:
  """[B, W] int32: slot c of entry b holds entry (b - c - 1) mod B."""
  return ((np.arange(batch)[:, None] - np.arange(1, window + 1)[None, :]) % max(batch, 1)).astype(np.int32)


def _check_common(batch: int, k: int, window: int, name: str = "d") -> None:
  if batch <= 0:
    raise ValueError(f"crossbatch: batch (micro-batch size) must be positive, found {batch}")
  if k <= 0:
    raise ValueError(f"crossbatch: k (entries per document stream) must be positive, found {k}")
  if batch % k:
    raise ValueError(f"crossbatch: batch={batch} must be divisible by k={k} (entries per document stream)")
  if window < 0:
    raise ValueError(f"crossbatch: {name} (additional contexts) must be >= 0, found {window}")


def released_plan(batch: int, k: int, d: int, stepping: bool = True) -> CrossbatchPlan:
  """The released LongLLaMA visibility: slot c-1 holds entry b-c, visible when c < n_b (n_b below). W = d."""
  _check_common(batch, k, d)
  if d >= batch:
    raise ValueError(f"crossbatch: d={d} must be smaller than the micro-batch size {batch}")
  visible = np.zeros((batch, d), bool)
  for i in range(batch):
    if stepping and k > 1:
      step = -(-(d + 1) // max(k - 1, 1))
      n_i = min((i % k) * step + 1, d + 1)
    else:
      n_i = d + 1
    n_i = min(n_i, i + 1)  # slots reaching before entry 0 wrap around the micro-batch: never visible
    visible[i, :max(n_i - 1, 0)] = True
  return CrossbatchPlan(visible)


def mix_window(mix: Sequence[tuple[int, int]]) -> int:
  """W of a per-position mix: chunk position j reads offsets 1..p_j (positives) and j+1..j+n_j (negatives)."""
  return max(((j + n) if n else p for j, (p, n) in enumerate(mix)), default=0)


def mix_plan(batch: int, k: int, mix: Sequence[tuple[int, int]], window: int | None = None) -> CrossbatchPlan:
  """A per-position (positives, negatives) mix, e.g. the paper's 7B mix ((0,0),(1,2),(2,5),(3,4)) with k=4.

  mix[j] applies to the j-th chunk of every document stream. Positives are the p_j nearest earlier chunks of the
  same stream (offsets 1..p_j); negatives are the n_j nearest entries before the stream's chunk 0 (offsets
  j+1..j+n_j, other streams, wrapping around the micro-batch). window defaults to mix_window(mix); slots beyond
  an entry's choice are invisible.
  """
  mix = [tuple(int(x) for x in pn) for pn in mix]
  if len(mix) != k:
    raise ValueError(f"crossbatch.mix: expected one (positives, negatives) pair per chunk position (k={k}), "
                     f"found {len(mix)} pairs")
  need = mix_window(mix)
  window = need if window is None else window
  _check_common(batch, k, window, "window")
  if need > window:
    raise ValueError(f"crossbatch.mix: needs a window >= {need}, found window={window}")
  if window >= batch:
    raise ValueError(f"crossbatch.mix: window={window} must be smaller than the micro-batch size {batch}")
  for j, (p, n) in enumerate(mix):
    if p < 0 or n < 0:
      raise ValueError(f"crossbatch.mix[{j}]: counts must be >= 0, found {(p, n)}")
    if p > j:
      raise ValueError(f"crossbatch.mix[{j}]: chunk {j} of a stream has only {j} earlier chunks, "
                       f"asked for {p} positives")
    if n > batch - k:
      raise ValueError(f"crossbatch.mix[{j}]: {n} negatives asked, but a micro-batch of {batch} with k={k} has "
                       f"only {batch - k} entries from other streams")
  visible = np.zeros((batch, window), bool)
  for b in range(batch):
    j = b % k
    p, n = mix[j]
    visible[b, :p] = True  # offsets 1..p
    visible[b, j:j + n] = True  # offsets j+1..j+n
  return CrossbatchPlan(visible)


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
  """W = 0: memory layers see only their local context (a standard transformer)."""
  return CrossbatchPlan(np.zeros((batch, 0), bool))
