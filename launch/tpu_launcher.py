"""TpuLauncher: builds and runs the gcloud commands that create a TPU VM, ship a git commit to every worker and
run training there (fot_jax.launch.tpu describes why each step is the way it is; its CLI drives this class).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import tempfile
import time
from typing import Any, Mapping

from fot_jax.train import tpu_specs
from fot_jax.launch import gitinfo
from fot_jax.launch.overrides import load_config, override_flags, parse_assignments
from fot_jax.launch.shell import Runner
from fot_jax.launch.tpu_target import (
    COMMIT_MARK, COMMIT_MISMATCH_RC, EXIT_MARK, JOB_RE, WORKER_ID, LaunchError, RunReport, Target, WorkerStatus,
    parse_marks, worker_sort_key)


class TpuLauncher:
  """Builds and runs the gcloud commands for one TPU target (see the module doc)."""

  def __init__(self, target: Target, *, runner: Runner | None = None, repo: str = ".", remote_dir: str = "fot_jax",
               python: str = "python3", install: str = "", allow_dirty: bool = False,
               env: Mapping[str, str] | None = None, gcloud: str = "gcloud"):
    self.t = target
    self.runner = runner or Runner()
    self.repo = repo
    if remote_dir.startswith(("/", "~")) or ".." in remote_dir.split("/") or not remote_dir:
      raise LaunchError(f"--remote_dir {remote_dir!r}: must be a relative path (it lives in each worker's home)")
    self.remote_dir = remote_dir.rstrip("/")
    self.python = python
    self.install = install  # extra pip requirement spec; "" -> the package's [tpu] extra
    self.allow_dirty = allow_dirty
    self.env = dict(env or {})
    self.gcloud = gcloud
    self._commit: str | None = None

  @classmethod
  def from_args(cls, args: argparse.Namespace, dry_run: bool = False) -> "TpuLauncher":
    target = Target(args.tpu or "", args.zone or "", args.project or "", args.accelerator_type or "",
                    args.runtime_version or "", args.queued_resource or "", args.node_count, args.spot)
    return cls(target, runner=Runner(dry_run=dry_run or getattr(args, "dry_run", False)), repo=args.repo,
               remote_dir=args.remote_dir, python=args.python, install=args.install, allow_dirty=args.allow_dirty,
               env=parse_assignments(args.env) if args.env else {})

  @property
  def dry_run(self) -> bool:
    return self.runner.dry_run

  # ---- gcloud command builders -------------------------------------------------------------------------------
  def _tpus(self, *args: str) -> list[str]:
    return [self.gcloud, "compute", "tpus", *args]

  def create_commands(self) -> list[list[str]]:
    t = self.t
    if not (t.accelerator_type and t.runtime_version):
      raise LaunchError("create needs --accelerator_type (e.g. v4-32) and --runtime_version "
                        "(e.g. tpu-ubuntu2204-base)")
    spot = ["--spot"] if t.spot else []
    if t.queued_resource:
      nodes = ([f"--node-count={t.node_count}", f"--node-prefix={t.tpu}"] if t.multislice
               else [f"--node-id={t.tpu}"])
      return [self._tpus("queued-resources", "create", t.queued_resource, *nodes, *t.where(),
                         f"--accelerator-type={t.accelerator_type}", f"--runtime-version={t.runtime_version}",
                         *spot)]
    return [self._tpus("tpu-vm", "create", t.tpu, *t.where(), f"--accelerator-type={t.accelerator_type}",
                       f"--version={t.runtime_version}", *spot)]

  def ssh_command(self, script: str) -> list[str]:
    """Runs `script` (one bash line) on every worker (every node too, for multi-slice)."""
    if self.t.multislice:
      return self._tpus("queued-resources", "ssh", self.t.queued_resource, *self.t.where(), "--node=all",
                        "--worker=all", f"--command={script}")
    return self._tpus("tpu-vm", "ssh", self.t.tpu, *self.t.where(), "--worker=all", f"--command={script}")

  def scp_command(self, local: str, remote: str) -> list[str]:
    if self.t.multislice:
      return self._tpus("queued-resources", "scp", local, f"{self.t.queued_resource}:{remote}", *self.t.where(),
                        "--node=all", "--worker=all")
    return self._tpus("tpu-vm", "scp", local, f"{self.t.tpu}:{remote}", *self.t.where(), "--worker=all")

  def describe_command(self) -> list[str]:
    if self.t.queued_resource:
      return self._tpus("queued-resources", "describe", self.t.queued_resource, *self.t.where(), "--format=json")
    return self._tpus("tpu-vm", "describe", self.t.tpu, *self.t.where(), "--format=json")

  def delete_commands(self) -> list[list[str]]:
    if self.t.queued_resource:  # --force also deletes the nodes the resource holds
      return [self._tpus("queued-resources", "delete", self.t.queued_resource, *self.t.where(), "--force",
                         "--quiet")]
    return [self._tpus("tpu-vm", "delete", self.t.tpu, *self.t.where(), "--quiet")]

  # ---- state -------------------------------------------------------------------------------------------------
  def describe(self) -> dict[str, Any]:
    if self.dry_run:
      self.runner.run(self.describe_command(), capture=True, check=False)
      return {}
    res = self.runner.run(self.describe_command(), capture=True, check=False, note="state")
    if res.returncode != 0:
      return {"state": "NOT_FOUND"}
    try:
      return json.loads(res.stdout or "{}")
    except json.JSONDecodeError:
      return {}

  def state(self, info: Mapping[str, Any] | None = None) -> str:
    info = self.describe() if info is None else info
    state = info.get("state", "")
    if isinstance(state, Mapping):  # queued resources: {"state": {"state": "ACTIVE"}}
      state = state.get("state", "")
    return str(state or "UNKNOWN")

  def expected_workers(self, info: Mapping[str, Any] | None = None) -> int | None:
    """Number of workers of a single-slice TPU VM (its network endpoints); None when unknown."""
    if self.t.multislice or self.t.queued_resource:
      return None
    info = self.describe() if info is None else info
    endpoints = info.get("networkEndpoints")
    return len(endpoints) if isinstance(endpoints, list) and endpoints else None

  # ---- steps -------------------------------------------------------------------------------------------------
  def create(self, wait_s: float = 3600, poll_s: float = 30) -> None:
    for cmd in self.create_commands():
      self.runner.run(cmd, note="create")
    if self.t.queued_resource and not self.dry_run:
      deadline = time.monotonic() + wait_s
      while True:
        state = self.state()
        if state == "ACTIVE":
          return
        if state in ("FAILED", "SUSPENDED", "NOT_FOUND"):
          raise LaunchError(f"queued resource {self.t.queued_resource} is {state}; see `gcloud compute tpus "
                            f"queued-resources describe {self.t.queued_resource}`")
        if time.monotonic() > deadline:
          raise LaunchError(f"queued resource {self.t.queued_resource} not ACTIVE after {wait_s:.0f}s "
                            f"(state {state}); it stays queued: re-run `ship`/`run` once it is ACTIVE")
        print(f"queued resource {self.t.queued_resource}: {state}; waiting", flush=True)
        time.sleep(poll_s)

  def commit(self) -> str:
    if self._commit is None:
      self._commit = gitinfo.code_commit(gitinfo.repo_root(self.repo), self.allow_dirty)
    return self._commit

  def release_dir(self, commit: str) -> str:
    return f"{self.remote_dir}/releases/{commit}"

  def ship(self) -> str:
    """Archives the commit, copies it to every worker, unpacks it and pip-installs it. Returns the commit."""
    commit = self.commit()
    root = gitinfo.repo_root(self.repo)
    tarball = f"fot_jax-{commit[:12]}.tar.gz"
    with tempfile.TemporaryDirectory() as tmp:
      local = os.path.join(tmp, tarball)
      if not self.dry_run:
        gitinfo.archive(root, commit, local)
      self.runner.run(self.scp_command(local, tarball), note=f"ship commit {commit[:12]}")
    release = self.release_dir(commit)
    requirement = self.install or ".[tpu]"
    script = " && ".join([
        shlex.join(["mkdir", "-p", release, f"{self.remote_dir}/logs"]),
        shlex.join(["tar", "-xzf", tarball, "-C", release]),
        shlex.join(["rm", "-f", tarball]),
        shlex.join(["ln", "-sfn", f"releases/{commit}", f"{self.remote_dir}/current"]),
        f"cd {shlex.quote(release)}",
        shlex.join([self.python, "-m", "pip", "install", "-q", "-e", requirement]),
    ])
    self.runner.run(self.ssh_command(script), note="unpack + install on every worker")
    return commit

  def verify(self) -> dict[str, str]:
    """{worker: commit} of every worker; raises LaunchError unless all run this launcher's commit."""
    commit = self.commit()
    script = (f"{WORKER_ID}; C=$(cat {shlex.quote(self.remote_dir + '/current/COMMIT')} 2>/dev/null || "
              f"echo none); echo \"{COMMIT_MARK} worker=$W host=$(hostname) commit=$C\"")
    expected = self.expected_workers()
    res = self.runner.run(self.ssh_command(script), capture=True, check=False, note="same commit everywhere?")
    if self.dry_run:
      return {}
    seen = {m.get("worker", "?"): m.get("commit", "none") for m in parse_marks(res.stdout, COMMIT_MARK)}
    wrong = {w: c for w, c in seen.items() if c != commit}
    problems = [f"worker {w} has {c if c != 'none' else 'no shipped code'}" for w, c in sorted(
        wrong.items(), key=lambda kv: worker_sort_key(kv[0]))]
    if res.returncode != 0:
      problems.append(f"gcloud ssh exited with {res.returncode}")
    if expected is not None and len(seen) < expected:
      problems.append(f"only {len(seen)} of {expected} workers answered")
    if not seen:
      problems.append("no worker answered")
    if problems:
      raise LaunchError(f"workers do not all run commit {commit[:12]}: " + "; ".join(problems)
                        + ". Run `fot-launch tpu ship` (same flags) and retry; starting anyway would hang "
                          "the pod at the first collective")
    return seen

  def device_count(self) -> int | None:
    """JAX devices of the target (all slices), from --accelerator_type or, on a real run, the TPU's description;
    None where neither says."""
    name = self.t.accelerator_type
    if not name and not self.dry_run:
      name = str(self.describe().get("acceleratorType", ""))
    per_slice = tpu_specs.devices_of_accelerator(name) if name else None
    return per_slice * self.t.node_count if per_slice else None

  def preflight(self, config: str, overrides: Mapping[str, Any]) -> None:
    """What would fail on every worker after allocation, checked here first: the resolved config's keys and
    values (the trainer's own validation, for the target's device count), and that git tracks every local file
    it names (config file, data.vocab, corpus files, init_from), since only the commit is shipped."""
    from fot_jax.train import config_paths  # loads JAX: only when launching
    from fot_jax.train.config import TrainConfig
    resolved = TrainConfig.from_config_dict(load_config(config, overrides)).check_devices(self.device_count())
    root = gitinfo.repo_root(self.repo)
    problems = []
    for field, path in [("--config", config.split(":", 1)[0])] + config_paths.referenced_paths(resolved):
      if not os.path.isabs(path):
        missing = gitinfo.untracked(root, path)
        if missing:
          problems.append(f"{field} {path!r}" + (f" ({', '.join(missing)})" if missing != [path] else ""))
      elif os.path.commonpath([os.path.abspath(path), root]) == root:
        raise LaunchError(f"{field} {path!r}: an absolute path inside the repository does not exist on the "
                          f"workers; give it relative to the repository root {root}")
      else:
        print(f"note: {field} {path!r} is outside the repository: it is not shipped and must exist on every "
              f"worker", flush=True)
    if problems:
      raise LaunchError(f"git does not track {'; '.join(problems)} in {root}, so the shipped commit lacks them; "
                        f"commit them (or use gs:// paths) before launching")

  def checkpoint_steps(self, workdir: str) -> list[int]:
    """Complete checkpoint steps in a gs:// workdir (`gcloud storage ls`); [] if none or not listable."""
    if not workdir.startswith("gs://"):
      return []
    res = self.runner.run([self.gcloud, "storage", "ls", f"{workdir.rstrip('/')}/checkpoints/"], capture=True,
                          check=False, note="latest checkpoint (resume point)")
    steps = []
    for line in res.stdout.splitlines():
      name = line.rstrip("/").rsplit("/", 1)[-1]
      if name.isdigit():
        steps.append(int(name))
    return sorted(steps)

  def train_script(self, config: str, workdir: str, overrides: Mapping[str, Any], job: str, detach: bool) -> str:
    """The bash line every worker runs: check its commit, start training in its own process group with a pid
    file, stream (or not) its log, and print its exit status."""
    commit = self.commit()
    logs = f"{self.remote_dir}/logs"
    log, rc_file, pid_file = (f"{logs}/{job}.{ext}" for ext in ("log", "rc", "pid"))
    cwd = f"{self.remote_dir}/current"
    env = [f"{k}={v}" for k, v in self.env.items()]
    train = ["env", *env, self.python, "-m", "fot_jax.train", f"--config={config}", f"--workdir={workdir}",
             *override_flags(overrides)]
    q = shlex.quote
    # Paths are relative to the home directory (ssh starts there); the training runs inside the release
    # (config paths are relative to it), so the detached inner shell spells its paths from $HOME.
    inner = (f"cd \"$HOME\"/{q(cwd)} && {shlex.join(train)} > \"$HOME\"/{q(log)} 2>&1; "
             f"echo $? > \"$HOME\"/{q(rc_file)}")
    lines = [
        WORKER_ID,
        f"mkdir -p {q(logs)}",
        f"rm -f {q(rc_file)}",
        f"C=$(cat {q(cwd + '/COMMIT')} 2>/dev/null || echo none)",
        f"if [ \"$C\" != {q(commit)} ]; then echo \"{EXIT_MARK} worker=$W rc={COMMIT_MISMATCH_RC} "
        f"note=commit-mismatch:$C\"; exit {COMMIT_MISMATCH_RC}; fi",
        f": > {q(log)}",
        f"setsid bash -c {q(inner)} < /dev/null > /dev/null 2>&1 & echo $! > {q(pid_file)}",
    ]
    if detach:
      lines.append(f"echo \"fot_jax-started worker=$W pid=$(cat {q(pid_file)}) log={log}\"")
    else:
      lines += [
          f"tail -n +1 --pid=$(cat {q(pid_file)}) -f {q(log)}",
          f"R=$(cat {q(rc_file)} 2>/dev/null || echo 255)",
          f"echo \"{EXIT_MARK} worker=$W rc=$R\"",
          "exit $R",
      ]
    return "; ".join(lines)

  def run_training(self, config: str, workdir: str, overrides: Mapping[str, Any] | None = None, *,
                   job_name: str = "train", detach: bool = False, allow_local_workdir: bool = False,
                   check_commit: bool = True) -> RunReport:
    """Validates the overrides, checks every worker's commit, runs the command on all workers, and reports
    each worker's exit status (detach: starts it and returns; use status/logs)."""
    overrides = dict(overrides or {})
    if not JOB_RE.match(job_name):
      raise LaunchError(f"--job {job_name!r}: use letters, digits and . _ = , + -")
    if not workdir.startswith("gs://") and not allow_local_workdir:
      raise LaunchError(f"--workdir {workdir!r}: a TPU pod needs a gs:// workdir (every worker writes the same "
                        f"checkpoint, and a relaunch must find it); pass --allow_local_workdir for a single-host "
                        f"TPU VM")
    self.preflight(config, overrides)
    if check_commit:
      self.verify()
    steps = self.checkpoint_steps(workdir)
    if steps:
      print(f"{workdir} holds checkpoint step {steps[-1]}: training resumes from it", flush=True)
    expected = self.expected_workers() if not self.dry_run else None
    script = self.train_script(config, workdir, overrides, job_name, detach)
    res = self.runner.run(self.ssh_command(script), capture="tee", check=False,
                          note=f"job {job_name} on all workers")
    if self.dry_run:
      return RunReport(0, [WorkerStatus("all", 0, "dry-run")], None)
    if detach:
      started = parse_marks(res.stdout, "fot_jax-started")
      return RunReport(res.returncode, [WorkerStatus(m.get("worker", "?"), 0, "started") for m in started],
                       expected)
    return self._report(res.returncode, res.stdout, expected)

  def _report(self, rc: int, output: str, expected: int | None) -> RunReport:
    workers = []
    for m in parse_marks(output, EXIT_MARK):
      raw = m.get("rc", "")
      code = int(raw) if raw.lstrip("-").isdigit() else None
      note = m.get("note", "")
      if code == COMMIT_MISMATCH_RC and not note:
        note = "commit mismatch"
      workers.append(WorkerStatus(m.get("worker", "?"), code, note.replace("-", " ", 1)))
    return RunReport(rc, workers, expected)

  def status(self, job: str) -> RunReport:
    rc_file = f"{self.remote_dir}/logs/{job}.rc"
    script = f"{WORKER_ID}; echo \"{EXIT_MARK} worker=$W rc=$(cat {shlex.quote(rc_file)} 2>/dev/null || echo running)\""
    res = self.runner.run(self.ssh_command(script), capture=True, check=False, note=f"status of {job}")
    return self._report(res.returncode, res.stdout, None if self.dry_run else self.expected_workers())

  def logs(self, job: str, lines: int = 50, fetch_dir: str = "") -> None:
    """Prints the last lines of every worker's log (prefixed by worker), or copies the logs to fetch_dir."""
    log = f"{self.remote_dir}/logs/{job}.log"
    if fetch_dir:
      n = self.expected_workers()
      if n is None and not self.dry_run:
        raise LaunchError("--fetch needs the worker count (a single-slice TPU VM); use `logs` without --fetch")
      os.makedirs(fetch_dir, exist_ok=True)
      for w in range(n or 1):
        self.runner.run(self._tpus("tpu-vm", "scp", f"{self.t.tpu}:{log}", os.path.join(fetch_dir, f"worker_{w}.log"),
                                   *self.t.where(), f"--worker={w}"), check=False)
      return
    script = f"{WORKER_ID}; tail -n {int(lines)} {shlex.quote(log)} | sed \"s/^/[worker $W] /\""
    self.runner.run(self.ssh_command(script), check=False, note=f"logs of {job}")

  def stop(self, job: str) -> None:
    """SIGTERM to the job's process group on every worker: the trainer saves a checkpoint and exits."""
    pid_file = f"{self.remote_dir}/logs/{job}.pid"
    script = (f"{WORKER_ID}; P=$(cat {shlex.quote(pid_file)} 2>/dev/null); if [ -n \"$P\" ]; then "
              f"kill -TERM -- -$P 2>/dev/null && echo \"worker $W: stopping {job} (pid $P)\" || "
              f"echo \"worker $W: {job} not running\"; else echo \"worker $W: no pid file for {job}\"; fi")
    self.runner.run(self.ssh_command(script), check=False, note=f"stop {job}")

  def delete(self) -> None:
    for cmd in self.delete_commands():
      self.runner.run(cmd, note="delete")

  def up(self, config: str, workdir: str, overrides: Mapping[str, Any], *, job_name: str, create: bool,
         max_restarts: int, **run_kw) -> RunReport:
    """[create], ship, run; after a preemption, recreate + reship + rerun (resuming from the checkpoint)."""
    self.preflight(config, overrides)
    if create:
      self.create()
    for attempt in range(max_restarts + 1):
      self.ship()
      report = self.run_training(config, workdir, overrides, job_name=job_name, **run_kw)
      if report.ok or self.dry_run:
        return report
      state = self.state()
      preempted = state in ("PREEMPTED", "TERMINATED", "SUSPENDED", "FAILED", "NOT_FOUND")
      if not preempted or attempt == max_restarts:
        return report
      print(f"TPU state {state} (preempted?): recreating and relaunching; attempt {attempt + 2} of "
            f"{max_restarts + 1} resumes from the latest checkpoint in {workdir}", flush=True)
      self.delete()
      self.create()
    return report
