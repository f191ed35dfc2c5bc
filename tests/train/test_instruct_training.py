"""A tiny FoT model trains a few steps on the shipped instruction/chat sample, and a malformed line stops the
run before any step or checkpoint."""

import math
import os

from configs.experiments import instruct_fot
from fot_jax.data import instruct
from fot_jax.train import checkpoint as ckpt
from fot_jax.train import trainer
from fot_jax.train.config_validation import validate
from tests.train.common import tiny_config


def test_instruct_fot_config_validates():
  for variant in instruct_fot.VARIANTS:
    c = instruct_fot.get_config(variant)
    validate(c, num_devices=8)
    assert c.data.task.startswith("instruct:") and c.fot.k == 2


def test_tiny_training_run_on_instruction_data(tmp_path):
  c = tiny_config(instruct_fot.get_config("quick").data.task, str(tmp_path / "data"))
  c.num_steps = 3
  result = trainer.train(c, str(tmp_path / "work"))
  assert result.step == 3 and result.stopped == "finished"
  losses = [h["loss"] for h in result.history if "loss" in h]
  assert len(losses) == 3 and all(math.isfinite(x) and x > 0 for x in losses)


def test_a_malformed_line_stops_training_before_any_step(tmp_path):
  good = '{"prompt": "a", "completion": "b"}\n'
  (tmp_path / "train.jsonl").write_text(good * 20 + '{"prompt": "a", "completion": 7}\n')
  c = tiny_config("instruct:" + str(tmp_path / "{split}.jsonl"), str(tmp_path / "data"))
  workdir = str(tmp_path / "work")
  try:
    trainer.train(c, workdir)
  except instruct.InstructDataError as e:
    assert str(e).startswith(f"{tmp_path / 'train.jsonl'}:21: field 'completion'")
  else:
    raise AssertionError("training started on a malformed instruction file")
  assert ckpt.all_steps(workdir) == [] and not os.path.exists(os.path.join(workdir, "metrics.jsonl"))
