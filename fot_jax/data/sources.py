"""Indexable document sources for the batcher: the token cache of a seqio task split, and a seeded mixture over
several sources.

A task split is tokenized once into <data_dir>/tokens/v1/<task>/<split>/ (fot_jax.data.token_cache: shards of
flat tokens + offsets [+ loss weights] and an index); afterwards document i is a slice of a memory map (or a
ranged read on a bucket), so a process touches only the documents of its own slots.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fot_jax.data import cache_build, fs, token_cache
from fot_jax.data.locking import build_lock
from fot_jax.data.token_cache import CachedDocuments, CacheError  # noqa: F401 (the cache reader, re-exported)


def task_documents_cached(task_name: str, split: str, data_dir: str, processes: int = 1,
                          register: Callable[[], str] | None = None) -> CachedDocuments:
  """The cached documents of a seqio task split, building the cache first if it is missing or unfinished
  (one builder at a time per cache; a parallel build left unfinished is completed with its own shard count).
  With processes > 1 and `register` (a picklable callable registering the task in a fresh process), the build
  runs in that many local processes (cache_build.build_local)."""
  from fot_jax.data import tasks
  path = cache_build.task_cache_path(data_dir, task_name, split)
  if not token_cache.is_complete(path):
    parent = fs.join(data_dir, "tokens", f"v{token_cache.CACHE_VERSION}")
    with build_lock(parent, f"{task_name}.{split}"):
      if not token_cache.is_complete(path):
        if processes > 1 and register is not None:
          cache_build.build_local(task_name, split, path, processes, register)
        else:
          cache_build.build(task_name, split, path)
  return CachedDocuments(path, expected_vocab=tasks.task_vocab_tag(task_name))


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
