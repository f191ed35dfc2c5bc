"""Passkey evaluation: golden prompts (Landmark format), teacher-forced scoring with oracle/degenerate models."""

import json
import os

import numpy as np
import pytest

from fot_jax.data import synthetic
from fot_jax.eval import passkey
from tests.eval.fakes import ByteVocab, FakeRunner, InductionRunner, RandomRunner

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
  assert result["task"] == "passkey" and result["mode"] == "depth_grid" and len(result["cases"]) == 2
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


# ---- landmark prompts (the default) -------------------------------------------------------------------------------
class SpaceVocab:
  """A SentencePiece-like toy: a dummy prefix, every space is '▁', pieces are maximal '▁'-runs plus the word
  after them. So encode(" 15338") alone is ['▁▁15338'] while after "is" the text has '▁15338' (as stdlib_sp2000
  and LLaMA's vocabulary, which also lack whitespace collapsing)."""

  vocab_size = 1000
  bos_id, eos_id = 1, 2

  def __init__(self):
    self.ids = {}

  def encode(self, text):
    import re
    pieces = re.findall(r"▁*[^▁]+|▁+", "▁" + text.replace(" ", "▁"))
    return [self.ids.setdefault(p, 3 + len(self.ids)) for p in pieces]


class PairVocab:
  """Pairs of characters: where a token boundary falls depends on what precedes it."""

  vocab_size, bos_id, eos_id = 70000, 1, 2

  def encode(self, text):
    return [3 + ord(text[i]) * 256 + (ord(text[i + 1]) if i + 1 < len(text) else 0) for i in range(0, len(text), 2)]


def test_landmark_case_is_the_authors_prompt_bos_and_answer():
  vocab = ByteVocab()
  case = passkey.landmark_case(vocab, 30000, 555)
  text, key = synthetic.landmark_prompt(30000, 555)
  assert (case.key, case.n_garbage, case.seed, case.characters, case.length) == (15338, 30000, 555, 30247, 30000)
  assert case.depth == 4782 / 30000
  assert case.tokens[0] == vocab.bos_id
  assert vocab.decode(case.tokens[1:][~case.answer_mask[1:]].tolist()) == text
  assert vocab.decode(case.tokens[case.answer_mask].tolist()) == " 15338"
  assert case.answer_mask[-5 - 1:].all() and case.answer_mask.sum() == 6
  assert case.info() == {"length": 30000, "n_garbage": 30000, "seed": 555, "key": 15338, "depth": 4782 / 30000,
                         "characters": 30247, "tokens": 30248, "answer_tokens": 6}


def test_answer_is_tokenized_in_context():
  vocab = SpaceVocab()
  case = passkey.landmark_case(vocab, 50, 3)
  key = synthetic.landmark_prompt(50, 3)[1]
  prompt_ids = vocab.encode(synthetic.landmark_prompt(50, 3)[0])
  assert case.tokens[case.answer_mask].tolist() == [vocab.ids["▁" + key]]  # not encode(" key") = ['▁▁key']
  assert vocab.encode(" " + key) == [vocab.ids["▁▁" + key]]
  assert case.tokens[1:len(prompt_ids) + 1].tolist() == prompt_ids
  with pytest.raises(ValueError, match="tokenizes the prompt differently"):
    passkey.answer_tokens(PairVocab(), "The pass key is", PairVocab().encode("The pass key is"), 12345)


def test_n_garbage_for_tokens_hits_the_target():
  vocab = ByteVocab()
  fixed, per_char = passkey.landmark_token_model(vocab)
  assert (fixed, per_char) == (1 + 148 + 4 + 58 + 37, 1.0)  # BOS + the prompt around a 5-digit key
  for target in (300, 512, 4096, 32768):
    n = passkey.n_garbage_for_tokens(vocab, target)
    for case in passkey.landmark_cases(vocab, [n], range(6), [target]):
      prompt_tokens = case.info()["tokens"]
      assert prompt_tokens == target - 2 * (5 - len(str(case.key)))  # exact for 5-digit keys
  with pytest.raises(ValueError, match="outside what the authors' prompt reaches"):
    passkey.n_garbage_for_tokens(vocab, 200)
  with pytest.raises(ValueError, match=r"about 249\.\.450247 tokens"):
    passkey.n_garbage_for_tokens(vocab, 500_000)


def test_landmark_oracle_solves_all_and_memoryless_oracle_misses_far_keys():
  vocab = ByteVocab()
  cases = passkey.landmark_cases(vocab, [200, 400], range(5))
  rows = passkey.score_cases(InductionRunner(vocab.vocab_size, window=64), cases)
  assert all(r["correct"] and r["answer_token_accuracy"] == 1.0 for r in rows)
  summary = passkey.summarize(rows, [200, 400])
  assert summary["accuracy_by_length"] == [1.0, 1.0] and summary["accuracy_mean"] == 1.0
  chars = [200 + 247 - 2 * (5 - len(str(c.key))) for c in cases[:5]]
  assert summary["mean_characters_by_length"] == [np.mean(chars), np.mean(chars) + 200]
  # Without memory (it sees its last 128 tokens) the key line is out of sight once ~70 filler characters follow
  # it (7 of these 10 prompts): those all fail, and accuracy is at most the share of the others.
  rows = passkey.score_cases(InductionRunner(vocab.vocab_size, window=64, lookback=128), cases)
  far = [r for r in rows if r["n_garbage"] * (1 - r["depth"]) > 70]
  assert len(far) == 7 and not any(r["correct"] for r in far)
  assert passkey.summarize(rows, [200, 400])["accuracy_mean"] <= 1 - len(far) / len(rows)
  # A model guessing digits never gets a 6-token answer.
  rows = passkey.score_cases(RandomRunner(vocab.vocab_size, 3 + ord("0"), 3 + ord("9") + 1), cases[:4])
  assert not any(r["correct"] for r in rows)


def _run(tiny_checkpoint, out, *flags):
  return passkey.main([f"--checkpoint={tiny_checkpoint}", f"--out={out}", "--quiet", *flags])


def test_main_landmark_end_to_end_both_grids_and_compare(tiny_checkpoint, tmp_path, capsys):
  # an earlier depth-grid result (written before results had a "mode") draws on the landmark figure
  grid = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "figures", "scratch", "passkey_step2000.json")
  out = tmp_path / "lm.json"
  rc = _run(tiny_checkpoint, out, "--tokens=300", "--seeds=0-1", f"--compare=depth-grid={grid}")
  assert rc == 0, capsys.readouterr().err
  res = json.loads(out.read_text())
  assert (res["task"], res["mode"], res["length_unit"]) == ("passkey", "landmark", "tokens")
  assert res["lengths"] == res["target_tokens"] == [300] and res["seeds"] == [0, 1]
  assert res["n_garbage"] == [300 - 247]  # the byte vocabulary: no BOS, one token per character
  assert [c["seed"] for c in res["cases"]] == [0, 1]
  for c in res["cases"]:
    text, key = synthetic.landmark_prompt(53, c["seed"])
    assert (c["key"], c["characters"], c["tokens"], c["answer_tokens"]) == (int(key), len(text), len(text), 6)
    assert set(c) >= {"n_garbage", "depth", "correct", "answer_token_accuracy", "answer_logprob"}
  assert 0.0 <= res["accuracy_by_length"][0] <= 1.0 and len(res["mean_tokens_by_length"]) == 1
  assert res["mean_characters_by_length"] == [np.mean([c["characters"] for c in res["cases"]])]
  assert os.path.getsize(tmp_path / "lm.png") > 1000

  # --n_garbage names the same prompts directly (53 characters = 300 tokens here): same cases, same scores; the
  # shapes repeat, so nothing compiles again
  out = tmp_path / "chars.json"
  rc = _run(tiny_checkpoint, out, "--n_garbage=53", "--seeds=1,0", f"--compare=tok={tmp_path / 'lm.json'}")
  assert rc == 0, capsys.readouterr().err
  chars = json.loads(out.read_text())
  assert chars["length_unit"] == "characters" and chars["lengths"] == chars["n_garbage"] == [53]
  assert chars["target_tokens"] is None and chars["seeds"] == [1, 0]
  assert [{**c, "length": 300} for c in chars["cases"][::-1]] == res["cases"]
  assert os.path.getsize(tmp_path / "chars.png") > 1000


def test_prompt_mode_defaults_to_landmark_and_grid_flags_keep_the_depth_grid():
  parse = passkey.build_parser().parse_args
  base = ["--checkpoint=x", "--out=y"]
  assert passkey.prompt_mode(parse(base)) == "landmark"
  assert passkey.prompt_mode(parse(base + ["--tokens=1k"])) == "landmark"
  assert passkey.prompt_mode(parse(base + ["--lengths=1k", "--depths=0,1", "--samples=2"])) == "depth_grid"
  assert passkey.prompt_mode(parse(base + ["--prompt=depth_grid"])) == "depth_grid"
  assert passkey.seed_list("0-3,555, 7") == [0, 1, 2, 3, 555, 7]


@pytest.mark.parametrize("flags,named", [
    (["--n_garbage=1k", "--tokens=1k"], "--n_garbage, --tokens"),
    (["--tokens=10"], "--tokens"),
    (["--tokens=1k,x"], "--tokens"),
    (["--n_garbage=500k"], "--n_garbage"),
    (["--n_garbage=0"], "--n_garbage"),
    (["--seeds=5-2"], "--seeds"),
    (["--seeds=a"], "--seeds"),
    (["--seeds=1,1"], "--seeds"),
    (["--seeds=-1"], "--seeds"),
    (["--seed=3"], "--seed"),
    (["--prompt=landmark", "--depths=0.5"], "--depths"),
    (["--prompt=depth_grid", "--seeds=0-3"], "--seeds"),
    (["--lengths=1k", "--tokens=1k"], "--tokens"),
])
def test_landmark_flag_errors_exit_2_naming_the_flag(tiny_checkpoint, tmp_path, capsys, flags, named):
  assert _run(tiny_checkpoint, tmp_path / "x.json", *flags) == 2
  assert named in capsys.readouterr().err
  assert not (tmp_path / "x.json").exists()
