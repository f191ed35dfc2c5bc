"""The start-up barrier names the processes that never checked in (the real client runs in the 2-process test)."""

import pytest

from fot_jax.train.barrier import StartupBarrierError, startup_barrier


class FakeClient:
  """A coordination-service key-value store in which some processes never write their key."""

  def __init__(self, absent=()):
    self.store = {}
    self.absent = set(absent)

  def key_value_set(self, key, value):
    self.store[key] = value

  def blocking_key_value_get(self, key, timeout_ms):
    pid = int(key.rsplit("/", 1)[1])
    if pid in self.absent:
      raise RuntimeError(f"DEADLINE_EXCEEDED after {timeout_ms} ms")
    return self.store.get(key, f"host{pid}")


def test_all_processes_present_returns_their_hosts():
  client = FakeClient()
  hosts = startup_barrier(1.0, process_index=0, process_count=3, client=client)
  assert sorted(hosts) == [0, 1, 2] and hosts[1] == "host1"
  assert any(k.endswith("/0") for k in client.store), "this process must check in"


def test_missing_processes_are_named():
  with pytest.raises(StartupBarrierError, match=r"process\(es\) \[1, 3\] of 4 did not check in"):
    startup_barrier(0.01, process_index=0, process_count=4, client=FakeClient(absent={1, 3}))


def test_single_process_needs_no_client():
  assert list(startup_barrier(0.01, process_index=0, process_count=1, client=None)) == [0]
