"""A tiny FoT model trains a few steps on the shipped instruction/chat sample (with a Hugging Face BPE
vocabulary, then exports it), and a malformed line stops the run before any step or checkpoint."""

import math
import os

import pytest

from fot_jax.configs.experiments import instruct_fot
from fot_jax import export
from fot_jax.data import instruct
from fot_jax.eval.common import stored_vocab_name
from fot_jax.train import checkpoint as ckpt
from fot_jax.train import trainer
from tests.data.hf_bpe import train_bpe
from tests.train.common import tiny_config, typed


def test_instruct_fot_config_validates():
  for variant in instruct_fot.VARIANTS:
    c = instruct_fot.get_config(variant)
    typed(c, num_devices=8)
    assert c.data.task.startswith("instruct:") and c.fot.k == 2
  with pytest.raises(ValueError, match="unknown variant"):
    instruct_fot.get_config("nope")


def test_tiny_training_run_on_instruction_data_with_an_hf_vocabulary_then_export(tmp_path):
  """A few steps on the shipped sample with a BPE tokenizer trained here; the export carries its files."""
  bpe = train_bpe(tmp_path / "bpe")
  c = tiny_config(instruct_fot.get_config("quick").data.task, str(tmp_path / "data"), vocab=f"hf:{bpe}")
  c.model.vocab_size = 300
  c.num_steps = 3
  workdir = str(tmp_path / "work")
  result = trainer.train(typed(c), workdir)
  assert result.step == 3 and result.stopped == "finished"
  losses = [h["loss"] for h in result.history if "loss" in h]
  assert len(losses) == 3 and all(math.isfinite(x) and x > 0 for x in losses)
  _, run_config = ckpt.restore_config(workdir)
  assert run_config["data"]["hf_tokenizer"] == os.path.join(bpe, "tokenizer.json")
  assert stored_vocab_name(workdir) == f"hf:{os.path.join(bpe, 'tokenizer.json')}"  # evaluation finds it
  written = export.export(workdir, str(tmp_path / "hf"))
  assert {"tokenizer.json", "tokenizer_config.json"} <= set(written)
  with open(tmp_path / "hf" / "tokenizer.json") as f, open(os.path.join(bpe, "tokenizer.json")) as g:
    assert f.read() == g.read()


def test_a_malformed_line_stops_training_before_any_step(tmp_path):
  good = '{"prompt": "a", "completion": "b"}\n'
  (tmp_path / "train.jsonl").write_text(good * 20 + '{"prompt": "a", "completion": 7}\n')
  c = tiny_config("instruct:" + str(tmp_path / "{split}.jsonl"), str(tmp_path / "data"))
  workdir = str(tmp_path / "work")
  with pytest.raises(trainer.TrainingError) as e:  # the CLI prints it as one line and exits 2
    trainer.train(typed(c), workdir)
  assert str(e.value).startswith(f"{tmp_path / 'train.jsonl'}:21: field 'completion'")
  assert isinstance(e.value.__cause__, instruct.InstructDataError)
  assert ckpt.all_steps(workdir) == [] and not os.path.exists(os.path.join(workdir, "metrics.jsonl"))
