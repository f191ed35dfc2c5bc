"""Sweeps: expand a sweep file into jobs, run them (locally or on a TPU), skip finished ones, summarise.

`python -m fot_jax.launch.sweep --config=configs/experiments/tiny_fot.py --sweep=configs/sweeps/lr_batch.py[:variant]
   --root=/tmp/sweeps [--launcher=local|tpu] [--parallel=N] [--dry-run] [--set KEY=VALUE ...]`

A sweep file defines `get_sweep(variant="") -> list[dict]` (built with fot_jax.launch.hyper: grid, zipped, product,
chain, fixed) and optionally CONFIG (the default --config) and NAME (default: the file's stem). Every job's
overrides (keys and values) are checked against the config before anything runs, so a typo fails in a second. Each job gets a
readable, unique workdir `<root>/<name>/<varying key=value,...>`; a job whose workdir already holds the final
checkpoint is skipped, so re-running a sweep after a crash or preemption only runs what is missing (and a
partly-run job resumes from its latest checkpoint). The summary table comes from each job's metrics file.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import sys
from typing import Any, Callable, Mapping, Sequence

from fot_jax.launch import results, runner
from fot_jax import cli
from fot_jax.launch.overrides import OverrideError, format_value, load_checked_config, parse_assignments
from fot_jax.train.errors import ConfigError

MAX_SLUG = 80


@dataclasses.dataclass
class Job:
  index: int
  name: str  # "<sweep name>/<slug>"
  overrides: dict[str, Any]  # everything passed to the trainer (shared + varying)
  varying: dict[str, Any]  # the keys that differ between jobs (what the name and the table show)
  workdir: str
  num_steps: int


@dataclasses.dataclass
class Outcome:
  job: Job
  status: str  # "done" | "skipped (done)" | "failed (...)" | "dry-run"
  summary: results.Summary = dataclasses.field(default_factory=results.Summary)

  @property
  def ok(self) -> bool:
    return not self.status.startswith("failed")


# ---- loading and expansion ---------------------------------------------------------------------------------------
def load_sweep_file(spec: str) -> tuple[list[dict[str, Any]], str, str | None]:
  """(jobs, sweep name, default config) of 'path/to/sweep.py[:variant]'."""
  path, _, variant = spec.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--sweep: no sweep file at {path!r}")
  name = os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(f"fot_jax_sweep_{name}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"sweep file {path} defines no get_sweep(variant) function")
  jobs = module.get_sweep(variant) if variant else module.get_sweep()
  if not isinstance(jobs, list) or not jobs or not all(isinstance(j, Mapping) for j in jobs):
    raise ValueError(f"sweep file {path}: get_sweep() must return a non-empty list of override dicts")
  sweep_name = getattr(module, "NAME", name) + (f"_{variant}" if variant else "")
  return [dict(j) for j in jobs], sweep_name, getattr(module, "CONFIG", None)


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
  """The last component of each key, or the full key where two keys share a last component."""
  last = [k.rsplit(".", 1)[-1] for k in keys]
  return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _slug(varying: Mapping[str, Any], short: Mapping[str, str]) -> str:
  if not varying:
    return "base"
  text = ",".join(f"{short[k]}={format_value(v)}" for k, v in varying.items())
  text = re.sub(r"[^A-Za-z0-9._,=+-]", "_", text)
  if len(text) > MAX_SLUG:
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    text = f"{text[:MAX_SLUG - 9]}-{digest}"
  return text


def expand(job_overrides: Sequence[Mapping[str, Any]], config: str, root: str, sweep_name: str,
           shared: Mapping[str, Any] | None = None) -> list[Job]:
  """Jobs with names and workdirs; validates every job's overrides against the config first.

  shared: overrides added to every job (the command line's --set), which job overrides may not repeat.
  Raises OverrideError naming the job and key for the first invalid override, ValueError for duplicate jobs.
  """
  shared = dict(shared or {})
  all_keys: list[str] = []
  for j in job_overrides:
    for k in j:
      if k not in all_keys:
        all_keys.append(k)
  varying_keys = [k for k in all_keys
                  if len({json.dumps(j.get(k, "<unset>"), sort_keys=True, default=str) for j in job_overrides}) > 1]
  short = _short_keys(varying_keys)
  jobs: list[Job] = []
  seen: dict[str, int] = {}
  for i, j in enumerate(job_overrides):
    overrides = {**shared, **j}
    try:
      cfg = load_checked_config(config, overrides)
    except OverrideError as e:
      raise OverrideError(f"sweep {sweep_name} job {i} {dict(j)}: {e}") from None
    except ConfigError as e:
      raise ConfigError(f"sweep {sweep_name} job {i} {dict(j)}: {e}") from None
    varying = {k: j[k] for k in varying_keys if k in j}
    slug = _slug(varying, short)
    if slug in seen:
      raise ValueError(f"sweep {sweep_name}: jobs {seen[slug]} and {i} have the same overrides ({slug})")
    seen[slug] = i
    workdir = f"{root.rstrip('/')}/{sweep_name}/{slug}"
    jobs.append(Job(i, f"{sweep_name}/{slug}", overrides, varying, workdir, int(cfg.num_steps)))
  return jobs


# ---- running -----------------------------------------------------------------------------------------------------
RunJob = Callable[[Job], str]  # runs one job to completion; returns "done" or "failed (...)"


def run_jobs(jobs: Sequence[Job], run_job: RunJob, *, parallel: int = 1, rerun: bool = False,
             dry_run: bool = False, out=None) -> list[Outcome]:
  """Runs the unfinished jobs, `parallel` at a time, in job order; returns one Outcome per job."""
  out = out or sys.stdout
  outcomes: dict[int, Outcome] = {}
  todo = []
  for job in jobs:
    if not rerun and results.is_finished(job.workdir, job.num_steps):
      outcomes[job.index] = Outcome(job, "skipped (done)")
      print(f"skip  {job.name}: {job.workdir} already holds step >= {job.num_steps}", file=out, flush=True)
    else:
      todo.append(job)

  def one(job: Job) -> Outcome:
    if dry_run:
      run_job(job)
      return Outcome(job, "dry-run")
    print(f"start {job.name} -> {job.workdir}", file=out, flush=True)
    try:
      status = run_job(job)
    except Exception as e:  # noqa: BLE001  (one broken job must not lose the others' results)
      status = f"failed ({type(e).__name__}: {e})"
    print(f"end   {job.name}: {status}", file=out, flush=True)
    return Outcome(job, status)

  tasks = [runner.Task(name=str(job.index)) for job in todo]
  by_task = {str(job.index): job for job in todo}
  handles: dict[str, runner.ThreadHandle] = {}

  def launch(task: runner.Task) -> runner.ThreadHandle:
    handles[task.name] = runner.ThreadHandle(lambda: one(by_task[task.name]))
    return handles[task.name]

  runner.run_tasks(tasks, launch, parallel=1 if dry_run else parallel, poll_s=0.05)
  for name, handle in handles.items():
    outcomes[by_task[name].index] = handle.result
  ordered = [outcomes[job.index] for job in jobs]
  if not dry_run:
    for o in ordered:
      o.summary = results.summarize(o.job.workdir)
  return ordered


# ---- the summary table -------------------------------------------------------------------------------------------
def _fmt_loss(x: float | None) -> str:
  return "-" if x is None else f"{x:.4f}"


def summary_rows(outcomes: Sequence[Outcome]) -> list[dict[str, str]]:
  rows = []
  for o in outcomes:
    s = o.summary
    rows.append({
        "job": str(o.job.index),
        "overrides": " ".join(f"{k}={format_value(v)}" for k, v in o.job.varying.items()) or "(base)",
        "step": "-" if s.last_step is None else str(s.last_step),
        "final train loss": _fmt_loss(s.final_train_loss),
        "best eval loss": _fmt_loss(s.best_eval_loss),
        "status": o.status,
    })
  return rows


def format_table(rows: Sequence[Mapping[str, str]]) -> str:
  if not rows:
    return "(no jobs)"
  cols = list(rows[0])
  widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
  line = lambda r: "  ".join(r[c].ljust(widths[c]) for c in cols).rstrip()  # noqa: E731
  return "\n".join([line({c: c for c in cols}), line({c: "-" * widths[c] for c in cols})] + [line(r) for r in rows])


def write_summary(outcomes: Sequence[Outcome], path: str) -> None:
  """summary.json next to the job workdirs (local roots only): the table in machine-readable form."""
  if "://" in path:
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump([{"name": o.job.name, "workdir": o.job.workdir, "overrides": o.job.overrides, "status": o.status,
                **dataclasses.asdict(o.summary)} for o in outcomes], f, indent=1, default=str)


# ---- job runners -------------------------------------------------------------------------------------------------
def local_runner(config: str, *, num_processes: int = 1, devices_per_process: int = 1, echo: bool = False,
                 dry_run: bool = False, out=None) -> RunJob:
  from fot_jax.launch import local

  def run(job: Job) -> str:
    result = local.run_local(config, job.workdir, job.overrides, num_processes=num_processes,
                             devices_per_process=devices_per_process, echo=echo, dry_run=dry_run,
                             validate=False, out=out)
    if result.ok:
      return "done"
    first = result.message.splitlines()[0].removeprefix("job failed: ")
    return f"failed ({first})"
  return run


def tpu_runner(config: str, tpu_args: argparse.Namespace, dry_run: bool = False) -> RunJob:
  from fot_jax.launch import tpu

  launcher = tpu.TpuLauncher.from_args(tpu_args, dry_run=dry_run)

  def run(job: Job) -> str:
    report = launcher.run_training(config, job.workdir, job.overrides, job_name=job.name.replace("/", "--"))
    return "done" if report.ok else f"failed ({report.describe()})"
  return run


# ---- command line ------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m fot_jax.launch.sweep", description=__doc__.split("\n\n")[0])
  p.add_argument("--sweep", required=True, help="sweep file[:variant] (configs/sweeps/*.py)")
  p.add_argument("--config", default=None, help="config file[:variant]; default: the sweep file's CONFIG")
  p.add_argument("--root", default="/tmp/fot_jax_sweeps", help="parent of the job workdirs (gs:// for tpu)")
  p.add_argument("--launcher", choices=("local", "tpu"), default="local")
  p.add_argument("--parallel", type=int, default=1, help="local: jobs at a time")
  p.add_argument("--num_processes", type=int, default=1, help="local: processes per job")
  p.add_argument("--devices_per_process", type=int, default=1, help="local: fake CPU devices per process")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every job")
  p.add_argument("--rerun", action="store_true", help="run finished jobs again (they resume, i.e. no-op, "
                                                        "unless num_steps grew)")
  p.add_argument("--verbose", action="store_true", help="local: echo the training output")
  p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
  from fot_jax.launch import tpu
  tpu.add_target_args(p, required=False)
  cli.add_debug_flag(p)
  args = p.parse_args(argv)
  return cli.run(lambda: _run(args), prog="fot_jax.launch.sweep", debug=args.debug,
                 also=(ValueError, FileNotFoundError))


def _run(args) -> int:
  """Loads the sweep, checks every job's config, runs the jobs and writes the summary; returns the exit status."""
  job_list, name, default_config = load_sweep_file(args.sweep)
  config = args.config or default_config
  if not config:
    raise ValueError("--config is required (the sweep file sets no CONFIG)")
  jobs = expand(job_list, config, args.root, name, parse_assignments(args.set))
  if args.launcher == "tpu":
    if args.parallel > 1:
      raise ValueError("--parallel > 1 needs one TPU per job; the tpu launcher runs jobs one after another")
    run_job = tpu_runner(config, args, dry_run=args.dry_run)
  else:
    run_job = local_runner(config, num_processes=args.num_processes, devices_per_process=args.devices_per_process,
                           echo=args.verbose, dry_run=args.dry_run)
  print(f"sweep {name}: {len(jobs)} jobs on {config} under {args.root}/{name}", flush=True)
  outcomes = run_jobs(jobs, run_job, parallel=args.parallel, rerun=args.rerun, dry_run=args.dry_run)
  print()
  print(format_table(summary_rows(outcomes)), flush=True)
  if not args.dry_run:
    write_summary(outcomes, f"{args.root.rstrip('/')}/{name}/summary.json")
  return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
  sys.exit(main())
