"""Checkpoint paths: relative local workdirs work (orbax itself needs absolute paths); URLs are left alone."""

import numpy as np

from fot_jax.model.config import preset
from fot_jax.model.params import init_params
from fot_jax.train import checkpoint as ckpt


def test_relative_workdir_round_trips(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = preset("tiny", num_layers=2, mem_layers=(1,))
  params = init_params(config, 0)
  ckpt.save_params_checkpoint("runs/rel", params, config)
  restored, restored_config, step = ckpt.load_params("runs/rel")
  assert restored_config == config and step == 0
  np.testing.assert_array_equal(np.asarray(restored["lm_head"]), np.asarray(params["lm_head"]))
  assert (tmp_path / "runs" / "rel" / "checkpoints" / "0").is_dir()


def test_checkpoint_dir_keeps_urls():
  assert ckpt.checkpoint_dir("gs://bucket/run") == "gs://bucket/run/checkpoints"
