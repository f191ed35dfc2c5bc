"""One filesystem layer for corpora and token caches: local paths, gs:// and any other fsspec URL.

Everything the data code reads or writes goes through these functions, so a cache on a bucket is built and read
by the same code as a local one (tests use a local directory and fsspec's in-memory filesystem, `memory://`).
Reads of token data are ranged (`read_range`), never whole-file downloads. Directories are published with
`publish_dir`: an atomic rename where the filesystem has one (local), else file by file with a marker file last,
so a reader that checks the marker never sees a half-written directory.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import IO

import fsspec


def is_local(path: str) -> bool:
  return "://" not in path or path.startswith("file://")


def _fs(path: str):
  """(fsspec filesystem, path inside it)."""
  return fsspec.core.url_to_fs(path)


def _url(fs, path: str, like: str) -> str:
  """A path returned by fs back into a URL of the same protocol as `like`."""
  if is_local(like):
    return path
  return fs.unstrip_protocol(path)


def join(*parts: str) -> str:
  return os.path.join(*parts) if is_local(parts[0]) else posixpath.join(*parts)


def exists(path: str) -> bool:
  fs, p = _fs(path)
  return fs.exists(p)


def glob(pattern: str) -> list[str]:
  """Sorted paths matching pattern (the URL protocol kept)."""
  fs, p = _fs(pattern)
  return sorted(_url(fs, m, pattern) for m in fs.glob(p) if fs.isfile(m))


def listdir(path: str) -> list[str]:
  """Base names of the entries of a directory (empty when it does not exist)."""
  fs, p = _fs(path)
  if not fs.exists(p):
    return []
  return sorted(posixpath.basename(e.rstrip("/")) for e in fs.ls(p, detail=False))


def open_file(path: str, mode: str = "rb") -> IO:
  fs, p = _fs(path)
  return fs.open(p, mode)


def size(path: str) -> int:
  fs, p = _fs(path)
  return int(fs.size(p))


def read_range(path: str, start: int, end: int) -> bytes:
  """Bytes [start, end) of a file: one ranged read (an HTTP Range request on object stores)."""
  fs, p = _fs(path)
  return fs.cat_file(p, start=start, end=end)


def read_bytes(path: str) -> bytes:
  fs, p = _fs(path)
  return fs.cat_file(p)


def write_bytes(path: str, data: bytes) -> None:
  """Writes a whole file (one object: atomic on object stores; a temp file + rename locally)."""
  fs, p = _fs(path)
  if is_local(path):
    fs.makedirs(posixpath.dirname(p), exist_ok=True)
    tmp = f"{p}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as f:
      f.write(data)
    os.replace(tmp, p)
    return
  fs.pipe_file(p, data)


def create_exclusive(path: str, data: bytes) -> bool:
  """Creates path with data unless it exists; True if this call created it (an atomic claim where the
  filesystem supports exclusive creation, mode 'xb': local, memory, GCS)."""
  fs, p = _fs(path)
  fs.makedirs(posixpath.dirname(p), exist_ok=True)
  try:
    with fs.open(p, "xb") as f:
      f.write(data)
    return True
  except FileExistsError:
    return False


def makedirs(path: str) -> None:
  fs, p = _fs(path)
  fs.makedirs(p, exist_ok=True)


def remove(path: str) -> None:
  """Removes a file or a directory tree; absent paths are fine."""
  fs, p = _fs(path)
  if fs.exists(p):
    fs.rm(p, recursive=fs.isdir(p))


def temp_sibling(path: str) -> str:
  """A fresh temporary directory name next to path (same filesystem, so publishing can rename it)."""
  parent, name = posixpath.split(path.rstrip("/")) if not is_local(path) else os.path.split(os.path.abspath(path))
  return join(parent, f".tmp_{name}_{uuid.uuid4().hex[:12]}")


def publish_dir(tmp: str, final: str, marker: str) -> bool:
  """Moves a fully written directory tmp to final; False (tmp removed) when final already exists (another
  builder finished first with the same content). Local: one atomic rename. Elsewhere: every file but `marker`
  first, the marker last, so `exists(final/marker)` means complete."""
  fs, t = _fs(tmp)
  _, f = _fs(final)
  if fs.exists(posixpath.join(f, marker)):
    remove(tmp)
    return False
  if is_local(final):
    try:
      os.rename(t, f)
      return True
    except OSError:
      if os.path.exists(os.path.join(f, marker)):
        remove(tmp)
        return False
      raise
  names = [posixpath.relpath(x, t) for x in fs.find(t)]
  for name in sorted(names, key=lambda n: n == marker):
    fs.mv(posixpath.join(t, name), posixpath.join(f, name))
  remove(tmp)
  return True
