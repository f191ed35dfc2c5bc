"""Indexable document sources for the batcher: a memory-mapped token cache of a seqio task split, and a seeded
mixture over several sources.

A task split is tokenized once into <data_dir>/tokens/<task>/<split>/ (flat tokens + offsets [+ loss weights]);
afterwards document i is a slice of a memory map, so a process touches only the documents of its own slots.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Iterable, Mapping, Sequence

import numpy as np

CACHE_VERSION = 1


class CachedDocuments:
  """Documents of a token cache directory: `docs[i]` -> {'targets'[, 'loss_weights']}; `lengths` is cheap."""

  def __init__(self, path: str):
    meta_path = os.path.join(path, "meta.json")
    if not os.path.exists(meta_path):
      raise FileNotFoundError(f"token cache {path!r} is missing or incomplete (no meta.json)")
    with open(meta_path) as f:
      self.meta = json.load(f)
    self.path = path
    self.tokens = np.load(os.path.join(path, "tokens.npy"), mmap_mode="r")
    self.offsets = np.load(os.path.join(path, "offsets.npy"))
    wpath = os.path.join(path, "loss_weights.npy")
    self.weights = np.load(wpath, mmap_mode="r") if os.path.exists(wpath) else None
    self.lengths = np.diff(self.offsets)

  def __len__(self) -> int:
    return len(self.lengths)

  def __getitem__(self, i: int):
    a, b = int(self.offsets[i]), int(self.offsets[i + 1])
    out = {"targets": np.asarray(self.tokens[a:b], np.int32)}
    if self.weights is not None:
      out["loss_weights"] = np.asarray(self.weights[a:b], np.float32)
    return out

  @property
  def num_tokens(self) -> int:
    return int(self.offsets[-1])


def write_token_cache(path: str, docs: Iterable[Mapping[str, np.ndarray]], meta: dict | None = None) -> str:
  """Writes documents to a cache directory atomically (temp dir + rename); returns path."""
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp_", dir=parent)
  try:
    tokens, weights, lengths, any_weights = [], [], [], False
    for d in docs:
      t = np.asarray(d["targets"], np.int32)
      tokens.append(t)
      lengths.append(len(t))
      w = d.get("loss_weights")
      any_weights |= w is not None
      weights.append(np.ones(len(t), np.float32) if w is None else np.asarray(w, np.float32))
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    np.save(os.path.join(tmp, "tokens.npy"), np.concatenate(tokens) if tokens else np.zeros(0, np.int32))
    np.save(os.path.join(tmp, "offsets.npy"), offsets)
    if any_weights:
      np.save(os.path.join(tmp, "loss_weights.npy"), np.concatenate(weights))
    with open(os.path.join(tmp, "meta.json"), "w") as f:
      json.dump({"version": CACHE_VERSION, "num_docs": len(lengths), "num_tokens": int(offsets[-1]),
                 **(meta or {})}, f)
    if os.path.exists(path):  # another process finished first: keep its (identical) copy
      shutil.rmtree(tmp)
    else:
      os.rename(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return path


def task_cache_path(data_dir: str, task_name: str, split: str) -> str:
  return os.path.join(data_dir, "tokens", f"v{CACHE_VERSION}", task_name, split)


def task_documents_cached(task_name: str, split: str, data_dir: str) -> CachedDocuments:
  """The cached documents of a seqio task split, tokenizing the split once if the cache is missing."""
  path = task_cache_path(data_dir, task_name, split)
  if not os.path.exists(os.path.join(path, "meta.json")):
    from fot_jax.data import tasks
    write_token_cache(path, tasks.task_documents(task_name, split), {"task": task_name, "split": split})
  return CachedDocuments(path)


class MixtureDocuments:
  """A virtual document list drawing each document from source j with probability rates[j] (seeded).

  Document i is (source, index) = f(seed, i): indexable and process-count independent like any other source.
  `num_docs` defaults to the total number of documents of all sources.
  """

  def __init__(self, sources: Sequence, rates: Sequence[float], seed: int = 0, num_docs: int | None = None):
    if len(sources) != len(rates) or not sources:
      raise ValueError(f"MixtureDocuments needs one rate per source, got {len(sources)} sources, {len(rates)} rates")
    rates = np.asarray(rates, np.float64)
    if (rates <= 0).any():
      raise ValueError(f"mixture rates must be > 0, got {rates.tolist()}")
    for j, s in enumerate(sources):
      if len(s) == 0:
        raise ValueError(f"mixture source {j} has no documents (all below its minimum length, or empty)")
    self.sources = list(sources)
    n = int(num_docs if num_docs is not None else sum(len(s) for s in sources))
    rng = np.random.default_rng([seed, 0x6d6978])
    self.which = rng.choice(len(sources), size=n, p=rates / rates.sum()).astype(np.int32)
    self.index = np.zeros(n, np.int64)
    for j, s in enumerate(sources):  # each source cycles through a seeded permutation of its documents
      sel = np.flatnonzero(self.which == j)
      perm = np.random.default_rng([seed, j]).permutation(len(s))
      self.index[sel] = perm[np.arange(len(sel)) % len(s)]
    src_lengths = [np.asarray(getattr(s, "lengths")) if hasattr(s, "lengths") else None for s in sources]
    if all(x is not None for x in src_lengths):
      self.lengths = np.array([src_lengths[w][i] for w, i in zip(self.which, self.index)], np.int64)

  def __len__(self) -> int:
    return len(self.which)

  def __getitem__(self, i: int):
    return self.sources[int(self.which[i])][int(self.index[i])]
