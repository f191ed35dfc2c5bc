"""Start-up barrier for multi-host runs: every process checks in, and a timeout names the ones that did not.

jax.distributed's own barriers fail with an opaque deadline error; a pod that hangs at start-up is far easier
to debug when the error says "process 3 (never checked in)". Processes check in through the coordination
service's key-value store (the client jax.distributed.initialize created).
"""

from __future__ import annotations

import socket
import time
from typing import Any

PREFIX = "fot_jax/startup"


class StartupBarrierError(RuntimeError):
  """Some processes did not reach the start of training in time."""


def _default_client() -> Any:
  from jax._src import distributed  # the only handle on the coordination-service client jax exposes
  return distributed.global_state.client


def startup_barrier(timeout_s: float, *, process_index: int, process_count: int, run_id: str = "run",
                    client: Any = None) -> dict[int, str]:
  """Blocks until all processes checked in; returns {process: hostname}. Raises naming the missing ones."""
  if process_count <= 1:
    return {0: socket.gethostname()}
  client = client or _default_client()
  if client is None:
    raise StartupBarrierError("startup barrier: jax.distributed is not initialised but process_count > 1")
  key = lambda pid: f"{PREFIX}/{run_id}/{pid}"
  client.key_value_set(key(process_index), socket.gethostname())
  deadline = time.monotonic() + timeout_s
  hosts, missing = {}, []
  for pid in range(process_count):
    remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
    try:
      hosts[pid] = client.blocking_key_value_get(key(pid), remaining_ms)
    except Exception:  # noqa: BLE001 - the client raises a runtime error on timeout; we report every miss
      missing.append(pid)
  if missing:
    seen = ", ".join(f"{pid}@{host}" for pid, host in sorted(hosts.items()))
    raise StartupBarrierError(
        f"startup barrier: process(es) {missing} of {process_count} did not check in within {timeout_s:.0f}s "
        f"(this is process {process_index} on {socket.gethostname()}; checked in: {seen or 'none'}). Look at the "
        f"missing processes' logs: a crash before training, a different code version, or a host that never "
        f"started.")
  return hosts
