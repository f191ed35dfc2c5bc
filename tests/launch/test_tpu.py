"""TPU launcher against a fake gcloud: the exact create/ship/run/stop commands, the remote scripts executed on
simulated workers, the same-commit check, per-worker failures, dirty trees, and dry runs."""

import os
import shlex
import shutil
import subprocess

import pytest

from fot_jax.train.errors import ConfigError
from fot_jax.launch import gitinfo, tpu
from fot_jax.launch.tpu_launcher import TpuLauncher
from fot_jax.launch.tpu_target import LaunchError, Target
from fot_jax.launch.shell import Runner
from tests.launch.fakes import FakeCloud

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "configs/experiments/tiny_fot.py"


def _git(repo, *args):
  subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
  path = str(tmp_path / "repo")
  os.makedirs(path)
  _git(path, "init", "-q")
  _git(path, "config", "user.email", "t@example.com")
  _git(path, "config", "user.name", "t")
  with open(os.path.join(path, "setup.py"), "w") as f:
    f.write("# package\n")
  # The launcher ships only what git tracks: the configs the tests launch must be committed.
  shutil.copytree(os.path.join(REPO_ROOT, "configs"), os.path.join(path, "configs"),
                  ignore=shutil.ignore_patterns("__pycache__"))
  _git(path, "add", "setup.py", "configs")
  _git(path, "commit", "-q", "-m", "init")
  return path


@pytest.fixture
def cloud(tmp_path, monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  fake = FakeCloud(str(tmp_path / "cloud"), workers=2)
  fake.env(monkeypatch)
  return fake


def _launcher(repo, cloud, **kw):
  target = Target("fot-v4", "us-central2-b", "proj", "v4-16", "tpu-ubuntu2204-base", **kw)
  return TpuLauncher(target, runner=Runner(echo=False), repo=repo, python=cloud.python)


def test_create_ship_run_stop_commands(repo, cloud):
  launcher = _launcher(repo, cloud)
  commit = gitinfo.code_commit(repo)
  launcher.create()
  assert launcher.ship() == commit
  overrides = {"optim.learning_rate": "1e-3", "fot.mix": "0:0,1:2,2:2,3:2", "data.task": "jsonl:/data/my docs/*.jsonl"}
  report = launcher.run_training(CONFIG, "gs://bucket/runs/a", overrides, job_name="exp1")
  assert report.ok, report.describe()
  assert sorted(w.worker for w in report.workers) == ["0", "1"]
  launcher.stop("exp1")
  launcher.delete()

  calls = cloud.calls()
  where = ["--zone=us-central2-b", "--project=proj"]
  assert calls[0] == ["compute", "tpus", "tpu-vm", "create", "fot-v4", *where, "--accelerator-type=v4-16",
                      "--version=tpu-ubuntu2204-base"]
  scp = calls[1]
  assert scp[:4] == ["compute", "tpus", "tpu-vm", "scp"] and scp[5] == f"fot-v4:fot_jax-{commit[:12]}.tar.gz"
  assert scp[-1] == "--worker=all"
  ssh = [c for c in calls if len(c) > 3 and c[3] == "ssh"]
  assert all(c[:5] == ["compute", "tpus", "tpu-vm", "ssh", "fot-v4"] and "--worker=all" in c for c in ssh)
  assert calls[-1] == ["compute", "tpus", "tpu-vm", "delete", "fot-v4", *where, "--quiet"]
  assert ["storage", "ls", "gs://bucket/runs/a/checkpoints/"] in calls

  # Every worker unpacked the same commit and ran the identical command, each override one argv word.
  want = ["-m", "fot_jax.train", f"--config={CONFIG}", "--workdir=gs://bucket/runs/a",
          "--config.optim.learning_rate=1e-3", "--config.fot.mix=0:0,1:2,2:2,3:2",
          "--config.data.task=jsonl:/data/my docs/*.jsonl"]
  for w in (0, 1):
    call = cloud.train_call(w)
    assert call["argv"] == want and call["commit"] == commit
    assert call["cwd"].endswith(f"worker_{w}/fot_jax/releases/{commit}")
    assert open(os.path.join(cloud.home(w), "fot_jax/logs/exp1.rc")).read().strip() == "0"
    assert "training on worker" in open(os.path.join(cloud.home(w), "fot_jax/logs/exp1.log")).read()
  # The run command's script quotes the override with a space: it is shlex-parseable into the same words.
  run_cmd = next(c for c in ssh if "fot_jax.train" in c[-1])[-1]
  assert shlex.quote("--config.data.task=jsonl:/data/my docs/*.jsonl") in run_cmd


def test_worker_failure_is_reported(repo, cloud, capsys):
  launcher = _launcher(repo, cloud)
  launcher.ship()
  cloud.configure(train_rc={"1": 3})
  report = launcher.run_training(CONFIG, "gs://bucket/runs/b", {}, job_name="fails")
  assert not report.ok
  assert [(w.worker, w.rc) for w in report.failed] == [("1", 3)]
  assert "worker 1 exited with 3" in report.describe()
  status = launcher.status("fails")
  assert {w.worker: w.rc for w in status.workers} == {"0": 0, "1": 3}


def test_commit_mismatch_refuses_to_start(repo, cloud):
  launcher = _launcher(repo, cloud)
  launcher.ship()
  with open(os.path.join(cloud.home(1), "fot_jax/current/COMMIT"), "w") as f:
    f.write("0123456789abcdef\n")
  with pytest.raises(LaunchError, match=r"worker 1 has 0123456789abcdef"):
    launcher.run_training(CONFIG, "gs://bucket/runs/c", {}, job_name="x")
  assert cloud.train_call(0) is None and cloud.train_call(1) is None  # nothing started anywhere
  # A worker that never received the code is named too.
  fresh = _launcher(repo, cloud)
  cloud.configure(workers=3)
  with pytest.raises(LaunchError, match="worker 2 has no shipped code"):
    fresh.verify()


def test_dirty_tree_is_refused(repo, cloud):
  with open(os.path.join(repo, "setup.py"), "a") as f:
    f.write("# local edit\n")
  with pytest.raises(gitinfo.GitError, match=r"dirty git tree.*setup.py"):
    _launcher(repo, cloud).ship()
  assert cloud.calls() == []
  rc = tpu.main(["ship", "--tpu=fot-v4", "--zone=z1", f"--repo={repo}"])
  assert rc == 2 and cloud.calls() == []
  # --allow_dirty ships the working tree as an unnamed commit, and workers agree on it.
  launcher = TpuLauncher(Target("fot-v4", "z1"), runner=Runner(echo=False), repo=repo,
                             python=cloud.python, allow_dirty=True)
  commit = launcher.ship()
  assert commit != gitinfo.repo_root(repo) and len(commit) == 40
  assert "local edit" in open(os.path.join(cloud.home(0), f"fot_jax/releases/{commit}/setup.py")).read()
  assert set(launcher.verify().values()) == {commit}


def test_override_typo_and_local_workdir_fail_before_any_gcloud_call(repo, cloud):
  launcher = _launcher(repo, cloud)
  with pytest.raises(Exception, match="optim.learning_rate"):
    launcher.run_training(CONFIG, "gs://b/r", {"optim.learnig_rate": "1e-3"})
  with pytest.raises(LaunchError, match="gs://"):
    launcher.run_training(CONFIG, "/tmp/run", {})
  assert cloud.calls() == []


def test_dry_run_prints_every_command_and_runs_none(repo, cloud, capsys):
  rc = tpu.main(["up", "--create", "--tpu=fot-v5", "--zone=z1", "--project=p", "--accelerator_type=v5litepod-16",
                 "--runtime_version=v2-alpha-tpuv5-lite", "--queued_resource=fot-qr", "--spot", f"--repo={repo}",
                 "--config", CONFIG, "--workdir=gs://b/run", "--set", "optim.learning_rate=1e-3", "--dry-run"])
  out = capsys.readouterr().out
  assert rc == 0 and cloud.calls() == []
  lines = [l for l in out.splitlines() if l.startswith("[dry-run] ")]
  assert lines[0].startswith("[dry-run] gcloud compute tpus queued-resources create fot-qr --node-id=fot-v5 "
                             "--zone=z1 --project=p --accelerator-type=v5litepod-16")
  assert "--spot" in lines[0]
  assert any(" tpu-vm scp " in l for l in lines) and any("pip install" in l for l in lines)
  assert any("--config.optim.learning_rate=1e-3" in l and "--worker=all" in l for l in lines)


def test_multislice_uses_queued_resource_ssh(repo, cloud):
  launcher = _launcher(repo, cloud, queued_resource="fot-qr", node_count=2)
  assert launcher.create_commands()[0][5:8] == ["fot-qr", "--node-count=2", "--node-prefix=fot-v4"]
  ssh = launcher.ssh_command("true")
  assert ssh[:5] == ["gcloud", "compute", "tpus", "queued-resources", "ssh"]
  assert "--node=all" in ssh and "--worker=all" in ssh


def test_up_relaunches_after_preemption(repo, cloud, capsys):
  launcher = _launcher(repo, cloud)
  cloud.configure(train_rc={"0": 1}, state="PREEMPTED", checkpoint_steps=[100, 200])
  report = launcher.up(CONFIG, "gs://b/run", {}, job_name="pre", create=False, max_restarts=1)
  assert not report.ok
  verbs = [c[3:5] for c in cloud.calls() if c[:3] == ["compute", "tpus", "tpu-vm"]]
  assert verbs.count(["delete", "fot-v4"]) == 1 and verbs.count(["create", "fot-v4"]) == 1
  out = capsys.readouterr().out
  assert "holds checkpoint step 200: training resumes from it" in out and "attempt 2 of 2" in out


def test_preflight_validates_values_for_the_target_before_any_gcloud_call(repo, cloud):
  launcher = _launcher(repo, cloud)  # v4-16: 8 devices
  with pytest.raises(ConfigError, match="config.data.batch_size: expected a multiple of"):
    launcher.run_training(CONFIG, "gs://b/r", {"data.batch_size": "18", "fot.d": "99"})
  with pytest.raises(ConfigError, match=r"data\*fsdp = 8"):  # valid on its own, not on 8 devices
    launcher.run_training(CONFIG, "gs://b/r", {"data.batch_size": "20"})
  assert cloud.calls() == []
  assert TpuLauncher(Target("t", "z", accelerator_type="v5litepod-16"), repo=repo).device_count() == 16


def test_preflight_refuses_files_git_does_not_track(repo, cloud, monkeypatch):
  monkeypatch.chdir(repo)  # relative paths mean the same locally and in the shipped release
  launcher = _launcher(repo, cloud)
  shutil.copy(os.path.join(repo, "configs/experiments/tiny_fot.py"), os.path.join(repo, "configs/mine.py"))
  with pytest.raises(LaunchError, match=r"git does not track --config 'configs/mine.py'"):
    launcher.run_training("configs/mine.py", "gs://b/r", {})
  with open(os.path.join(repo, "my.model"), "wb") as f:
    f.write(b"sentencepiece")
  with pytest.raises(LaunchError, match=r"git does not track data.vocab 'my.model'"):
    launcher.run_training(CONFIG, "gs://b/r", {"data.vocab": "my.model"})
  assert cloud.calls() == []
  _git(repo, "add", "my.model")
  _git(repo, "commit", "-q", "-m", "vocab")
  launcher.preflight(CONFIG, {"data.vocab": "my.model"})  # tracked: ships with the commit
