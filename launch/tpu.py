"""TPU launcher: create a TPU VM (or queued resource), ship a git commit, run training on every worker.

  python -m fot_jax.launch.tpu create --tpu=fot-v4 --zone=us-central2-b --project=P --accelerator_type=v4-32 \\
      --runtime_version=tpu-ubuntu2204-base [--queued_resource=fot-qr] [--spot]
  python -m fot_jax.launch.tpu ship   --tpu=fot-v4 --zone=... [--allow_dirty]
  python -m fot_jax.launch.tpu run    --tpu=fot-v4 --zone=... --config=configs/experiments/longllama_3b_fot.py \\
      --workdir=gs://bucket/runs/3b --set optim.learning_rate=1e-4 [--detach] [--job=NAME]
  python -m fot_jax.launch.tpu up     ...create+ship+run, relaunching after a preemption (--max_restarts)
  python -m fot_jax.launch.tpu status|logs|stop --job=NAME ;  python -m fot_jax.launch.tpu delete
  Every subcommand takes --dry-run (print each gcloud command, run none).

Why each step is the way it is:
- The code is a git commit (`git archive`, dirty trees refused unless --allow_dirty), unpacked on every worker
  under <remote_dir>/releases/<commit> with a COMMIT file. Before training, every worker reports its commit and
  the launcher refuses to start if any differs or is missing: workers running different code hang at the first
  collective (the classic pod hang), which is far harder to diagnose than a refusal.
- The identical command runs on all workers (`gcloud compute tpus tpu-vm ssh --worker=all`); on a pod
  `jax.distributed.initialize()` auto-detects the topology, so the command carries no process ids. Each
  worker also re-checks its COMMIT before starting, prints `fot_jax-exit worker=W rc=R` when training ends,
  and keeps its log in <remote_dir>/logs/<job>.log (exit status in <job>.rc), so a failed worker is named.
- The workdir must be gs:// (all workers write one orbax checkpoint). Relaunching the same command after a
  preemption resumes from the latest checkpoint there: the trainer restores automatically.
- Multi-slice (queued resource with --node_count > 1) uses `gcloud compute tpus queued-resources ssh/scp
  --node=all --worker=all`. Not exercised here (no TPU); see docs/LAUNCH.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from fot_jax import cli
from fot_jax.launch.overrides import parse_assignments
from fot_jax.launch.shell import CommandError
from fot_jax.launch.tpu_launcher import TpuLauncher


# ---- command line ------------------------------------------------------------------------------------------------
def add_target_args(p: argparse.ArgumentParser, required: bool = True) -> None:
  g = p.add_argument_group("TPU target")
  g.add_argument("--tpu", required=required, help="TPU VM name (node prefix for multi-slice)")
  g.add_argument("--zone", required=required)
  g.add_argument("--project", default="")
  g.add_argument("--accelerator_type", default="", help="create: e.g. v4-32, v5litepod-16")
  g.add_argument("--runtime_version", default="", help="create: e.g. tpu-ubuntu2204-base")
  g.add_argument("--queued_resource", default="", help="use a queued resource of this name")
  g.add_argument("--node_count", type=int, default=1, help="multi-slice: slices in the queued resource")
  g.add_argument("--spot", action="store_true")
  g.add_argument("--remote_dir", default="fot_jax", help="code/log directory in each worker's home")
  g.add_argument("--python", default="python3", help="python on the workers")
  g.add_argument("--install", default="", help="pip requirement installed on the workers (default: .[tpu])")
  g.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment for training")
  g.add_argument("--allow_dirty", action="store_true", help="ship uncommitted changes to tracked files")
  g.add_argument("--repo", default=".", help="the git checkout to ship")


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m fot_jax.launch.tpu", description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  for name in ("create", "ship", "verify", "run", "up", "status", "logs", "stop", "delete"):
    s = sub.add_parser(name)
    add_target_args(s)
    s.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
    cli.add_debug_flag(s)
    if name in ("run", "up", "status", "logs", "stop"):
      s.add_argument("--job", default="train", help="job name (log file name on the workers)")
    if name in ("run", "up"):
      s.add_argument("--config", required=True)
      s.add_argument("--workdir", required=True, help="gs://bucket/path (shared by all workers)")
      s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
      s.add_argument("--detach", action="store_true", help="start and return; follow with status/logs")
      s.add_argument("--allow_local_workdir", action="store_true")
      s.add_argument("--no_verify", action="store_true", help="skip the same-commit check (not recommended)")
    if name == "up":
      s.add_argument("--create", action="store_true", help="create the TPU first")
      s.add_argument("--max_restarts", type=int, default=3, help="relaunches after preemption")
    if name == "logs":
      s.add_argument("--lines", type=int, default=50)
      s.add_argument("--fetch", default="", help="copy every worker's log into this local directory")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  return cli.run(lambda: _main(args), prog="fot_jax.launch.tpu", debug=args.debug, also=(FileNotFoundError,))


def _main(args: argparse.Namespace) -> int:
  try:
    launcher = TpuLauncher.from_args(args)
    cmd = args.cmd
    if cmd == "create":
      launcher.create()
    elif cmd == "ship":
      print(f"shipped commit {launcher.ship()}")
    elif cmd == "verify":
      seen = launcher.verify()
      print(f"{len(seen)} workers run commit {launcher.commit()[:12]}")
    elif cmd in ("run", "up"):
      kw = dict(job_name=args.job, detach=args.detach, allow_local_workdir=args.allow_local_workdir,
                check_commit=not args.no_verify)
      overrides = parse_assignments(args.set)
      if cmd == "run":
        report = launcher.run_training(args.config, args.workdir, overrides, **kw)
      else:
        report = launcher.up(args.config, args.workdir, overrides, create=args.create,
                             max_restarts=args.max_restarts, **kw)
      print(f"job {args.job}: " + ("ok" if report.ok else "FAILED: " + report.describe()))
      print(report.table())
      return 0 if report.ok else 1
    elif cmd == "status":
      report = launcher.status(args.job)
      print(f"job {args.job}:")
      print(report.table())
      return 0 if report.ok else 1
    elif cmd == "logs":
      launcher.logs(args.job, args.lines, args.fetch)
    elif cmd == "stop":
      launcher.stop(args.job)
    elif cmd == "delete":
      launcher.delete()
  except CommandError as e:  # gcloud failed: its own exit status, not a user error
    if args.debug:
      raise
    print(f"fot_jax.launch.tpu: error: {e}", file=sys.stderr)
    return e.returncode or 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
