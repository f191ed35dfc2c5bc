"""Passkey evaluation: golden prompts (Landmark format), teacher-forced scoring with oracle/degenerate models."""

import json
import os

import numpy as np
import pytest

from fot_jax.data import synthetic
from fot_jax.eval import passkey
from tests.eval.fakes import ByteVocab, FakeRunner, InductionRunner

LANDMARK_TASK = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
                 "I will quiz you about the important information there.")
LANDMARK_GARBAGE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."


def landmark_prompt(n_garbage_prefix: int, n_garbage_suffix: int, pass_key: int) -> str:
  """The Landmark-attention run_test.py construction (garbage cut by characters from one repeated string)."""
  garbage_inf = " ".join([LANDMARK_GARBAGE] * 200)
  return "\n".join([LANDMARK_TASK, garbage_inf[:n_garbage_prefix],
                    f"The pass key is {pass_key}. Remember it. {pass_key} is the pass key.",
                    garbage_inf[:n_garbage_suffix], "What is the pass key? The pass key is"])


@pytest.mark.parametrize("pre,suf", [(0, 0), (1, 0), (2, 7), (5, 5), (13, 3)])
def test_prompt_is_landmark_byte_for_byte_at_sentence_boundaries(pre, suf):
  filler = lambda n: " ".join(synthetic.PASSKEY_FILLER[i % 5] for i in range(n))  # noqa: E731
  ours = synthetic.passkey_text(4242, pre, suf)
  assert ours == landmark_prompt(len(filler(pre)), len(filler(suf)), 4242)


def test_golden_examples():
  """Pinned outputs of the seeded generator: a change here changes every reported passkey number."""
  for (seed, length, depth), (key, pre, suf, chars) in {
      (0, 1000, None): (18808, 34, 8, 999), (7, 5000, 0.25): (35878, 66, 197, 4982),
      (3, 400, 1.0): (43036, 8, 0, 392)}.items():
    e = synthetic.passkey_example(seed, length, depth)
    assert (e.key, e.prefix_sentences, e.suffix_sentences, len(e.prompt)) == (key, pre, suf, chars)
  assert synthetic.passkey_text(123, 2, 1) == (
      LANDMARK_TASK + "\nThe grass is green. The sky is blue.\nThe pass key is 123. Remember it. 123 is the pass "
      "key.\nThe grass is green.\nWhat is the pass key? The pass key is")


def test_case_tokens_fit_length_and_mark_the_answer():
  vocab = ByteVocab()
  case = passkey.make_case(vocab, 600, 0.5, seed=3)
  answer = case.tokens[case.answer_mask]
  assert vocab.decode(answer.tolist()) == f" {case.key}"
  assert case.tokens[0] == vocab.bos_id
  assert len(case.tokens) - len(answer) <= 600
  assert vocab.decode(case.tokens[~case.answer_mask][1:].tolist()).endswith("The pass key is")


def test_oracle_with_memory_solves_all_and_windowed_oracle_fails_far_keys():
  vocab = ByteVocab()
  cases = passkey.make_cases(vocab, [500, 900], [0.0, 0.5], samples=2, seed=1)
  rows = passkey.score_cases(InductionRunner(vocab.vocab_size, window=64), cases)
  assert all(r["correct"] for r in rows)
  summary = passkey.summarize(rows, [500, 900], [0.0, 0.5])
  assert summary["accuracy"] == [[1.0, 1.0], [1.0, 1.0]] and summary["accuracy_mean"] == 1.0
  # Same oracle but it only sees its last 128 tokens (no memory): the key line is out of reach.
  rows = passkey.score_cases(InductionRunner(vocab.vocab_size, window=64, lookback=128), cases)
  assert not any(r["correct"] for r in rows)


def test_uniform_model_scores_zero_with_chance_logprob():
  vocab = ByteVocab()
  cases = passkey.make_cases(vocab, [400], [0.5], samples=2, seed=0)
  rows = passkey.score_cases(FakeRunner(vocab.vocab_size), cases)
  assert not any(r["correct"] for r in rows)
  for r, c in zip(rows, cases):
    np.testing.assert_allclose(r["answer_logprob"], -c.answer_mask.sum() * np.log(vocab.vocab_size), rtol=1e-5)


def test_main_end_to_end_writes_json_and_figure(tiny_checkpoint, tmp_path, capsys):
  out = tmp_path / "pk.json"
  rc = passkey.main([f"--checkpoint={tiny_checkpoint}", f"--out={out}", "--lengths=280", "--depths=0,1",
                     "--samples=1", "--quiet"])
  assert rc == 0, capsys.readouterr().err
  result = json.loads(out.read_text())
  assert result["task"] == "passkey" and len(result["cases"]) == 2
  assert np.array(result["accuracy"]).shape == (1, 2)
  assert os.path.getsize(tmp_path / "pk.png") > 1000


def test_bad_flags_name_the_flag(tiny_checkpoint, tmp_path, capsys):
  rc = passkey.main([f"--checkpoint={tiny_checkpoint}", f"--out={tmp_path / 'x.json'}", "--depths=0,2"])
  assert rc == 2 and "--depths" in capsys.readouterr().err
  rc = passkey.main([f"--checkpoint={tiny_checkpoint}", f"--out={tmp_path / 'x.json'}", "--lengths=10"])
  assert rc == 2 and "--lengths" in capsys.readouterr().err
  rc = passkey.main([f"--checkpoint={tmp_path / 'nope'}", f"--out={tmp_path / 'x.json'}"])
  assert rc == 2 and "--checkpoint" in capsys.readouterr().err


def test_tasks_are_registered():
  from fot_jax import evaluate
  for task in ("perplexity", "passkey", "dict_lookup", "distraction", "generate"):
    assert evaluate.TASKS[task] == f"fot_jax.eval.{task}"
