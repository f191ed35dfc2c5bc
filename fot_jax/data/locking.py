"""An inter-process lock for one-time builds in a shared cache (corpora, vocabularies, token caches).

Several processes (of one host, or hosts sharing a bucket) may find the same artifact missing at the same
moment; the first to take the lock builds it, the others wait and then find it built. Local directories use
flock; other filesystems (gs://, memory://) a lock file created exclusively (an atomic create-if-absent), removed
on exit, and broken when older than `stale_s` (its holder died).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from typing import Iterator

from fot_jax.data import fs


@contextlib.contextmanager
def build_lock(directory: str, name: str, poll_s: float = 1.0, stale_s: float = 6 * 3600) -> Iterator[None]:
  """Holds an exclusive lock named <directory>/.<name>.lock for the duration of the block."""
  if not fs.is_local(directory):
    with _remote_lock(fs.join(directory, f".{name}.lock"), poll_s, stale_s):
      yield
    return
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, f".{name}.lock"), "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _remote_lock(path: str, poll_s: float, stale_s: float) -> Iterator[None]:
  owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode()
  while not fs.create_exclusive(path, owner):
    try:
      held_since = float(json.loads(fs.read_bytes(path))["time"])
    except (FileNotFoundError, ValueError, KeyError):  # released (or being written) just now: try again
      continue
    if time.time() - held_since > stale_s:
      fs.remove(path)
      continue
    time.sleep(poll_s)
  try:
    yield
  finally:
    fs.remove(path)
