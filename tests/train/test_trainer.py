"""End-to-end trainer tests on 8 fake CPU devices: a short run, resume, restore onto other meshes, NaN stop,
half-written and corrupted checkpoints."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.crossbatch import released_plan
from fot_jax.train import checkpoint as ckpt
from fot_jax.train import step as step_lib, trainer
from fot_jax.train.errors import UnreadableCheckpointError
from fot_jax.train.sharding import batch_sharding, make_mesh
from tests.train.common import tiny_config, typed, write_text_corpus


@pytest.fixture(scope="module", autouse=True)
def corpus(tmp_path_factory):
  global TASK, DATA_DIR
  root = tmp_path_factory.mktemp("corpus")
  TASK, DATA_DIR = write_text_corpus(str(root / "text")), str(root / "data")
  return TASK


def _config(**kw):
  c = tiny_config(TASK, DATA_DIR)
  c.mesh.shape = (1, 4, 2)  # fsdp and tensor axes both in use
  c.fot.d = 2
  for key, value in kw.items():
    setattr(c, key, value)
  return c


def _params(workdir, mesh=None, step=None):
  c = _config()
  t = typed(c)
  model = t.model
  tx, _ = t.optim.build(t.num_steps)
  mesh = mesh or t.mesh.build()
  abstract, shardings = trainer.state_layout(model, tx, mesh)
  with ckpt.make_manager(workdir, read_only=True) as manager:
    step = manager.latest_step() if step is None else step
    state, data_state, stored = ckpt.restore_training(manager, workdir, step, ckpt.with_shardings(abstract,
                                                                                                 shardings))
  return state, data_state, stored, model


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """6 steps without interruption (checkpoints at 2, 4, 6)."""
  workdir = str(tmp_path_factory.mktemp("straight"))
  result = trainer.train(typed(_config()), workdir)
  return workdir, result


def test_short_run_trains_and_checkpoints(straight):
  workdir, result = straight
  assert result.step == 6 and result.stopped == "finished"
  losses = [h["loss"] for h in result.history if "loss" in h]
  assert losses[-1] < losses[0]
  assert ckpt.all_steps(workdir) == [2, 4, 6]
  _, config = ckpt.restore_config(workdir)
  assert config["model"]["mem_layers"] == [1] and config["fot"]["k"] == 2
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert {"loss", "accuracy", "grad_norm", "learning_rate", "tokens_per_s", "mfu"} <= set(lines[-1])


def test_resume_is_exact(straight, tmp_path):
  """3 steps, stop, rerun the same config to 6: identical params and metrics (bitwise on CPU)."""
  workdir, result = straight
  resumed = str(tmp_path / "resumed")
  first = trainer.train(typed(_config(num_steps=3)), resumed)
  assert first.step == 3 and ckpt.all_steps(resumed)[-1] == 3
  second = trainer.train(typed(_config()), resumed)
  assert second.step == 6
  want = {h["step"]: h["loss"] for h in result.history if "loss" in h}
  got = {h["step"]: h["loss"] for h in first.history + second.history if "loss" in h}
  assert got == want
  a, data_a, _, _ = _params(workdir)
  b, data_b, _, _ = _params(resumed)
  assert data_a == data_b
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_restore_onto_other_meshes(straight):
  """A checkpoint written on (1,4,2) restores onto 1 device and onto (2,4,1) with equal params and loss."""
  workdir, _ = straight
  c = _config()
  batch = {k: np.asarray(v) for k, v in _fixed_batch(c).items()}
  plan = released_plan(c.data.batch_size, c.fot.k, 2)
  losses = []
  ref = None
  for shape, devices in (((1, 4, 2), jax.devices()), ((1, 1, 1), jax.devices()[:1]), ((2, 4, 1), jax.devices())):
    mesh = make_mesh(shape, devices=devices)
    state, _, _, model = _params(workdir, mesh)
    leaf = state["params"]["layers"]["q_proj"]
    assert leaf.sharding.mesh.shape == mesh.shape
    params = jax.device_get(state["params"])
    if ref is None:
      ref = params
    jax.tree.map(np.testing.assert_array_equal, ref, params)
    gb = jax.device_put(batch, batch_sharding(mesh))
    ce, _ = jax.jit(lambda p, b: step_lib.summed_loss(p, b, plan.visible, model))(state["params"], gb)
    losses.append(float(ce))
  np.testing.assert_allclose(losses, losses[0], rtol=1e-5)


def _fixed_batch(c):
  from fot_jax.data import pipeline
  from fot_jax.data.vocab import build_vocabulary
  batcher = pipeline.make_batcher(c.data.task, "validation", build_vocabulary("byte"), c.data.batch_size,
                                  c.data.seq_len, k=c.fot.k, data_dir=c.data.data_dir)
  return batcher.next_batch()


def test_half_written_checkpoint_is_ignored(straight, tmp_path):
  workdir, _ = straight
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  tmp = os.path.join(ckpt.checkpoint_dir(copy), "8.orbax-checkpoint-tmp")
  os.makedirs(os.path.join(tmp, "state"))
  with open(os.path.join(tmp, "state", "garbage"), "w") as f:
    f.write("half written")
  assert ckpt.latest_step(copy) == 6 and ckpt.all_steps(copy) == [2, 4, 6]
  result = trainer.train(typed(_config(num_steps=6)), copy)  # resumes at 6: nothing to do, no error
  assert result.step == 6


def test_corrupted_checkpoint_fails_clearly_and_is_kept(straight, tmp_path):
  workdir, _ = straight
  copy = str(tmp_path / "corrupt")
  shutil.copytree(workdir, copy)
  state_dir = os.path.join(ckpt.checkpoint_dir(copy), "6", "state")
  for root, _, files in os.walk(state_dir):
    for name in files:
      if name != "_CHECKPOINT_METADATA":
        with open(os.path.join(root, name), "wb") as f:
          f.write(b"\0garbage")
  with pytest.raises(UnreadableCheckpointError, match=r"checkpoint step 6 at .*/6 is unreadable: corrupt metadata"):
    _params(copy)
  assert ckpt.all_steps(copy) == [2, 4, 6]  # training falls back to step 4: tests/train/test_checkpoint_faults.py


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  real = step_lib.make_train_step

  def poisoned(*args, **kwargs):
    fn = real(*args, **kwargs)

    def step(state, batch, visible):
      new_state, m = fn(state, batch, visible)
      m["loss"] = jnp.where(state["step"] >= 4, jnp.nan, m["loss"])  # the 5th step "diverges"
      return new_state, m
    return step
  monkeypatch.setattr(step_lib, "make_train_step", poisoned)
  workdir = str(tmp_path / "nan")
  c = _config()
  c.fot.d_schedule, c.fot.d, c.fot.d_after, c.fot.switch_step = "switch", 1, 2, 3  # two compiled steps
  with pytest.raises(trainer.TrainingError, match="non-finite loss at step 5.*last good checkpoint is step 4"):
    trainer.train(typed(c), workdir)
  assert ckpt.all_steps(workdir) == [2, 4]
  state, _, _, _ = _params(workdir)
  assert int(state["step"]) == 4


def test_sigterm_saves_the_current_step_and_stops(tmp_path, monkeypatch):
  import signal
  from fot_jax.train.config import CrossbatchConfig
  real = CrossbatchConfig.choice_at

  def choice_at(fot, step, seed=0):
    if step == 2:  # during the 3rd step: a preemption notice arrives
      os.kill(os.getpid(), signal.SIGTERM)
    return real(fot, step, seed)
  monkeypatch.setattr(CrossbatchConfig, "choice_at", choice_at)
  workdir = str(tmp_path / "preempted")
  result = trainer.train(typed(_config()), workdir)
  assert result.stopped == "preempted" and result.step == 3
  assert ckpt.all_steps(workdir) == [2, 3]  # 3 is off the every-2 interval: saved because of the signal


def test_init_from_loads_params_only(straight, tmp_path):
  workdir, result = straight
  fine = trainer.train(typed(_config(num_steps=1, init_from=workdir)), str(tmp_path / "fine"))
  assert fine.history[0]["loss"] < result.history[0]["loss"] - 0.3  # starts from the trained params
  state, _, _, _ = _params(str(tmp_path / "fine"))
  assert int(state["step"]) == 1  # a fresh optimizer and step count


CONFIG_FILE = """
from tests.train import test_trainer
from tests.train.common import tiny_config


def get_config():
  return test_trainer._config_for({task!r}, {data_dir!r})
"""


def _config_for(task, data_dir):
  global TASK, DATA_DIR
  TASK, DATA_DIR = task, data_dir
  return _config()


def _run_cli(config_path, workdir, *extra, wait=True):
  import subprocess
  import sys
  cmd = [sys.executable, "-m", "fot_jax.train", f"--config={config_path}", f"--workdir={workdir}", *extra]
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  if not wait:
    return proc
  out, _ = proc.communicate(timeout=300)
  return proc.returncode, out


def test_sigkill_then_same_command_resumes_exactly(straight, tmp_path):
  """A real process killed with SIGKILL after a random step; the same command finishes the run bitwise equal."""
  import signal
  import time
  workdir, result = straight
  config_path = tmp_path / "cfg.py"
  config_path.write_text(CONFIG_FILE.format(task=TASK, data_dir=DATA_DIR))
  resumed = str(tmp_path / "killed")
  kill_after = int(np.random.default_rng().integers(2, 4))  # killed after step 2..3 (a save may be in flight)
  proc = _run_cli(str(config_path), resumed, wait=False)
  metrics_path = os.path.join(resumed, "metrics.jsonl")
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    done = sum(1 for _ in open(metrics_path)) if os.path.exists(metrics_path) else 0
    if done >= kill_after and os.path.isdir(os.path.join(ckpt.checkpoint_dir(resumed), "2")):
      break
    time.sleep(0.02)
  assert proc.poll() is None, "the run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert ckpt.all_steps(resumed), "no checkpoint was written before the kill"
  code, out = _run_cli(str(config_path), resumed)
  assert code == 0, out
  a, _, _, _ = _params(workdir)
  b, _, _, _ = _params(resumed)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
  want = {h["step"]: h["loss"] for h in result.history if "loss" in h}
  lines = [json.loads(l) for l in open(metrics_path)]
  got = {l["step"]: l["loss"] for l in lines if l["kind"] == "train"}  # the resumed steps overwrite killed ones
  assert got == want


def test_bad_input_fails_clearly_without_touching_checkpoints(straight, tmp_path):
  workdir, _ = straight
  before = ckpt.all_steps(workdir)
  config_path = tmp_path / "cfg.py"
  config_path.write_text(CONFIG_FILE.format(task=TASK, data_dir=DATA_DIR))
  code, out = _run_cli(str(config_path), workdir, "--config.model.no_such_field=1")
  assert code != 0 and "no_such_field" in out
  code, out = _run_cli(str(config_path), workdir, "--config.mesh.shape=(3,1,1)")
  assert code == 2 and "error: config.mesh.shape" in out, out
  with pytest.raises(trainer.TrainingError, match="not writable"):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    trainer.train(typed(_config()), str(blocker / "sub"))
  assert ckpt.all_steps(workdir) == before


@pytest.mark.slow
def test_two_processes_train_and_checkpoint_together(straight, tmp_path):
  """2 local processes x 4 CPU devices (gloo collectives) train one run; one process restores its checkpoint."""
  import socket
  import subprocess
  import sys
  workdir, result = straight
  config_path = tmp_path / "cfg.py"
  config_path.write_text(CONFIG_FILE.format(task=TASK, data_dir=DATA_DIR))
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  shared = str(tmp_path / "two")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
             JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo")
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  procs = [subprocess.Popen(
      [sys.executable, "-m", "fot_jax.train", f"--config={config_path}", f"--workdir={shared}",
       f"--config.distributed.coordinator_address=localhost:{port}", "--config.distributed.num_processes=2",
       f"--config.distributed.process_id={i}", "--config.distributed.initialization_timeout=120"],
      cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = [p.communicate(timeout=400)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
  assert ckpt.all_steps(shared) == [2, 4, 6]
  lines = [json.loads(l) for l in open(os.path.join(shared, "metrics.jsonl"))]  # process 0 only
  assert [l["step"] for l in lines] == [1, 2, 3, 4, 5, 6]
  state, data_state, _, _ = _params(shared)  # restored in this single 8-device process
  ref, ref_data, _, _ = _params(workdir)
  assert data_state == ref_data and int(state["step"]) == 6
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-3, atol=1e-5),
               state["params"], ref["params"])
