"""An inter-process lock for one-time builds in a shared cache (corpora, vocabularies).

Several processes of one host (a local multi-process job, parallel sweep jobs) may find the same corpus missing
at the same moment; the first to take the lock builds it, the others wait and then find it built. Remote paths
(gs://...) are not locked: there, prepare the data once before launching (docs/DATA.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator


@contextlib.contextmanager
def build_lock(directory: str, name: str) -> Iterator[None]:
  """Holds an exclusive flock on <directory>/.<name>.lock for the duration of the block (local paths only)."""
  if "://" in directory:
    yield
    return
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, f".{name}.lock"), "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)
