"""An experiment: training runs of different configs in parallel, some starting from others' checkpoints (local
pretraining, then FoT fine-tuning), under a deadline, then evaluations of each, and a summary table. It runs the
reproduction manifests in experiments/ (`--manifest=experiments/NAME.py`); fot_jax.launch.sweep is the tool for
hyperparameter grids over a single config.

  python -m fot_jax.launch.experiment --runs=runs/sweep --parallel=8 --deadline_s=400 \
      --run='pre=configs/experiments/distraction_fot.py:pretrain_local' \
      --run='d1<pre=configs/experiments/distraction_fot.py:d1 --config.num_steps=2000' \
      --eval='distraction --corpus=repeat:random:64:32x4 --context_length=32'

A manifest is a Python file that defines RUNS and EVALS, lists of the --run and --eval strings below; `{runs}`
and `{name}` in an evaluation stand for the --runs folder and the run's name, so one evaluation can compare
against another's result (such an evaluation starts once the evaluations listed before it have finished).
--run and --eval add to a manifest's.

A manifest may also gate runs and end with reports. GATES: 'PATTERN:TAG=FLAGS' strings: a run matching PATTERN
is evaluated right after training with its TAG evaluation, and `python -m fot_jax.eval.focus_gate RESULT FLAGS`
decides whether its children start; a run that fails its gate trains again (up to ATTEMPTS times, default 1)
in the workdir NAME.retryI with config.seed raised by 1000 * I, and the children start from the first attempt
that passes. REPORTS: 'MODULE [flags]' strings run as `python -m MODULE` after every evaluation (`{runs}` is
the --runs folder), e.g. the claims table across seeds.

A run is NAME=CONFIG [trainer flags]; NAME<PARENT starts it from PARENT's final checkpoint (config.init_from)
once PARENT has finished. An evaluation is [PATTERN[:TAG]=]TASK [flags]: `python -m fot_jax.evaluate TASK` for
every run whose name matches the glob PATTERN (default all), written to RUNS/NAME.TAG.json (TAG defaults to
TASK; give two evaluations of one task different tags). At the deadline, running trainers get SIGTERM (they
save at the next step and stop) and are evaluated from that checkpoint, so a slow machine gives shorter runs
rather than none; the summary says which were cut. Nothing is overwritten: a run whose workdir exists resumes,
an existing result is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time

from fot_jax import cli
from fot_jax.launch import results as run_files
from fot_jax.launch import runner

TRAIN_COMMAND = [sys.executable, "-m", "fot_jax.train"]
EVAL_COMMAND = [sys.executable, "-m", "fot_jax.evaluate"]


RETRY_SEED_STEP = 1000  # a gated run's attempt I trains with config.seed + I * RETRY_SEED_STEP
GATE_MODULE = "fot_jax.eval.focus_gate"


@dataclasses.dataclass(kw_only=True)
class Run(runner.Task):
  """One training run: NAME (workdir RUNS/NAME), started from PARENT's checkpoint when it has one."""
  config: str
  flags: list[str]
  attempt: int = 0  # > 0: a retry after a failed gate, in its own workdir

  @property
  def workdir_name(self) -> str:
    return self.name if self.attempt == 0 else f"{self.name}.retry{self.attempt}"


def parse_run(spec: str) -> Run:
  """'NAME[<PARENT]=CONFIG [flags...]' -> Run, with an error naming the spec when it is malformed."""
  head, eq, rest = spec.partition("=")
  name, lt, parent = head.partition("<")
  words = shlex.split(rest)
  if not eq or not name.strip() or (lt and not parent.strip()) or not words:
    raise ValueError(f"--run {spec!r}: expected 'NAME=CONFIG [flags]' or 'NAME<PARENT=CONFIG [flags]'")
  if not all(c.isalnum() or c in "_-." for c in name):
    raise ValueError(f"--run {spec!r}: the name may hold letters, digits, '_', '-' and '.' only")
  return Run(name=name.strip(), parent=parent.strip() or None, config=words[0], flags=words[1:])


@dataclasses.dataclass
class Eval:
  pattern: str
  tag: str
  args: list[str]


def parse_eval(spec: str) -> Eval:
  """'[PATTERN[:TAG]=]TASK [flags]' -> Eval."""
  head, eq, rest = spec.partition("=")
  if not eq or head.startswith("-") or " " in head:  # no selector: the '=' belongs to a flag
    head, rest = "*", spec
  pattern, _, tag = head.partition(":")
  words = shlex.split(rest)
  if not words or words[0].startswith("-"):
    raise ValueError(f"--eval {spec!r}: expected '[PATTERN[:TAG]=]TASK [flags]', "
                     f"e.g. 'ft_*=distraction --corpus=...'")
  return Eval(pattern or "*", tag or words[0], words)


@dataclasses.dataclass
class Gate:
  pattern: str
  tag: str  # the evaluation whose result the gate reads
  flags: list[str]  # focus_gate's flags


def parse_gate(spec: str) -> Gate:
  """'PATTERN:TAG=FLAGS' -> Gate."""
  head, eq, rest = spec.partition("=")
  pattern, colon, tag = head.partition(":")
  if not eq or not colon or not pattern.strip() or not tag.strip():
    raise ValueError(f"GATES {spec!r}: expected 'PATTERN:TAG=FLAGS', e.g. 'pre_*:distraction=--layer=1 --d=8,64'")
  return Gate(pattern.strip(), tag.strip(), shlex.split(rest))


@dataclasses.dataclass
class Manifest:
  runs: list[str]
  evals: list[str]
  gates: list[str] = dataclasses.field(default_factory=list)
  reports: list[str] = dataclasses.field(default_factory=list)
  attempts: int = 1


def load_manifest(path: str) -> Manifest:
  """RUNS, EVALS and the optional GATES, REPORTS, ATTEMPTS of a manifest file, with an error naming the file and
  the variable that is missing or malformed."""
  if not os.path.isfile(path):
    raise ValueError(f"--manifest: no manifest file at {path!r}")
  spec = importlib.util.spec_from_file_location(f"manifest_{os.path.basename(path)[:-3]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  lists = {}
  for name in ("RUNS", "EVALS", "GATES", "REPORTS"):
    value = getattr(module, name, None if name in ("RUNS", "EVALS") else [])
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
      raise ValueError(f"--manifest {path}: expected {name} = a list of strings, found {type(value).__name__}")
    lists[name] = list(value)
  attempts = getattr(module, "ATTEMPTS", 1)
  if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
    raise ValueError(f"--manifest {path}: expected ATTEMPTS = a positive integer, found {attempts!r}")
  return Manifest(lists["RUNS"], lists["EVALS"], lists["GATES"], lists["REPORTS"], attempts)


def check_graph(runs: list[Run]) -> None:
  names = [r.name for r in runs]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ValueError(f"--run: duplicate names {dupes}")
  for r in runs:
    if r.parent is not None and r.parent not in names:
      raise ValueError(f"--run {r.name}<{r.parent}: no run is named {r.parent!r}")
  # parents must be acyclic: follow each chain
  by_name = {r.name: r for r in runs}
  for r in runs:
    seen, cur = set(), r
    while cur.parent is not None:
      if cur.name in seen:
        raise ValueError(f"--run: runs {sorted(seen)} start from each other in a cycle")
      seen.add(cur.name)
      cur = by_name[cur.parent]


def check_gates(gates: list[Gate], runs: list[Run], evals: list[Eval]) -> None:
  """Each gate selects a run, and each run it selects has the evaluation the gate reads."""
  for g in gates:
    selected = [r for r in runs if fnmatch.fnmatchcase(r.name, g.pattern)]
    if not selected:
      raise ValueError(f"GATES {g.pattern}:{g.tag}: the pattern selects no run")
    for r in selected:
      if not any(e.tag == g.tag and fnmatch.fnmatchcase(r.name, e.pattern) for e in evals):
        raise ValueError(f"GATES {g.pattern}:{g.tag}: no evaluation tagged {g.tag!r} selects run {r.name}")


def log_tail(path: str, lines: int = 5) -> str:
  try:
    with open(path, errors="replace") as f:
      return "".join(f.readlines()[-lines:])
  except OSError:
    return ""


def retry_seed(run: Run) -> int:
  """The seed of a gated run's current attempt: its config's seed (with its flags) + attempt * RETRY_SEED_STEP."""
  from fot_jax.train import config_file
  overrides, _ = config_file.split_overrides(run.flags)
  return int(config_file.load_config(run.config, overrides).seed) + run.attempt * RETRY_SEED_STEP


def start(run: Run, runs_dir: str, parent: Run | None = None) -> runner.ProcessHandle:
  workdir = os.path.join(runs_dir, run.workdir_name)
  cmd = [*TRAIN_COMMAND, f"--config={run.config}", f"--workdir={workdir}", *run.flags]
  if run.attempt:
    cmd.append(f"--config.seed={retry_seed(run)}")
  if parent is not None and not os.path.exists(workdir):
    cmd.append(f"--config.init_from={os.path.join(runs_dir, parent.workdir_name)}")
  os.makedirs(runs_dir, exist_ok=True)
  with open(os.path.join(runs_dir, f"{run.workdir_name}.train.log"), "a") as log:  # the child keeps its handle
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  print(f"[{time.strftime('%H:%M:%S')}] start {run.workdir_name}: {shlex.join(cmd[len(TRAIN_COMMAND):])}",
        flush=True)
  return runner.ProcessHandle(proc)


def passes_gate(run: Run, runs_dir: str, gate: Gate, evals: list[Eval]) -> bool:
  """Evaluates the run with the gate's evaluation now (unless its result exists) and runs the gate on it."""
  e = next(e for e in evals if e.tag == gate.tag and fnmatch.fnmatchcase(run.name, e.pattern))  # check_gates
  out = os.path.join(runs_dir, f"{run.workdir_name}.{e.tag}.json")
  if not os.path.exists(out):
    with open(os.path.join(runs_dir, f"{run.workdir_name}.{e.tag}.eval.log"), "a") as log:
      subprocess.run(eval_command(run, e, runs_dir), stdout=log, stderr=subprocess.STDOUT, check=False)
  gate_cmd = [sys.executable, "-m", GATE_MODULE, out, *gate.flags]
  verdict = subprocess.run(gate_cmd, capture_output=True, text=True, check=False)
  print(f"[{time.strftime('%H:%M:%S')}] gate {run.workdir_name}: {(verdict.stdout + verdict.stderr).strip()}",
        flush=True)
  return verdict.returncode == 0


def train_all(runs: list[Run], runs_dir: str, parallel: int, deadline: float, gates: list[Gate] = (),
              evals: list[Eval] = (), attempts: int = 1) -> None:
  """Trains every run (children after their parents) until the deadline, when trainers save and stop. A gated
  run that fails its gate trains again with a new seed (up to `attempts` times), else counts as failed."""
  by_name = {r.name: r for r in runs}

  def ended(r: Run, status: int) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {r.state} {r.workdir_name} in {r.seconds:.0f}s (rc {status})", flush=True)
    if r.state == runner.FAILED:
      print(log_tail(os.path.join(runs_dir, f"{r.workdir_name}.train.log"), 15), flush=True)
    gate = next((g for g in gates if fnmatch.fnmatchcase(r.name, g.pattern)), None)
    if r.state != runner.DONE or gate is None or passes_gate(r, runs_dir, gate, evals):
      return
    if r.attempt + 1 < attempts:
      r.attempt, r.state = r.attempt + 1, "waiting"  # the scheduler starts the next attempt
    else:
      r.state = runner.FAILED
      print(f"[{time.strftime('%H:%M:%S')}] {r.name}: no attempt of {attempts} passed its gate", flush=True)

  runner.run_tasks(runs, lambda r: start(r, runs_dir, by_name.get(r.parent)), parallel=parallel,
                   deadline=deadline, on_end=ended)
  for r in runs:
    if r.state == runner.CUT:
      print(f"[{time.strftime('%H:%M:%S')}] cut {r.name} at the deadline after {r.seconds:.0f}s", flush=True)


def eval_command(run: Run, e: Eval, runs_dir: str) -> list[str]:
  """`python -m fot_jax.evaluate TASK ...` of one evaluation of one run, written to RUNS/WORKDIR.TAG.json."""
  name = run.workdir_name
  args = [a.replace("{runs}", runs_dir).replace("{name}", name) for a in e.args]
  return [*EVAL_COMMAND, *args, f"--checkpoint={os.path.join(runs_dir, name)}",
          f"--out={os.path.join(runs_dir, f'{name}.{e.tag}.json')}", f"--label={name}"]


def evaluate_all(runs: list[Run], runs_dir: str, evals: list[Eval], parallel: int,
                 timeout_s: float = 0) -> dict[str, list[str]]:
  """Each matching evaluation of each run that has a checkpoint; returns name -> result paths. Evaluations still
  running timeout_s after the first started are killed (their results are then missing)."""
  results, procs = {}, []
  stop = time.time() + timeout_s if timeout_s > 0 else float("inf")
  for r in runs:
    workdir = os.path.join(runs_dir, r.workdir_name)
    if r.state not in ("done", "cut") or run_files.latest_step(workdir) is None:
      continue
    for e in evals:
      if not fnmatch.fnmatchcase(r.name, e.pattern):
        continue
      out = os.path.join(runs_dir, f"{r.workdir_name}.{e.tag}.json")
      results.setdefault(r.name, []).append(out)
      if os.path.exists(out):
        continue
      cmd = eval_command(r, e, runs_dir)
      busy = 1 if "{" in " ".join(e.args) else parallel  # a comparison waits until earlier evaluations finish
      while sum(p.poll() is None for p in procs) >= busy and time.time() < stop:
        time.sleep(0.5)
      if time.time() >= stop:
        break
      with open(os.path.join(runs_dir, f"{r.workdir_name}.{e.tag}.eval.log"), "a") as log:
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
  for p in procs:
    try:
      p.wait(timeout=max(stop - time.time(), 0) if stop != float("inf") else None)
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()
      print(f"[{time.strftime('%H:%M:%S')}] evaluation killed at --eval_timeout_s: "
            f"{shlex.join(p.args[len(EVAL_COMMAND):])}", flush=True)
  return results


def result_line(path: str) -> str:
  """The headline numbers of one result file: r_d per layer, or accuracy per memory size."""
  if not os.path.exists(path):
    return f"{os.path.basename(path)}: missing (see its .eval.log)"
  with open(path) as f:
    res = json.load(f)
  tag = os.path.basename(path).split(".")[-2]
  if "layers" in res:
    ctx = res.get("contexts", [])
    return f"{tag}: " + "; ".join(f"L{layer} " + " ".join(f"{c}:{v:.3f}" for c, v in zip(ctx, val["r"]))
                                  for layer, val in res["layers"].items())
  if "accuracy" in res and "memory_tokens" in res:
    return f"{tag}: " + " ".join(f"{n}:{a:.2f}" for n, a in zip(res["memory_tokens"], res["accuracy"]))
  return f"{tag}: {sorted(res)}"


def run_reports(reports: list[str], runs_dir: str) -> tuple[str, bool]:
  """Runs each `python -m MODULE [flags]` report; (their output, whether all succeeded)."""
  texts, ok = [], True
  for spec in reports:
    words = [w.replace("{runs}", runs_dir) for w in shlex.split(spec)]
    proc = subprocess.run([sys.executable, "-m", *words], capture_output=True, text=True, check=False)
    texts.append(f"# report {shlex.join(words)} (rc {proc.returncode})\n{(proc.stdout + proc.stderr).strip()}")
    ok = ok and proc.returncode == 0
  return "\n".join(texts), ok


def summary(runs: list[Run], runs_dir: str, results: dict[str, list[str]]) -> str:
  lines = [f"{'run':28s} {'state':8s} {'steps':>6s} {'loss':>7s} {'secs':>6s}  results (r_d by contexts d; "
           f"accuracy by memory tokens)"]
  for r in runs:
    m = run_files.summarize(os.path.join(runs_dir, r.workdir_name))
    found = " | ".join(result_line(p) for p in results.get(r.name, []))
    lines.append(f"{r.workdir_name:28s} {r.state:8s} {m.last_step or 0:6d} "
                 f"{m.final_train_loss if m.final_train_loss is not None else float('nan'):7.3f} "
                 f"{r.seconds:6.0f}  {found}")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m fot_jax.launch.experiment", description=__doc__.splitlines()[0])
  p.add_argument("--runs", required=True, help="directory of the runs' workdirs, logs and results")
  p.add_argument("--manifest", default="", help="a file of RUNS and EVALS (experiments/NAME.py)")
  p.add_argument("--run", action="append", default=[], help="NAME=CONFIG [flags] or NAME<PARENT=CONFIG [flags]")
  p.add_argument("--eval", action="append", default=[],
                 help="[PATTERN[:TAG]=]TASK [flags] (repeatable), e.g. 'ft_*=distraction --corpus=...'")
  p.add_argument("--parallel", type=int, default=1, help="trainers (and evaluations) at a time")
  p.add_argument("--deadline_s", type=float, default=0, help="stop training this many seconds after the start "
                 "(0: no deadline)")
  p.add_argument("--eval_timeout_s", type=float, default=0, help="kill evaluations still running this many "
                 "seconds after the first started (0: none)")
  cli.add_debug_flag(p)
  args = p.parse_args(argv)
  return cli.run(lambda: _run(args), prog="fot_jax.launch.experiment", debug=args.debug, also=(ValueError,))


def _run(args) -> int:
  """Checks the runs and evaluations, trains, evaluates and writes the summary; returns the exit status."""
  manifest = load_manifest(args.manifest) if args.manifest else Manifest([], [])
  runs = [parse_run(s) for s in manifest.runs + args.run]
  evals = [parse_eval(s) for s in manifest.evals + args.eval]
  gates = [parse_gate(s) for s in manifest.gates]
  if not runs:
    raise ValueError("no runs: give --manifest=FILE or --run=NAME=CONFIG")
  check_graph(runs)
  check_gates(gates, runs, evals)
  if args.parallel < 1:
    raise ValueError(f"--parallel: expected >= 1, found {args.parallel}")
  t0 = time.time()
  train_all(runs, args.runs, args.parallel, t0 + args.deadline_s if args.deadline_s > 0 else float("inf"),
            gates, evals, manifest.attempts)
  results = evaluate_all(runs, args.runs, evals, args.parallel, args.eval_timeout_s)
  text = summary(runs, args.runs, results)
  reports, reports_ok = run_reports(manifest.reports, args.runs)
  text = f"{text}\n{reports}" if reports else text
  print(text)
  os.makedirs(args.runs, exist_ok=True)
  with open(os.path.join(args.runs, "summary.txt"), "a") as f:
    f.write(f"# experiment finished {time.strftime('%Y-%m-%d %H:%M:%S')} after {time.time() - t0:.0f}s\n{text}\n")
  return 0 if reports_ok and all(r.state in ("done", "cut") for r in runs) else 1


if __name__ == "__main__":
  sys.exit(main())
