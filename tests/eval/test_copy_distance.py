"""copy_distance: the needle layout, an oracle that remembers everything (>= 90%), a model with a short window
and a guessing one (they lose the copy), and the command on a tiny checkpoint."""

import json

import numpy as np

from fot_jax.eval import copy_distance
from tests.eval.fakes import InductionRunner, RandomRunner


def test_needle_layout_and_alignment():
  assert copy_distance.aligned_distance(0, 32, 32) == 0
  assert copy_distance.aligned_distance(100, 32, 32) == 128  # 32 + 128 = 5 windows
  assert copy_distance.aligned_distance(5, 16, 20) == 12  # 20 + 12 = 2 windows
  tokens, masks = copy_distance.build_inputs(num_docs=3, distance=64, segment=8, symbols=16, seed=0)
  assert tokens.shape == (3, 1 + 8 + 64 + 8) and (tokens[:, 0] == 1).all()
  np.testing.assert_array_equal(tokens[:, 1:9], tokens[:, -8:])
  assert 3 <= tokens[:, 1:].min() and tokens[:, 1:].max() < 3 + 16
  assert masks.sum(1).tolist() == [7, 7, 7] and masks[:, -7:].all()
  again, _ = copy_distance.build_inputs(num_docs=3, distance=64, segment=8, symbols=16, seed=0)
  np.testing.assert_array_equal(again, tokens)
  other, _ = copy_distance.build_inputs(num_docs=3, distance=64, segment=8, symbols=16, seed=1)
  assert not np.array_equal(other, tokens)


def test_oracle_copies_and_windowed_or_guessing_models_do_not():
  tokens, masks = copy_distance.build_inputs(num_docs=4, distance=96, segment=16, symbols=64, seed=0)
  # The oracle copies once its suffix reaches back into the copy; its first guesses can match the filler.
  oracle = copy_distance.score(lambda b: InductionRunner(80, batch=b, max_suffix=12), tokens, masks, batch_size=2)
  assert oracle["accuracy"] >= 0.9 and oracle["documents"] == 4
  # A model that sees only its last 8 tokens: inside the second copy it can match at most 7 of its tokens, and
  # a 64-symbol filler makes such short suffixes ambiguous; it must lose most of the copy.
  windowed = copy_distance.score(lambda b: InductionRunner(80, batch=b, lookback=8), tokens, masks, batch_size=4)
  assert windowed["accuracy"] < 0.5 and windowed["exact"] == 0.0
  guess = copy_distance.score(lambda b: RandomRunner(80, 3, 67, batch=b), tokens, masks, batch_size=4)
  assert guess["accuracy"] < 0.15 and guess["exact"] == 0.0  # chance 1/64 over 60 tokens


def test_main_writes_result_and_figure_and_rejects_bad_flags(tiny_checkpoint, tmp_path, capsys):
  out = tmp_path / "c.json"
  rc = copy_distance.main([f"--checkpoint={tiny_checkpoint}", f"--out={out}", "--distances=0,40", "--num_docs=2",
                           "--batch_size=2", "--quiet"])
  assert rc == 0, capsys.readouterr().err
  res = json.loads(out.read_text())
  assert res["distances"] == [0, 64] and res["segment"] == 32 and (tmp_path / "c.png").exists()
  assert all(0.0 <= a <= 1.0 for a in res["accuracy"])
  for flag, match in (("--distances=-5", "--distances"), ("--symbols=1", "--symbols"), ("--segment=1", "--segment")):
    rc = copy_distance.main([f"--checkpoint={tiny_checkpoint}", f"--out={tmp_path / 'x.json'}", flag, "--quiet"])
    assert rc == 2 and match in capsys.readouterr().err
  assert not (tmp_path / "x.json").exists()
