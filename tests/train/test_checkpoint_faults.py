"""Checkpoint faults on resume: a damaged newest step falls back to the previous one (kept aside, not deleted), a
changed config or batch shape is a config difference (not damage), a full disk during a save is one line and keeps
the earlier steps, and unreadable steps are named by path and fault."""

import errno
import glob
import logging
import os
import shutil

import jax
import numpy as np
import pytest

from fot_jax.train import checkpoint as ckpt
from fot_jax.train import trainer
from fot_jax.train.errors import CheckpointConfigMismatch, CheckpointSaveError, UnreadableCheckpointError
from tests.train.common import tiny_config, typed, write_text_corpus


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(config factory, workdir of a finished 6-step run with steps 2, 4, 6, its params at 6)."""
  root = tmp_path_factory.mktemp("faults")
  task, data_dir = write_text_corpus(str(root / "text")), str(root / "data")

  def config(**changes):
    c = tiny_config(task, data_dir)
    c.mesh.shape = (1, 4, 2)
    for path, value in changes.items():
      node = c
      *parents, leaf = path.split(".")
      for p in parents:
        node = node[p]
      node[leaf] = value
    return c
  workdir = str(root / "run")
  trainer.train(typed(config()), workdir)
  return config, workdir, _params_at(workdir, 6)


def _params_at(workdir, step):
  params, _, _ = ckpt.load_params(workdir, step)
  return jax.tree.map(np.asarray, params)


def _copy(workdir, tmp_path, name):
  dest = str(tmp_path / name)
  shutil.copytree(workdir, dest)
  return dest


def _truncate_largest_state_file(workdir, step):
  files = [f for f in glob.glob(os.path.join(ckpt.step_dir(workdir, step), "state", "**"), recursive=True)
           if os.path.isfile(f)]
  biggest = max(files, key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(os.path.getsize(biggest) // 2)


def test_damaged_newest_step_falls_back_and_is_kept_aside(run, tmp_path, caplog):
  config, workdir, final = run
  copy = _copy(workdir, tmp_path, "truncated")
  _truncate_largest_state_file(copy, 6)
  with caplog.at_level(logging.WARNING, logger="fot_jax.train"):
    result = trainer.train(typed(config()), copy)
  assert result.step == 6
  assert "resumed from step 4, the newest readable one" in caplog.text
  assert "step 6 at" in caplog.text and "truncated" in caplog.text
  kept = os.path.join(copy, ckpt.UNREADABLE_SUBDIR, "6")
  assert os.path.isdir(os.path.join(kept, "state"))  # the damaged step is kept, out of checkpoints/
  assert ckpt.all_steps(copy) == [2, 4, 6]  # 6 retrained from 4
  jax.tree.map(np.testing.assert_array_equal, _params_at(copy, 6), final)  # exactly the uninterrupted run


@pytest.mark.parametrize("damage,problem", [
    (lambda step: os.remove(os.path.join(step, "state", "manifest.ocdbt")), "missing file state/manifest.ocdbt"),
    (lambda step: shutil.rmtree(os.path.join(step, "config")), "missing file config/metadata"),
    (lambda step: open(os.path.join(step, "state", "_METADATA"), "w").write("\0garbage"), "corrupt metadata"),
])
def test_unreadable_step_is_named_in_one_line(run, tmp_path, capsys, damage, problem):
  from fot_jax import export
  _, workdir, _ = run
  copy = _copy(workdir, tmp_path, "damaged")
  damage(ckpt.step_dir(copy, 6))
  with pytest.raises(UnreadableCheckpointError) as info:
    ckpt.load_params(copy)
  message = str(info.value)
  assert message.startswith(f"checkpoint step 6 at {ckpt.step_dir(copy, 6)} is unreadable: {problem}"), message
  assert "\n" not in message and "tensorstore_spec" not in message and len(message) < 600
  assert export.main([f"--workdir={copy}", f"--out={tmp_path / 'hf'}"]) == 2  # export names it the same way
  err = capsys.readouterr().err.strip()
  assert problem in err and len(err.splitlines()) == 1


def test_truncated_data_is_named(run, tmp_path):
  _, workdir, _ = run
  copy = _copy(workdir, tmp_path, "truncated_data")
  _truncate_largest_state_file(copy, 6)
  config, abstract, shardings = _layout(run[0]())
  with ckpt.make_manager(copy, read_only=True) as manager:
    with pytest.raises(UnreadableCheckpointError, match=r"step 6 .* unreadable: truncated or corrupt data file"):
      ckpt.restore_training(manager, copy, 6, ckpt.with_shardings(abstract, shardings))


def _layout(c):
  t = typed(c)
  tx, _ = t.optim.build(t.num_steps)
  abstract, shardings = trainer.state_layout(t.model, tx, t.mesh.build())
  return c, abstract, shardings


def test_no_readable_step_leaves_all_in_place(run, tmp_path):
  config, workdir, _ = run
  copy = _copy(workdir, tmp_path, "all_bad")
  for step in (2, 4, 6):
    os.remove(os.path.join(ckpt.step_dir(copy, step), "state", "manifest.ocdbt"))
  with pytest.raises(UnreadableCheckpointError, match="no step is readable .*step 6: missing file.*new --workdir"):
    trainer.train(typed(config(num_steps=8)), copy)
  assert ckpt.all_steps(copy) == [2, 4, 6] and not os.path.exists(os.path.join(copy, ckpt.UNREADABLE_SUBDIR))


@pytest.mark.parametrize("changes,named", [
    ({"model.num_layers": 2}, "model.num_layers: checkpoint 3, now 2"),
    ({"model.hidden_size": 64}, "model.hidden_size: checkpoint 32, now 64"),
    ({"optim.optimizer": "adafactor"}, "optim.optimizer: checkpoint 'adamw', now 'adafactor'"),
    ({"data.batch_size": 16}, "data.batch_size (batcher batch_size): checkpoint 8, now 16"),
])
def test_changed_config_is_a_config_difference_not_damage(run, tmp_path, changes, named):
  config, workdir, _ = run
  copy = _copy(workdir, tmp_path, "changed")
  with pytest.raises(CheckpointConfigMismatch) as info:
    trainer.train(typed(config(num_steps=8, **changes)), copy)
  message = str(info.value)
  assert named in message and f"--config.init_from={copy}" in message and "intact" in message, message
  assert "unreadable" not in message and "strict" not in message and "\n" not in message
  assert ckpt.all_steps(copy) == [2, 4, 6] and not os.path.exists(os.path.join(copy, ckpt.UNREADABLE_SUBDIR))


def test_disk_full_during_save_is_one_line_and_keeps_earlier_steps(run, tmp_path, monkeypatch):
  """A write of step 8 fails with ENOSPC (injected into orbax's JSON writer); steps 2-6 stay, a rerun resumes."""
  from orbax.checkpoint._src.handlers import json_checkpoint_handler as json_handler
  config, workdir, _ = run
  copy = _copy(workdir, tmp_path, "full")
  real = json_handler.JsonCheckpointHandler._save_fn

  async def full_disk(self, x, directory):
    if os.path.basename(os.path.dirname(str(directory))).startswith("8"):
      raise OSError(errno.ENOSPC, "No space left on device")
    return await real(self, x, directory)
  monkeypatch.setattr(json_handler.JsonCheckpointHandler, "_save_fn", full_disk)
  with pytest.raises(CheckpointSaveError) as info:
    trainer.train(typed(config(num_steps=8)), copy)
  message = str(info.value)
  assert "No space left on device" in message and "[2, 4, 6]" in message and "\n" not in message, message
  assert ckpt.all_steps(copy) == [2, 4, 6]
  monkeypatch.setattr(json_handler.JsonCheckpointHandler, "_save_fn", real)
  assert trainer.train(typed(config(num_steps=8)), copy).step == 8
  assert ckpt.all_steps(copy)[-1] == 8


CONFIG_FILE = """
from tests.train import test_trainer


def get_config():
  return test_trainer._config_for({task!r}, {data_dir!r})
"""


def test_train_command_prints_a_changed_batch_size_in_one_line(run, tmp_path):
  import subprocess
  import sys
  config, workdir, _ = run
  c = config()
  config_path = tmp_path / "cfg.py"
  config_path.write_text(CONFIG_FILE.format(task=c.data.task, data_dir=c.data.data_dir))
  copy = _copy(workdir, tmp_path, "cli")
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run([sys.executable, "-m", "fot_jax.train", f"--config={config_path}", f"--workdir={copy}",
                         "--config.data.batch_size=16"], cwd=repo, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("fot_jax.train: error: config differs from the checkpoint (step 6")
  assert "data.batch_size (batcher batch_size): checkpoint 8, now 16" in proc.stderr
