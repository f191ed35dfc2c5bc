"""The token cache format: shards of flat tokens + document offsets, and an index that makes them one source.

A shard directory holds tokens.npy (int32), offsets.npy (int64, num_docs+1), optionally loss_weights.npy,
positions.npy (each document's position in the source, for ordering) and meta.json, written last: a shard is
complete exactly when meta.json exists. A cache directory holds shards/<i>-of-<n>/ and index/ (order.npy: the
(shard, document) of every global document, sorted by source position, and index.json, written last), so a
cache built by N processes lists its documents in the same order as one built by a single process. A cache
written before shards existed (meta.json at the top) is read as one shard. Paths may be local or any fsspec
URL; token reads are memory maps locally and ranged reads elsewhere.
"""

from __future__ import annotations

import io
import json
from typing import Iterable, Mapping

import numpy as np

from fot_jax.data import fs

CACHE_VERSION = 1
SHARD_MARKER = "meta.json"
INDEX_DIR, INDEX_MARKER = "index", "index.json"


class CacheError(ValueError):
  """A token cache that cannot be used as asked (incomplete, other vocabulary, inconsistent shards)."""


def shard_name(shard: int, num_shards: int) -> str:
  return f"{shard:05d}-of-{num_shards:05d}"


def shard_path(cache: str, shard: int, num_shards: int) -> str:
  return fs.join(cache, "shards", shard_name(shard, num_shards))


def shard_complete(path: str) -> bool:
  return fs.exists(fs.join(path, SHARD_MARKER))


def is_complete(cache: str) -> bool:
  """True when the cache can be read: its index exists (or it is a single-directory cache)."""
  return fs.exists(fs.join(cache, INDEX_DIR, INDEX_MARKER)) or shard_complete(cache)


def _npy_bytes(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  np.save(buf, array)
  return buf.getvalue()


def write_shard(path: str, docs: Iterable[Mapping[str, np.ndarray]], meta: dict | None = None) -> bool:
  """Writes documents ({'targets'[, 'loss_weights', 'position']}) as one shard directory, published when
  complete; False when a complete copy already existed (kept)."""
  tokens, weights, lengths, positions, any_weights = [], [], [], [], False
  for i, d in enumerate(docs):
    t = np.asarray(d["targets"], np.int32)
    tokens.append(t)
    lengths.append(len(t))
    positions.append(int(d.get("position", i)))
    w = d.get("loss_weights")
    any_weights |= w is not None
    weights.append(np.ones(len(t), np.float32) if w is None else np.asarray(w, np.float32))
  offsets = np.zeros(len(lengths) + 1, np.int64)
  np.cumsum(lengths, out=offsets[1:])
  tmp = fs.temp_sibling(path)
  try:
    files = {"tokens.npy": np.concatenate(tokens) if tokens else np.zeros(0, np.int32), "offsets.npy": offsets,
             "positions.npy": np.asarray(positions, np.int64)}
    if any_weights:
      files["loss_weights.npy"] = np.concatenate(weights)
    for name, array in files.items():
      fs.write_bytes(fs.join(tmp, name), _npy_bytes(array))
    info = {"version": CACHE_VERSION, "num_docs": len(lengths), "num_tokens": int(offsets[-1]), **(meta or {})}
    fs.write_bytes(fs.join(tmp, SHARD_MARKER), json.dumps(info).encode())
    return fs.publish_dir(tmp, path, SHARD_MARKER)
  except BaseException:
    fs.remove(tmp)
    raise


class TokenArray:
  """A 1-D .npy file read by slices: a memory map for local files, ranged reads (header parsed once) elsewhere."""

  def __init__(self, path: str):
    self.path = path
    if fs.is_local(path):
      self._mmap = np.load(path.removeprefix("file://"), mmap_mode="r")
      self.dtype, self.size = self._mmap.dtype, len(self._mmap)
      return
    self._mmap = None
    head = io.BytesIO(fs.read_range(path, 0, 4096))
    version = np.lib.format.read_magic(head)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(head)
    if len(shape) != 1 or fortran:
      raise CacheError(f"{path}: expected a 1-D C-order array, found shape {shape}")
    self.dtype, self.size, self._data_start = np.dtype(dtype), int(shape[0]), head.tell()

  def __getitem__(self, sl: slice) -> np.ndarray:
    a, b, _ = sl.indices(self.size)
    if self._mmap is not None:
      return np.asarray(self._mmap[a:b])
    if b <= a:
      return np.zeros(0, self.dtype)
    item = self.dtype.itemsize
    raw = fs.read_range(self.path, self._data_start + a * item, self._data_start + b * item)
    return np.frombuffer(raw, self.dtype)


def _load_small(path: str) -> np.ndarray:
  return np.load(io.BytesIO(fs.read_bytes(path)))


class TokenShard:
  """One shard directory: `shard[i]` -> {'targets'[, 'loss_weights']}; offsets and positions in memory."""

  def __init__(self, path: str):
    if not shard_complete(path):
      raise CacheError(f"token cache shard {path!r} is missing or incomplete (no {SHARD_MARKER})")
    self.path = path
    self.meta = json.loads(fs.read_bytes(fs.join(path, SHARD_MARKER)))
    self.tokens = TokenArray(fs.join(path, "tokens.npy"))
    self.offsets = _load_small(fs.join(path, "offsets.npy"))
    wpath = fs.join(path, "loss_weights.npy")
    self.weights = TokenArray(wpath) if fs.exists(wpath) else None
    ppath = fs.join(path, "positions.npy")
    self.positions = _load_small(ppath) if fs.exists(ppath) else np.arange(len(self.offsets) - 1, dtype=np.int64)
    self.lengths = np.diff(self.offsets)

  def __len__(self) -> int:
    return len(self.lengths)

  def __getitem__(self, i: int):
    a, b = int(self.offsets[i]), int(self.offsets[i + 1])
    out = {"targets": np.asarray(self.tokens[a:b], np.int32)}
    if self.weights is not None:
      out["loss_weights"] = np.asarray(self.weights[a:b], np.float32)
    return out


def check_vocab(meta: Mapping, expected: str | None, where: str) -> None:
  """Refuses a cache written with another vocabulary than `expected` (a vocab tag); None skips the check."""
  found = meta.get("vocab")
  if expected is not None and found is not None and found != expected:
    raise CacheError(f"{where}: token cache written with vocabulary {found!r}, expected {expected!r} (delete "
                     f"the cache or use the vocabulary it was built with)")


def write_index(cache: str, num_shards: int, expected_vocab: str | None = None) -> dict:
  """Joins the complete shards of a cache into one source ordered by source position; returns index.json.

  Every shard must exist, agree on task, split and vocabulary, and hold disjoint source positions."""
  paths = [shard_path(cache, i, num_shards) for i in range(num_shards)]
  missing = [p for p in paths if not shard_complete(p)]
  if missing:
    raise CacheError(f"token cache {cache!r}: {len(missing)} of {num_shards} shards are not complete, first "
                     f"{missing[0]!r}")
  shards = [TokenShard(p) for p in paths]
  first = shards[0].meta
  for s in shards:
    for key in ("task", "split", "vocab"):
      if s.meta.get(key) != first.get(key):
        raise CacheError(f"{fs.join(s.path, SHARD_MARKER)}: {key}={s.meta.get(key)!r} but shard 0 has "
                         f"{first.get(key)!r}; every shard of one cache must come from one build")
    check_vocab(s.meta, expected_vocab, fs.join(s.path, SHARD_MARKER))
  positions = np.concatenate([s.positions for s in shards]) if shards else np.zeros(0, np.int64)
  which = np.concatenate([np.full(len(s), j, np.int64) for j, s in enumerate(shards)])
  local = np.concatenate([np.arange(len(s), dtype=np.int64) for s in shards])
  order = np.argsort(positions, kind="stable")
  if len(order) > 1 and (np.diff(positions[order]) == 0).any():
    raise CacheError(f"token cache {cache!r}: two shards hold the same source position; the shards come from "
                     f"builds with different shard counts")
  info = {"version": CACHE_VERSION, "num_shards": num_shards, "num_docs": int(len(order)),
          "num_tokens": int(sum(s.offsets[-1] for s in shards)),
          **{k: first.get(k) for k in ("task", "split", "vocab") if k in first}}
  tmp = fs.temp_sibling(fs.join(cache, INDEX_DIR))
  try:
    fs.write_bytes(fs.join(tmp, "order.npy"), _npy_bytes(np.stack([which[order], local[order]], axis=1)))
    fs.write_bytes(fs.join(tmp, INDEX_MARKER), json.dumps(info).encode())
    fs.publish_dir(tmp, fs.join(cache, INDEX_DIR), INDEX_MARKER)
  except BaseException:
    fs.remove(tmp)
    raise
  return info


class CachedDocuments:
  """The documents of a token cache as one indexable source: `docs[i]` -> {'targets'[, 'loss_weights']};
  `lengths` is cheap (from offsets, no token reads)."""

  def __init__(self, path: str, expected_vocab: str | None = None):
    self.path = path
    index = fs.join(path, INDEX_DIR, INDEX_MARKER)
    if fs.exists(index):
      self.meta = json.loads(fs.read_bytes(index))
      self.shards = [TokenShard(shard_path(path, i, self.meta["num_shards"])) for i in range(self.meta["num_shards"])]
      order = _load_small(fs.join(path, INDEX_DIR, "order.npy")).reshape(-1, 2)
      self.which, self.local = order[:, 0], order[:, 1]
    elif shard_complete(path):
      self.shards = [TokenShard(path)]
      self.meta = self.shards[0].meta
      self.which = np.zeros(len(self.shards[0]), np.int64)
      self.local = np.arange(len(self.shards[0]), dtype=np.int64)
    else:
      raise CacheError(f"token cache {path!r} is missing or incomplete (no {INDEX_DIR}/{INDEX_MARKER} and no "
                       f"{SHARD_MARKER})")
    check_vocab(self.meta, expected_vocab, path)
    starts = np.cumsum([0] + [len(s) for s in self.shards])
    self.lengths = np.concatenate([s.lengths for s in self.shards])[starts[self.which] + self.local]

  def __len__(self) -> int:
    return len(self.which)

  def __getitem__(self, i: int):
    return self.shards[int(self.which[i])][int(self.local[i])]

  @property
  def num_tokens(self) -> int:
    return int(self.lengths.sum())
