"""Local multi-process launcher: N `fot_jax.train` processes on this host joined by jax.distributed.

`python -m fot_jax.launch.local --config=configs/experiments/tiny_fot.py --workdir=/tmp/run --num_processes=2
   --devices_per_process=4 [--set optim.learning_rate=1e-3 ...] [--dry-run]`

Each process gets its own fake CPU device count (XLA_FLAGS) and the coordinator on localhost (through
config.distributed.*, which the trainer passes to jax.distributed.initialize), and runs the same training
command: the multi-host code paths of a TPU pod, exercised on one machine. If one process dies, the others
would wait forever in a collective, so the launcher ends the whole group and names the process that failed.
Output lines are prefixed `[pI]` and copied to <log_dir>/process_I.log.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Mapping, Sequence

from fot_jax import cli
from fot_jax.launch.overrides import load_checked_config, override_flags, parse_assignments

TRAIN_MODULE = "fot_jax.train"


def train_argv(config: str, workdir: str, overrides: Mapping[str, object] | None = None,
               python: str | Sequence[str] = sys.executable) -> list[str]:
  """`python -m fot_jax.train --config=... --workdir=... --config.k=v ...` as an argv list."""
  python = [python] if isinstance(python, str) else list(python)
  return [*python, "-m", TRAIN_MODULE, f"--config={config}", f"--workdir={workdir}",
          *override_flags(overrides or {})]


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def process_env(devices: int, process_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
  """The environment of one process: its own fake CPU device count (replacing any inherited count)."""
  env = dict(os.environ if base is None else base)
  kept = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(kept + [f"--xla_force_host_platform_device_count={devices}"])
  env.setdefault("JAX_PLATFORMS", "cpu")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  env["FOT_JAX_LOCAL_PROCESS_ID"] = str(process_id)  # for humans reading `ps`; the trainer uses its config
  return env


def process_commands(config: str, workdir: str, overrides: Mapping[str, object], num_processes: int,
                     port: int) -> list[list[str]]:
  """One argv per process: the same training command plus that process's config.distributed fields."""
  commands = []
  for i in range(num_processes):
    dist = {} if num_processes == 1 else {
        "distributed.coordinator_address": f"localhost:{port}",
        "distributed.num_processes": num_processes,
        "distributed.process_id": i}
    commands.append(train_argv(config, workdir, {**overrides, **dist}))
  return commands


@dataclasses.dataclass
class LocalResult:
  returncodes: list[int | None]
  failed: int | None = None  # index of the first process that failed (None: all succeeded)
  message: str = ""

  @property
  def ok(self) -> bool:
    return self.failed is None and all(rc == 0 for rc in self.returncodes)


def describe_exit(rc: int | None) -> str:
  if rc is None:
    return "did not exit"
  if rc < 0:
    try:
      return f"was killed by {signal.Signals(-rc).name}"
    except ValueError:
      return f"was killed by signal {-rc}"
  return f"exited with code {rc}"


class _Group:
  """The child processes, each in its own session so it (and anything it spawned) can be ended as a group."""

  def __init__(self, commands, envs, log_dir: str, echo: bool, out):
    os.makedirs(log_dir, exist_ok=True)
    self.procs: list[subprocess.Popen] = []
    self.threads: list[threading.Thread] = []
    self.log_paths = [os.path.join(log_dir, f"process_{i}.log") for i in range(len(commands))]
    self.tails: list[list[str]] = [[] for _ in commands]
    self.out, self.echo = out, echo
    self.lock = threading.Lock()
    for i, (argv, env) in enumerate(zip(commands, envs)):
      proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              bufsize=1, start_new_session=True)
      self.procs.append(proc)
      self._print(f"started process {i} (pid {proc.pid}): {shlex.join(argv)}")
      t = threading.Thread(target=self._pump, args=(i, proc), daemon=True)
      t.start()
      self.threads.append(t)

  def _print(self, line: str) -> None:
    with self.lock:
      print(line, file=self.out, flush=True)

  def _pump(self, i: int, proc: subprocess.Popen) -> None:
    with open(self.log_paths[i], "a") as log:
      for line in proc.stdout:
        log.write(line)
        log.flush()
        self.tails[i] = (self.tails[i] + [line.rstrip("\n")])[-20:]
        if self.echo:
          self._print(f"[p{i}] {line.rstrip()}")

  def poll(self) -> list[int | None]:
    return [p.poll() for p in self.procs]

  def terminate(self, grace_s: float) -> list[int]:
    """SIGTERM to every running process group, SIGKILL after grace_s; returns the indices that were ended."""
    ended = [i for i, p in enumerate(self.procs) if p.poll() is None]
    for i in ended:
      _signal_group(self.procs[i], signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for i in ended:
      try:
        self.procs[i].wait(timeout=max(deadline - time.monotonic(), 0.01))
      except subprocess.TimeoutExpired:
        _signal_group(self.procs[i], signal.SIGKILL)
        self.procs[i].wait()
    return ended

  def join_output(self) -> None:
    for t in self.threads:
      t.join(timeout=5)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
  try:
    os.killpg(proc.pid, sig)  # the child's own session: its pid is its process-group id
  except ProcessLookupError:  # already gone: nothing to signal
    return


def run_local(config: str, workdir: str, overrides: Mapping[str, object] | None = None, *, num_processes: int = 2,
              devices_per_process: int = 4, port: int = 0, log_dir: str | None = None, timeout_s: float = 0,
              grace_s: float = 10.0, echo: bool = True, dry_run: bool = False, validate: bool = True,
              out=None) -> LocalResult:
  """Starts the processes, waits, and ends the group as soon as one fails (or on timeout / Ctrl-C)."""
  out = out or sys.stdout
  overrides = dict(overrides or {})
  if num_processes < 1 or devices_per_process < 1:
    raise ValueError(f"num_processes ({num_processes}) and devices_per_process ({devices_per_process}) must be >= 1")
  if validate:
    load_checked_config(config, overrides)  # unknown keys and bad values fail here, before any process starts
  port = port or free_port()
  commands = process_commands(config, workdir, overrides, num_processes, port)
  envs = [process_env(devices_per_process, i) for i in range(num_processes)]
  if dry_run:
    for i, argv in enumerate(commands):
      print(f"[dry-run] XLA_FLAGS={shlex.quote(envs[i]['XLA_FLAGS'])} {shlex.join(argv)}", file=out, flush=True)
    return LocalResult([0] * num_processes)
  log_dir = log_dir or os.path.join(workdir, "logs")
  group = _Group(commands, envs, log_dir, echo, out)
  start = time.monotonic()
  failed, reason = None, ""
  try:
    while True:
      codes = group.poll()
      bad = [i for i, rc in enumerate(codes) if rc not in (None, 0)]
      if bad:
        failed = bad[0]
        reason = f"process {failed} (pid {group.procs[failed].pid}) {describe_exit(codes[failed])}"
        break
      if all(rc == 0 for rc in codes):
        break
      if timeout_s and time.monotonic() - start > timeout_s:
        reason = f"timed out after {timeout_s:.0f}s"
        break
      time.sleep(0.2)
  except KeyboardInterrupt:
    reason = "interrupted (Ctrl-C)"
  ended = group.terminate(grace_s) if reason else []
  group.join_output()
  codes = group.poll()
  if not reason:
    msg = f"all {num_processes} processes finished; logs in {log_dir}"
    group._print(msg)
    return LocalResult(codes, None, msg)
  msg = f"job failed: {reason}"
  if ended:
    msg += f"; stopped the other processes: {', '.join(str(i) for i in ended)}"
  msg += f". Logs: {log_dir}"
  if failed is not None and group.tails[failed]:
    msg += f"\nlast lines of process {failed}:\n  " + "\n  ".join(group.tails[failed][-8:])
  group._print(msg)
  return LocalResult(codes, failed if failed is not None else -1, msg)


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m fot_jax.launch.local", description=__doc__.split("\n\n")[0])
  p.add_argument("--config", required=True, help="config file[:variant], as for fot_jax.train")
  p.add_argument("--workdir", required=True)
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override (repeatable), e.g. --set optim.learning_rate=1e-3")
  p.add_argument("--num_processes", type=int, default=2)
  p.add_argument("--devices_per_process", type=int, default=4)
  p.add_argument("--port", type=int, default=0, help="coordinator port (0: a free one)")
  p.add_argument("--log_dir", default=None, help="default: <workdir>/logs")
  p.add_argument("--timeout", type=float, default=0, help="seconds; 0: none")
  p.add_argument("--quiet", action="store_true", help="do not echo process output (it still goes to the logs)")
  p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
  cli.add_debug_flag(p)
  args = p.parse_args(argv)

  def body() -> int:
    result = run_local(args.config, args.workdir, parse_assignments(args.set), num_processes=args.num_processes,
                       devices_per_process=args.devices_per_process, port=args.port, log_dir=args.log_dir,
                       timeout_s=args.timeout, echo=not args.quiet, dry_run=args.dry_run)
    return 0 if result.ok else 1
  return cli.run(body, prog="fot_jax.launch.local", debug=args.debug, also=(ValueError,))


if __name__ == "__main__":
  sys.exit(main())
