"""Sweeps: helpers, expansion (names, workdirs, validation before anything runs), skipping, the summary table;
with a fake job runner (fast) and, marked slow, a real 2x2 sweep of the tiny config."""

import json
import os
import subprocess
import sys

import pytest

from fot_jax.launch import hyper, sweep
from fot_jax.launch.overrides import OverrideError
from fot_jax.train.errors import ConfigError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "configs/experiments/tiny_fot.py"
GRID = hyper.grid({"optim.learning_rate": [1e-3, 3e-3], "data.batch_size": [8, 16]})


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
  monkeypatch.chdir(REPO_ROOT)


def test_helpers():
  assert GRID == [{"optim.learning_rate": 1e-3, "data.batch_size": 8}, {"optim.learning_rate": 1e-3, "data.batch_size": 16},
                  {"optim.learning_rate": 3e-3, "data.batch_size": 8}, {"optim.learning_rate": 3e-3, "data.batch_size": 16}]
  z = hyper.zipped(hyper.sweep("fot.d", [2, 4]), hyper.sweep("fot.d_after", [6, 8]))
  assert z == [{"fot.d": 2, "fot.d_after": 6}, {"fot.d": 4, "fot.d_after": 8}]
  assert len(hyper.chain(GRID, z)) == 6
  assert hyper.product(hyper.fixed({"num_steps": 5}), z)[1] == {"num_steps": 5, "fot.d": 4, "fot.d_after": 8}
  with pytest.raises(ValueError, match="different lengths"):
    hyper.zipped(hyper.sweep("a", [1, 2]), hyper.sweep("b", [1]))
  with pytest.raises(ValueError, match="same key"):
    hyper.product(hyper.sweep("a", [1]), hyper.sweep("a", [2]))


def test_expand_names_and_workdirs(tmp_path):
  jobs = sweep.expand(GRID, CONFIG, str(tmp_path), "lr_batch", shared={"num_steps": "3"})
  names = [j.name for j in jobs]
  assert names == ["lr_batch/learning_rate=0.001,batch_size=8", "lr_batch/learning_rate=0.001,batch_size=16",
                   "lr_batch/learning_rate=0.003,batch_size=8", "lr_batch/learning_rate=0.003,batch_size=16"]
  assert len({j.workdir for j in jobs}) == 4 and all(j.workdir.startswith(str(tmp_path)) for j in jobs)
  assert all(j.num_steps == 3 and j.overrides["num_steps"] == "3" for j in jobs)
  # Keys sharing a last component keep their full path; very long names are shortened with a hash.
  both = sweep.expand(hyper.grid({"fot.d": [1, 2], "eval.d": [1, 3]}), CONFIG, "gs://b/s", "dd")
  assert both[0].name == "dd/fot.d=1,eval.d=1" and both[0].workdir == "gs://b/s/dd/fot.d=1,eval.d=1"
  long = sweep.expand(hyper.sweep("data.task", ["jsonl:/" + "x" * 100 + str(i) for i in range(2)]), CONFIG, "/r", "t")
  assert all(len(j.name) <= len("t/") + sweep.MAX_SLUG for j in long) and long[0].name != long[1].name


def test_typo_fails_before_anything_runs(tmp_path):
  bad = GRID[:3] + [{"optim.learning_rat": 1e-2}]
  with pytest.raises(OverrideError, match=r"job 3 .*'optim.learning_rat'.*did you mean 'optim.learning_rate'"):
    sweep.expand(bad, CONFIG, str(tmp_path), "s")
  with pytest.raises(OverrideError, match="data.batch_size"):
    sweep.expand([{"data.batch_size": "many"}], CONFIG, str(tmp_path), "s")
  # Through the command line: exit 2, and no workdir was created.
  sweep_file = tmp_path / "typo.py"
  sweep_file.write_text("def get_sweep():\n  return [{'optim.learning_rate': 1e-3}, {'optim.lr': 1e-3}]\n")
  assert sweep.main([f"--sweep={sweep_file}", f"--config={CONFIG}", f"--root={tmp_path / 'root'}"]) == 2
  assert not (tmp_path / "root").exists()


def test_bad_value_fails_before_anything_runs(tmp_path):
  bad = GRID[:2] + [{"data.batch_size": 3}]
  with pytest.raises(ConfigError, match=r"job 2 .*config.data.batch_size: expected a multiple"):
    sweep.expand(bad, CONFIG, str(tmp_path), "s")
  sweep_file = tmp_path / "bad.py"
  sweep_file.write_text("def get_sweep():\n  return [{'optim.learning_rate': 1e-3}, {'optim.learning_rate': -1.0}]\n")
  assert sweep.main([f"--sweep={sweep_file}", f"--config={CONFIG}", f"--root={tmp_path / 'root'}"]) == 2
  assert not (tmp_path / "root").exists()


def _fake_run(job):
  """Writes what the trainer would: metrics.jsonl and a final checkpoint directory."""
  os.makedirs(os.path.join(job.workdir, "checkpoints", str(job.num_steps)))
  lr = float(job.overrides["optim.learning_rate"])
  with open(os.path.join(job.workdir, "metrics.jsonl"), "w") as f:
    for step in range(1, job.num_steps + 1):
      f.write(json.dumps({"step": step, "kind": "train", "loss": 5.0 - step * lr * 100}) + "\n")
    f.write(json.dumps({"step": job.num_steps, "kind": "eval", "loss": 4.5}) + "\n")
    f.write(json.dumps({"step": 1, "kind": "eval", "loss": 4.0}) + "\n")
    f.write('{"step": 9, "kind": "tr')  # a torn line from a killed writer is ignored
  if job.overrides["data.batch_size"] == 16 and lr > 2e-3:
    return "failed (exited with code 1)"
  return "done"


def test_run_skip_and_summary(tmp_path, capsys):
  jobs = sweep.expand(GRID, CONFIG, str(tmp_path), "g", shared={"num_steps": 3})
  ran = []
  outcomes = sweep.run_jobs(jobs, lambda j: ran.append(j.index) or _fake_run(j), parallel=2)
  assert sorted(ran) == [0, 1, 2, 3]
  assert [o.status for o in outcomes] == ["done", "done", "done", "failed (exited with code 1)"]
  s = outcomes[0].summary
  assert s.last_step == 3 and s.final_train_loss == pytest.approx(5.0 - 0.3) and s.best_eval_loss == 4.0
  table = sweep.format_table(sweep.summary_rows(outcomes))
  lines = table.splitlines()
  assert len(lines) == 2 + 4
  assert lines[0].split() == ["job", "overrides", "step", "final", "train", "loss", "best", "eval", "loss", "status"]
  assert "optim.learning_rate=0.001 data.batch_size=8" in lines[2] and "4.7000" in lines[2] and "4.0000" in lines[2]
  # Re-running skips every job that holds its final checkpoint (all four here: the fake wrote them).
  again = sweep.run_jobs(jobs, lambda j: pytest.fail("a finished job ran again"))
  assert [o.status for o in again] == ["skipped (done)"] * 4 and again[0].summary.best_eval_loss == 4.0
  # A job whose workdir stops short of num_steps is not finished: it runs (and resumes) again.
  longer = sweep.expand(GRID[:1], CONFIG, str(tmp_path), "g", shared={"num_steps": 5})
  longer[0].workdir = jobs[0].workdir
  assert sweep.run_jobs(longer, lambda j: "done")[0].status == "done"


def test_example_sweeps_expand(tmp_path):
  for spec, n in (("configs/sweeps/lr_batch.py", 9), ("configs/sweeps/lr_batch.py:smoke", 4),
                  ("configs/sweeps/d_schedule.py", 5)):
    jobs_list, name, config = sweep.load_sweep_file(spec)
    jobs = sweep.expand(jobs_list, config, str(tmp_path), name)
    assert len(jobs) == n and len({j.workdir for j in jobs}) == n


def test_dry_run_runs_nothing(tmp_path, capsys):
  rc = sweep.main(["--sweep=configs/sweeps/lr_batch.py:smoke", f"--root={tmp_path}", "--dry-run"])
  out = capsys.readouterr().out
  assert rc == 0 and out.count("[dry-run] ") == 4 and "--config.optim.learning_rate=0.003" in out
  assert not any(os.scandir(tmp_path))


SMALL = ["--set=model.num_layers=2", "--set=model.mem_layers=(1,)", "--set=model.hidden_size=32",
         "--set=model.intermediate_size=64", "--set=eval.num_batches=1"]


@pytest.mark.slow
def test_real_2x2_sweep_runs_then_skips(tmp_path):
  """4 jobs of the tiny config, 2 at a time: 4 workdirs with checkpoints, a 4-row table; a re-run skips all."""
  cmd = [sys.executable, "-m", "fot_jax.launch.sweep", "--sweep=configs/sweeps/lr_batch.py:smoke", f"--root={tmp_path}",
         "--parallel=2", *SMALL]
  first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  workdirs = sorted(p for p in (tmp_path / "lr_batch_smoke").iterdir() if p.is_dir())
  assert len(workdirs) == 4 and all((w / "checkpoints" / "4").is_dir() for w in workdirs)
  rows = [l for l in first.stdout.splitlines() if l.split()[:1] and l.split()[0].isdigit()]
  assert len(rows) == 4 and all(" done" in r for r in rows)
  assert all(len([x for x in r.split() if x.replace(".", "").isdigit() and "." in x]) >= 2 for r in rows)
  second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert second.returncode == 0 and second.stdout.count("skipped (done)") == 4
