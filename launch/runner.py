"""The one scheduler of the launchers: tasks run `parallel` at a time in list order, a task only after its parent
has finished, and at a deadline the running ones are stopped and the waiting ones skipped.

fot_jax.launch.experiment runs its trainer processes through it, fot_jax.launch.sweep its jobs (each a blocking
call, in a thread).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Protocol, Sequence

DONE, FAILED, CUT, SKIPPED = "done", "failed", "cut", "skipped"


class Handle(Protocol):
  """A started task: poll() is None while it runs, then its exit status; request_stop() asks it to end and
  wait_stopped() returns once it has."""

  def poll(self) -> int | None: ...

  def request_stop(self) -> None: ...

  def wait_stopped(self) -> None: ...


@dataclasses.dataclass
class Task:
  name: str
  parent: str | None = None
  state: str = "waiting"  # waiting | running | done | failed | cut (stopped at the deadline) | skipped
  started: float = 0.0
  seconds: float = 0.0
  handle: Any = None


class ProcessHandle:
  """A child process started in its own session: request_stop() sends SIGTERM (a trainer saves at its next
  step); wait_stopped() sends SIGKILL to its group if it still runs `grace_s` later."""

  def __init__(self, proc: subprocess.Popen, grace_s: float = 60.0):
    self.proc, self.grace_s = proc, grace_s

  def poll(self) -> int | None:
    return self.proc.poll()

  def request_stop(self) -> None:
    self.proc.send_signal(signal.SIGTERM)

  def wait_stopped(self) -> None:
    try:
      self.proc.wait(timeout=self.grace_s)
    except subprocess.TimeoutExpired:
      os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.wait()


class ThreadHandle:
  """A blocking call run in a thread: exit status 0 when ok(result), else 1; result holds its return value.
  A call cannot be interrupted, so stopping it waits for it to return."""

  def __init__(self, call: Callable[[], Any], ok: Callable[[Any], bool] = lambda result: True):
    self.result, self._ok, self._error = None, ok, None
    self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
    self._thread.start()

  def _run(self, call) -> None:
    try:
      self.result = call()
    except BaseException as e:  # noqa: BLE001 - reported as the task's failure by poll()
      self._error = e

  def poll(self) -> int | None:
    if self._thread.is_alive():
      return None
    return 0 if self._error is None and self._ok(self.result) else 1

  def request_stop(self) -> None:
    """Nothing to signal: a Python thread cannot be interrupted, so a job in a thread runs to its own end."""

  def wait_stopped(self) -> None:
    self._thread.join()


def run_tasks(tasks: Sequence[Task], launch: Callable[[Task], Handle], *, parallel: int = 1,
              deadline: float = float("inf"), poll_s: float = 1.0,
              on_end: Callable[[Task, int], None] = lambda task, status: None) -> None:
  """Runs every task to an end state: done, failed, cut (running at the deadline) or skipped (its parent did not
  finish, or the deadline came first). on_end(task, exit status) follows each task that ran to its end."""
  by_name = {t.name: t for t in tasks}
  while True:
    for t in tasks:
      if t.state == "running" and (status := t.handle.poll()) is not None:
        t.seconds = time.time() - t.started
        t.state = DONE if status == 0 else FAILED
        on_end(t, status)
    for t in tasks:
      if t.state == "waiting" and t.parent and by_name[t.parent].state in (FAILED, CUT, SKIPPED):
        t.state = SKIPPED
    running = sum(t.state == "running" for t in tasks)
    for t in tasks:
      if running >= parallel or time.time() >= deadline:
        break
      if t.state == "waiting" and (t.parent is None or by_name[t.parent].state == DONE):
        t.handle, t.state, t.started = launch(t), "running", time.time()
        running += 1
    if time.time() >= deadline or not any(t.state in ("waiting", "running") for t in tasks):
      break
    time.sleep(poll_s)
  stopping = [t for t in tasks if t.state == "running"]
  for t in stopping:  # all are asked first, so each trainer saves at its own next step
    t.handle.request_stop()
  for t in stopping:
    t.handle.wait_stopped()
    t.seconds, t.state = time.time() - t.started, CUT
  for t in tasks:
    if t.state == "waiting":
      t.state = SKIPPED
