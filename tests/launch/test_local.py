"""Local launcher: commands and environments per process, a real 2-process run of the tiny config producing
one checkpoint, and a killed process ending the whole group with a message naming it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from fot_jax.launch import local, results

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "configs/experiments/tiny_fot.py"
SMALL = {"num_steps": 3, "checkpoint.every_steps": 3, "eval.every_steps": 3, "eval.num_batches": 1,
         "log.every_steps": 1, "log.tensorboard": False, "model.num_layers": 2, "model.mem_layers": (1,),
         "model.hidden_size": 32, "model.intermediate_size": 64}


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
  monkeypatch.chdir(REPO_ROOT)


def test_commands_and_environment():
  cmds = local.process_commands(CONFIG, "/w", {"optim.learning_rate": 1e-3}, 2, 1234)
  assert cmds[0][1:5] == ["-m", "fot_jax.train", f"--config={CONFIG}", "--workdir=/w"]
  assert cmds[0][:-1] == cmds[1][:-1]  # identical but for the process id
  assert cmds[1][-3:] == ["--config.distributed.coordinator_address=localhost:1234",
                          "--config.distributed.num_processes=2", "--config.distributed.process_id=1"]
  env = local.process_env(3, 1, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_foo=1"})
  assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_force_host_platform_device_count=3"
  assert local.process_commands(CONFIG, "/w", {}, 1, 1)[0][-1] == "--workdir=/w"  # one process: no coordinator


def test_typo_fails_before_start(tmp_path):
  with pytest.raises(Exception, match="did you mean 'num_steps'"):
    local.run_local(CONFIG, str(tmp_path / "w"), {"num_step": 3})
  assert not (tmp_path / "w").exists()


def test_bad_value_fails_before_start_naming_the_field(tmp_path, capsys):
  argv = [f"--config={CONFIG}", f"--workdir={tmp_path / 'w'}", "--set=optim.learning_rate=-1.0", "--quiet"]
  assert local.main(argv) == 2
  err = capsys.readouterr()
  assert "config.optim.learning_rate: expected a positive number, found -1.0" in err.err
  assert "started process" not in err.out and not (tmp_path / "w").exists()


def test_killed_process_ends_the_group_and_is_named(tmp_path):
  workdir = str(tmp_path / "w")
  cmd = [sys.executable, "-m", "fot_jax.launch.local", f"--config={CONFIG}", f"--workdir={workdir}",
         "--num_processes=2", "--devices_per_process=2", "--set=num_steps=1000", "--quiet"]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  pids = {}
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if line.startswith("started process "):
      pids[int(line.split()[2])] = int(line.split("(pid ")[1].split(")")[0])
    if len(pids) == 2:
      break
  assert len(pids) == 2, "".join(lines)
  time.sleep(1.0)
  os.kill(pids[1], signal.SIGKILL)  # a process this test started (through the launcher)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == 1
  assert "job failed: process 1 (pid %d) was killed by SIGKILL" % pids[1] in out
  assert "stopped the other processes: 0" in out
  for pid in pids.values():  # nothing is left behind
    with pytest.raises(ProcessLookupError):
      os.kill(pid, 0)


def test_two_processes_train_and_write_one_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  result = local.run_local(CONFIG, workdir, SMALL, num_processes=2, devices_per_process=4, echo=False,
                           timeout_s=600)
  assert result.ok, result.message
  assert results.checkpoint_steps(workdir) == [3]
  assert sorted(os.listdir(os.path.join(workdir, "logs"))) == ["process_0.log", "process_1.log"]
  log0 = open(os.path.join(workdir, "logs", "process_0.log")).read()
  assert "over 8 devices (2 processes)" in log0 and "done: finished at step 3" in log0
  summary = results.summarize(workdir)
  assert summary.last_step == 3 and summary.final_train_loss is not None and summary.best_eval_loss is not None
