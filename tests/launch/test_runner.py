"""launch.runner: parents first, `parallel` at a time, failures skip children, the deadline stops what runs."""

import subprocess
import sys
import time

from fot_jax.launch import runner


def _tasks(*specs):
  return [runner.Task(name=n, parent=p) for n, p in specs]


def test_parents_first_and_at_most_parallel_at_a_time():
  tasks = _tasks(("a", None), ("b", "a"), ("c", None), ("d", None))
  order, live, most = [], set(), [0]

  def work(name):
    live.add(name)
    most[0] = max(most[0], len(live))
    time.sleep(0.05)
    order.append(name)
    live.discard(name)

  runner.run_tasks(tasks, lambda t: runner.ThreadHandle(lambda: work(t.name)), parallel=2, poll_s=0.01)
  assert [t.state for t in tasks] == ["done"] * 4
  assert order.index("a") < order.index("b") and most[0] == 2


def test_a_failure_skips_the_children_only():
  tasks = _tasks(("a", None), ("b", "a"), ("c", "b"), ("d", None))
  ended = []
  runner.run_tasks(tasks, lambda t: runner.ThreadHandle(lambda: t.name != "a", ok=bool), parallel=1, poll_s=0.01,
                   on_end=lambda t, status: ended.append((t.name, status)))
  assert [t.state for t in tasks] == ["failed", "skipped", "skipped", "done"]
  assert ended == [("a", 1), ("d", 0)]


def test_the_deadline_stops_running_processes_and_skips_waiting_ones():
  tasks = _tasks(("slow", None), ("after", "slow"))
  started = time.time()
  launch = lambda t: runner.ProcessHandle(  # noqa: E731
      subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True), grace_s=5)
  runner.run_tasks(tasks, launch, deadline=time.time() + 0.5, poll_s=0.05)
  assert [t.state for t in tasks] == ["cut", "skipped"]
  assert tasks[0].handle.poll() is not None and time.time() - started < 10
