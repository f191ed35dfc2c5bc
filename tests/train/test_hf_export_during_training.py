"""checkpoint.export_hf_every: a tiny run writes Hugging Face folders (with a model card) that load as
LlamaForCausalLM with fot_jax's short-context logits; a failed export is reported and training goes on."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.transformer import forward
from fot_jax.train import checkpoint as ckpt
from fot_jax.train import hf_export, trainer
from fot_jax.train.errors import ConfigError
from tests.train.common import tiny_config, typed

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_training_run_exports_folders_that_load_as_llama(tmp_path):
  c = tiny_config("dict_lookup", str(tmp_path / "data"))
  c.num_steps = 4
  c.checkpoint.export_hf_every = 2
  workdir = str(tmp_path / "work")
  assert trainer.train(typed(c), workdir).step == 4
  assert sorted(os.listdir(os.path.join(workdir, hf_export.EXPORT_SUBDIR))) == ["step_2", "step_4"]
  toks = np.random.RandomState(0).randint(0, c.model.vocab_size, (2, 24))
  for step in (2, 4):
    folder = hf_export.export_dir(workdir, step)
    params, config, _ = ckpt.load_params(workdir, step)
    ours = np.asarray(forward(params, jnp.asarray(toks), config))
    llama = transformers.LlamaForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
      theirs = llama(torch.tensor(toks)).logits.float().numpy()
    assert np.abs(ours - theirs).max() <= 1e-4
    card = open(os.path.join(folder, "README.md")).read()
    assert f"| Training tokens seen | {step * 8 * 32:,} |" in card and "| Memory layers | [1] |" in card
    assert "trust_remote_code=True" in card and "LlamaForCausalLM.from_pretrained" in card


def test_a_failed_export_is_reported_and_does_not_raise(tmp_path, monkeypatch, capsys):
  def broken(*args, **kwargs):
    raise OSError("disk full")
  monkeypatch.setattr("fot_jax.export.write_export", broken)
  exporter = hf_export.PeriodicExporter(str(tmp_path), 3, None, {}, is_main=True)
  exporter.maybe_export(2, {"w": np.zeros(2)})  # not a multiple of 3: nothing happens
  exporter.maybe_export(3, {"w": np.zeros(2)})
  exporter.wait()
  assert len(exporter.failures) == 1 and "disk full" in exporter.failures[0]
  assert "export of step 3" in capsys.readouterr().err
  assert not os.path.exists(hf_export.export_dir(str(tmp_path), 3))


def test_export_hf_every_is_validated():
  c = tiny_config()
  c.checkpoint.export_hf_every = -1
  with pytest.raises(ConfigError, match="checkpoint.export_hf_every: expected a non-negative integer"):
    typed(c, num_devices=1)
  c.checkpoint.export_hf_every = 5
  c.model.mem_gate = True
  with pytest.raises(ConfigError, match="checkpoint.export_hf_every: expected 0 for a model with no Hugging Face"):
    typed(c, num_devices=1)
