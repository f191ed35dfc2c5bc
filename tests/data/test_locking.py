"""The build lock serialises concurrent first builds across processes (the cause of colliding TFDS renames)."""

import multiprocessing
import os
import time

from fot_jax.data.locking import build_lock


def _build(directory, log_path, tag):
  with build_lock(directory, "corpus"):
    with open(log_path, "a") as log:
      log.write(f"start {tag}\n")
      log.flush()
      time.sleep(0.3)
      log.write(f"end {tag}\n")


def test_two_processes_never_build_at_the_same_time(tmp_path):
  log_path = str(tmp_path / "log.txt")
  ctx = multiprocessing.get_context("spawn")
  procs = [ctx.Process(target=_build, args=(str(tmp_path / "cache"), log_path, tag)) for tag in "ab"]
  for p in procs:
    p.start()
  for p in procs:
    p.join(60)
    assert p.exitcode == 0
  lines = open(log_path).read().split()
  events = [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
  assert len(events) == 4
  # Each start is immediately followed by its own end: the critical sections did not overlap.
  assert events[0][0] == "start" and events[1] == ("end", events[0][1])
  assert events[2][0] == "start" and events[3] == ("end", events[2][1])
  assert os.path.exists(tmp_path / "cache" / ".corpus.lock")


def test_remote_lock_waits_for_the_holder_and_breaks_stale_locks():
  import threading
  directory, events = "memory://locks/cache", []

  def hold(tag, seconds):
    with build_lock(directory, "corpus", poll_s=0.05):
      events.append(f"start {tag}")
      time.sleep(seconds)
      events.append(f"end {tag}")
  first = threading.Thread(target=hold, args=("a", 0.5))
  first.start()
  time.sleep(0.2)
  hold("b", 0)
  first.join()
  assert events == ["start a", "end a", "start b", "end b"]
  from fot_jax.data import fs
  fs.write_bytes(f"{directory}/.corpus.lock", b'{"time": 0}')  # left behind by a holder that died long ago
  with build_lock(directory, "corpus", poll_s=0.05, stale_s=60):
    events.append("after stale")
  assert events[-1] == "after stale" and not fs.exists(f"{directory}/.corpus.lock")
