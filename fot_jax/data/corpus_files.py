"""Documents of corpus files on any filesystem: RedPajama-style JSONL (plain, .gz, .zst), ArrayRecord, and The
Stack's code files (parquet or JSONL) concatenated per repository subdirectory across all files of a split.

Corpus names: 'jsonl:<glob>' (every file in every split unless the glob has '{split}'), 'redpajama:<glob>' and
'stack:<glob>' (without '{split}', a stable hash of the document id puts ~1% of documents in 'validation').
Every problem names the file (and line): a missing or empty file, a corrupt archive, a malformed record.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import posixpath
import sys
import zlib
from typing import IO, Callable, Iterator

import numpy as np

from fot_jax.data import fs
from fot_jax.data.corpora import split_of

KINDS = ("jsonl", "redpajama", "stack")
HASH_SPLIT_KINDS = ("redpajama", "stack")
HASH_VALID_PERCENT = 1
# The Stack's columns: the file text and where it lives (the-stack-dedup names, then the plain ones).
STACK_TEXT = "content"
STACK_REPO = ("max_stars_repo_name", "repo_name")
STACK_PATH = ("max_stars_repo_path", "path")
FILE_POSITION_STRIDE = 1 << 40  # a document's source position: file index * stride + record index
log = logging.getLogger(__name__)


class CorpusError(ValueError):
  """A corpus file that cannot be read as documents; the message starts with the file (and line)."""


def parse(name: str) -> tuple[str, str] | None:
  """'<kind>:<glob>' -> (kind, glob) for a file corpus name, else None."""
  kind, sep, pattern = name.partition(":")
  return (kind, pattern) if sep and kind in KINDS else None


def files(kind: str, pattern: str, split: str) -> list[str]:
  """The files of a split, sorted; FileNotFoundError naming the pattern when none match."""
  resolved = pattern.replace("{split}", split)
  paths = fs.glob(resolved)
  if not paths:
    raise FileNotFoundError(f"{kind} corpus: no files match {resolved!r}")
  return paths


def _text(raw: IO[bytes], path: str) -> IO[str]:
  """The open file `raw` as text lines, decompressed by the suffix of path (.gz, .zst)."""
  if path.endswith(".gz"):
    raw = gzip.GzipFile(fileobj=raw)
  elif path.endswith(".zst"):
    try:
      import zstandard
    except ImportError as e:
      raise CorpusError(f"{path}: reading .zst files needs the zstandard package (pip install "
                        f"'fot_jax[data]')") from e
    raw = io.BufferedReader(_ZstdReader(raw, zstandard))
  return io.TextIOWrapper(raw, encoding="utf-8")


class _ZstdReader(io.RawIOBase):
  """Decompressed bytes of a (multi-frame) .zst stream; a truncated last frame is an error, not a silent end."""

  def __init__(self, raw: IO[bytes], zstandard, chunk: int = 1 << 20):
    self._raw, self._zstd, self._chunk = raw, zstandard, chunk
    self._dobj, self._fed, self._out = zstandard.ZstdDecompressor().decompressobj(), False, b""

  def readable(self) -> bool:
    return True

  def readinto(self, buf) -> int:
    while not self._out:
      data = self._raw.read(self._chunk)
      if not data:
        if self._fed and not self._dobj.eof:
          raise self._zstd.ZstdError("the stream ends inside a frame (truncated file)")
        return 0
      while data:
        if self._dobj.eof:  # the next frame
          self._dobj, self._fed = self._zstd.ZstdDecompressor().decompressobj(), False
        self._fed = True
        self._out += self._dobj.decompress(data)
        data = self._dobj.unused_data if self._dobj.eof else b""
    n = min(len(buf), len(self._out))
    buf[:n], self._out = self._out[:n], self._out[n:]
    return n

  def close(self) -> None:
    self._raw.close()
    super().close()


def _decode_errors() -> tuple[type[Exception], ...]:
  """What a truncated or corrupt archive raises while it is read (zstandard's own error when it is loaded)."""
  zstd = sys.modules.get("zstandard")
  return (OSError, EOFError, UnicodeDecodeError, zlib.error) + ((zstd.ZstdError,) if zstd else ())


def _corrupt(path: str, line: int, e: Exception) -> CorpusError:
  kind = "gzip" if path.endswith(".gz") else "zstd" if path.endswith(".zst") else "text"
  return CorpusError(f"{path}: corrupt {kind} data after line {line} ({type(e).__name__}: {e})")


def jsonl_lines(path: str) -> Iterator[tuple[int, str]]:
  """(line number, line) of every non-blank line of a JSONL file (plain, .gz, .zst; any fsspec path); a corrupt
  archive raises CorpusError naming the file and the last good line."""
  line_no = 0
  with fs.open_file(path, "rb") as raw:
    try:
      with _text(raw, path) as f:
        for line_no, line in enumerate(f, 1):
          if line.strip():
            yield line_no, line
    except _decode_errors() as e:
      raise _corrupt(path, line_no, e) from None


def jsonl_records(path: str) -> Iterator[dict]:
  """The JSON objects of a JSONL file (blank lines skipped); errors name file and line."""
  found = False
  for line_no, line in jsonl_lines(path):
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise CorpusError(f"{path}:{line_no}: not a JSON object ({e.msg})") from None
    if not isinstance(record, dict):
      raise CorpusError(f"{path}:{line_no}: expected a JSON object, found {type(record).__name__}")
    found = True
    yield record
  if not found:
    raise CorpusError(f"{path}: empty file (no records)")


def _field(record: dict, names: tuple[str, ...] | str, path: str, index: int) -> str:
  for name in (names,) if isinstance(names, str) else names:
    value = record.get(name)
    if isinstance(value, str):
      return value
  raise CorpusError(f"{path}: record {index}: expected a string field {names!r}, found keys {sorted(record)}")


def text_documents(path: str) -> Iterator[tuple[str, str]]:
  """(doc id, text) of every {"text": ...} record of a JSONL file."""
  base = posixpath.basename(path)
  for i, record in enumerate(jsonl_records(path)):
    yield f"{base}:{i}", _field(record, "text", path, i)


def _stack_records(path: str, text: bool = True, wanted: np.ndarray | None = None) -> Iterator[tuple[int, dict]]:
  """(row, record) of a Stack file (parquet or JSONL). text=False skips the content column of a parquet file
  (the subdirectory index needs only where each file lives); `wanted` (a mask over the rows) reads only the
  parquet row groups holding wanted rows (a JSONL file is read whole)."""
  if path.endswith(".parquet"):
    import pyarrow.parquet as pq
    with fs.open_file(path, "rb") as f:
      pf = pq.ParquetFile(f)  # reads the footer and row groups with ranged reads
      names = pf.schema_arrow.names
      repo = next((c for c in STACK_REPO if c in names), None)
      rel = next((c for c in STACK_PATH if c in names), None)
      if STACK_TEXT not in names or repo is None or rel is None:
        raise CorpusError(f"{path}: expected columns {STACK_TEXT!r}, one of {STACK_REPO} and one of "
                          f"{STACK_PATH}, found {names}")
      if pf.metadata.num_rows == 0:
        raise CorpusError(f"{path}: empty file (no records)")
      starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
      groups = [g for g in range(pf.num_row_groups) if wanted is None or wanted[starts[g]:starts[g + 1]].any()]
      for g in groups:
        cols = pf.read_row_group(g, columns=([STACK_TEXT] if text else []) + [repo, rel]).to_pydict()
        for i, (r, p) in enumerate(zip(cols[repo], cols[rel])):
          yield int(starts[g]) + i, {STACK_TEXT: cols[STACK_TEXT][i] if text else None, STACK_REPO[0]: r,
                                     STACK_PATH[0]: p}
    return
  yield from enumerate(jsonl_records(path))


def _stack_index(paths: list[str]) -> tuple[list[str], list[np.ndarray]]:
  """Subdirectory keys ('<repo>/<dir>') in order of first appearance, and per file the key id of every row."""
  ids: dict[str, int] = {}
  rows = []
  for path in paths:
    file_ids = []
    for i, record in _stack_records(path, text=False):
      rel = _field(record, STACK_PATH, path, i)
      file_ids.append(ids.setdefault(f"{_field(record, STACK_REPO, path, i)}/{posixpath.dirname(rel)}", len(ids)))
    rows.append(np.asarray(file_ids, np.int64))
  return list(ids), rows


def _join_subdirectory(key: str, members: list[tuple[str, str]], seed: int) -> str:
  """The files of one subdirectory (in (file, row) order) concatenated in a seeded random order."""
  order = np.random.default_rng([seed, zlib.crc32(key.encode())]).permutation(len(members))
  return "\n".join(f"# ---- {members[j][0]} ----\n{members[j][1]}" for j in order)


def stack_subdirectories(paths: list[str], keep: Callable[[str], bool] = lambda key: True, shard: int = 0,
                         num_shards: int = 1, seed: int = 0) -> Iterator[tuple[int, str, str]]:
  """(rank, repo/subdirectory, text) of the subdirectories of The Stack files `paths`, grouped across all files.

  A first pass reads where every file lives (not its content); the second emits each subdirectory as soon as
  its last member is read, ranked by that member's (file, row), so memory holds only the subdirectories whose
  members are still being read. keep(key) selects subdirectories (the split); shard i of N takes those whose
  last member lies in file i, i+N, ... when there are at least N files (reading its own files plus the rows of
  its subdirectories in others), else every N-th by rank (reading every file).
  """
  keys, rows = _stack_index(paths)
  last, last_row = np.zeros(len(keys), np.int64), np.zeros(len(keys), np.int64)
  for f, file_ids in enumerate(rows):  # where each subdirectory's last member lies: (file, row)
    last[file_ids], last_row[file_ids] = f, -1
    np.maximum.at(last_row, file_ids, np.arange(len(file_ids)))
  kept = np.flatnonzero([keep(k) for k in keys])
  rank = np.full(len(keys), -1, np.int64)
  rank[kept[np.lexsort((last_row[kept], last[kept]))]] = np.arange(len(kept))
  owner = last % num_shards if len(paths) >= num_shards else rank % num_shards
  mine = (rank >= 0) & (owner == shard)
  open_groups: dict[int, list[tuple[str, str]]] = {}
  for f, path in enumerate(paths):
    file_ids = rows[f]
    wanted = mine[file_ids]
    if not wanted.any():
      continue
    for i, record in _stack_records(path, wanted=wanted):
      if i >= len(file_ids):
        raise CorpusError(f"{path}: changed while read ({len(file_ids)} records, then more)")
      k = int(file_ids[i])
      if mine[k]:
        text = record.get(STACK_TEXT)
        if not isinstance(text, str):
          raise CorpusError(f"{path}: record {i}: expected a string field {STACK_TEXT!r}")
        open_groups.setdefault(k, []).append((_field(record, STACK_PATH, path, i), text))
        if last[k] == f and last_row[k] == i:
          yield int(rank[k]), keys[k], _join_subdirectory(keys[k], open_groups.pop(k), seed)


def stack_documents(path: str, seed: int = 0) -> Iterator[tuple[str, str]]:
  """(repo/subdirectory, text) per subdirectory of one Stack file: its files concatenated in a seeded random
  order (each preceded by '# ---- <path> ----'), subdirectories in order of their last file."""
  for _, key, text in stack_subdirectories([path], seed=seed):
    yield key, text


def arrayrecord_documents(path: str) -> Iterator[tuple[str, str]]:
  """(doc id, text) of every {"text": ...} JSON record of an ArrayRecord file."""
  from array_record.python import array_record_data_source
  src = array_record_data_source.ArrayRecordDataSource([path])
  base = posixpath.basename(path)
  for i in range(len(src)):
    yield f"{base}:{i}", _field(json.loads(src[i]), "text", path, i)


def file_documents(kind: str, path: str) -> Iterator[tuple[str, str]]:
  """(doc id, text) of one corpus file in file order (a Stack file's subdirectories grouped within the file)."""
  if kind == "stack":
    return stack_documents(path)
  return arrayrecord_documents(path) if kind == "arrayrecord" else text_documents(path)


def sharded_documents(kind: str, pattern: str, split: str, shard: int = 0, num_shards: int = 1
                      ) -> Iterator[tuple[int, str]]:
  """(source position, text) of shard `shard` of `num_shards` of a split of a file corpus, in source order.

  With at least N files, shard i reads only files i, i+N, ... (a Stack shard also the rows of its
  subdirectories in other files); with fewer, every shard reads every file and keeps every N-th document.
  Positions order the documents as one reader would see them (file, then record; a Stack subdirectory's rank),
  so shards merged by position list exactly the documents of a single-shard read.
  """
  paths = files(kind, pattern, split)
  hashed = kind in HASH_SPLIT_KINDS and "{split}" not in pattern
  keep = (lambda doc_id: split_of(doc_id, HASH_VALID_PERCENT) == split) if hashed else (lambda doc_id: True)
  if num_shards > len(paths):
    log.warning("%s corpus %r: %d files for %d shards, so every builder reads every file (give at least %d files "
                "to divide the reading too)", kind, pattern, len(paths), num_shards, num_shards)
  if kind == "stack":
    for rank, _, text in stack_subdirectories(paths, keep, shard, num_shards):
      yield rank, text
    return
  by_file, kept = len(paths) >= num_shards, 0
  for f, path in enumerate(paths):
    if by_file and f % num_shards != shard:
      continue
    for r, (doc_id, text) in enumerate(file_documents(kind, path)):
      if keep(doc_id):
        if by_file or kept % num_shards == shard:
          yield f * FILE_POSITION_STRIDE + r, text
        kept += 1


def split_documents(kind: str, pattern: str, split: str) -> Iterator[str]:
  """Texts of a split of a file corpus, files in sorted order (see the module doc for the split rule)."""
  for _, text in sharded_documents(kind, pattern, split):
    yield text
