"""Derived training sources: passkey prompts, repeated segments, blends by token share, and their names."""

import numpy as np
import pytest

from fot_jax.data import derived, pipeline, sources, synthetic
from fot_jax.data.vocab import VocabConfig, build_vocabulary


class _Docs:
  """A tiny indexable source: document i is arange(lengths[i]) + 100 * i."""

  def __init__(self, lengths):
    self.lengths = np.asarray(lengths, np.int64)

  def __len__(self):
    return len(self.lengths)

  def __getitem__(self, i):
    return {"targets": np.arange(self.lengths[i], dtype=np.int32) + 100 * i}


@pytest.fixture(scope="module")
def byte_vocab():
  return build_vocabulary(VocabConfig("byte"))


def test_repeated_segments_repeat_an_exact_segment_of_an_eligible_document():
  base = _Docs([10, 50, 3, 80])
  docs = derived.RepeatedSegments(base, period=16, repeats=3, num_docs=40, seed=7)
  assert len(docs) == 40 and (docs.lengths == 48).all()
  seen = set()
  for i in range(40):
    t = docs[i]["targets"]
    assert t.shape == (48,)
    np.testing.assert_array_equal(t[:16], t[16:32])
    np.testing.assert_array_equal(t[:16], t[32:])
    j = int(t[0]) // 100
    assert j in (1, 3), "documents shorter than the period must never be used"
    np.testing.assert_array_equal(np.diff(t[:16]), 1)  # a contiguous slice of document j
    seen.add(j)
  assert seen == {1, 3}
  np.testing.assert_array_equal(docs[5]["targets"], derived.RepeatedSegments(base, 16, 3, 40, seed=7)[5]["targets"])
  assert not np.array_equal(docs[5]["targets"], derived.RepeatedSegments(base, 16, 3, 40, seed=8)[5]["targets"])


def test_repeated_segments_with_a_period_range_draw_a_seeded_period_per_document():
  base = _Docs([10, 50, 3, 80])
  docs = derived.RepeatedSegments(base, period=4, repeats=3, num_docs=200, seed=7, max_period=12)
  periods = docs.lengths // 3
  assert periods.min() == 4 and periods.max() == 12 and len(set(periods.tolist())) == 9
  for i in range(0, 200, 7):
    t, p = docs[i]["targets"], int(periods[i])
    assert t.shape == (3 * p,)
    np.testing.assert_array_equal(t[:p], t[p:2 * p])
    np.testing.assert_array_equal(t[:p], t[2 * p:])
    assert int(t[0]) // 100 in (1, 3)  # 10-token document 0 is shorter than the largest period
  again = derived.RepeatedSegments(base, period=4, repeats=3, num_docs=200, seed=7, max_period=12)
  np.testing.assert_array_equal(again.lengths, docs.lengths)
  np.testing.assert_array_equal(again[33]["targets"], docs[33]["targets"])


def test_repeated_segments_reject_bad_shapes():
  with pytest.raises(ValueError, match="repeats >= 2"):
    derived.RepeatedSegments(_Docs([100]), period=8, repeats=1)
  with pytest.raises(ValueError, match="period=200"):
    derived.RepeatedSegments(_Docs([100]), period=200, repeats=2)


def test_passkey_documents_end_with_their_answer_and_are_seeded(byte_vocab):
  docs = derived.PasskeyDocuments(byte_vocab.encode, num_docs=20, min_len=300, max_len=900, seed=3)
  lengths = docs.lengths
  assert lengths.shape == (20,) and len(set(lengths.tolist())) > 5
  for i in range(20):
    ex = docs.example(i)
    t = docs[i]["targets"]
    answer = byte_vocab.encode(f" {ex.key}")
    assert byte_vocab.decode(t.tolist()) == ex.prompt + ex.answer
    np.testing.assert_array_equal(t[-len(answer):], answer)
    assert ex.prompt.endswith(synthetic.PASSKEY_QUESTION) and f"The pass key is {ex.key}." in ex.prompt
    assert "loss_weights" not in docs[i]  # every token carries loss by default
  np.testing.assert_array_equal(docs[4]["targets"],
                                derived.PasskeyDocuments(byte_vocab.encode, 20, 300, 900, seed=3)[4]["targets"])
  only = derived.PasskeyDocuments(byte_vocab.encode, 20, 300, 900, seed=3, answer_only=True)[4]
  n_answer = len(byte_vocab.encode(f" {docs.example(4).key}"))
  assert only["loss_weights"].sum() == n_answer and (only["loss_weights"][-n_answer:] == 1).all()
  with pytest.raises(ValueError, match="min_len <= max_len"):
    derived.PasskeyDocuments(byte_vocab.encode, 1, 500, 100)
  with pytest.raises(IndexError):
    docs[20]


def test_blend_rates_are_token_shares():
  long_docs, short_docs = _Docs([1000] * 10), _Docs([10] * 10)
  rates = derived.document_rates([0.5, 0.5], [long_docs, short_docs])
  mix = sources.MixtureDocuments([long_docs, short_docs], rates, seed=0, num_docs=20000)
  tokens_from_long = mix.lengths[mix.which == 0].sum() / mix.lengths.sum()
  assert 0.45 < tokens_from_long < 0.55  # by document count it would be ~0.99


@pytest.mark.parametrize("name,expected", [("a@0.25+b@0.75", [("a", 0.25), ("b", 0.75)]),
                                           ("repeat:stdlib:64x4@2+stdlib", [("repeat:stdlib:64x4", 2.0),
                                                                            ("stdlib", 1.0)])])
def test_parse_blend(name, expected):
  assert derived.parse_blend(name) == expected


@pytest.mark.parametrize("name,match", [("a@x+b", "not a number"), ("a@0+b", "rate > 0"), ("@1+b", "source name")])
def test_parse_blend_errors_name_the_part(name, match):
  with pytest.raises(ValueError, match=match):
    derived.parse_blend(name)


def test_parse_repeat_and_passkey_names():
  assert derived.parse_repeat("repeat:jsonl:/d/*.jsonl:64x4") == ("jsonl:/d/*.jsonl", 64, 64, 4)
  assert derived.parse_repeat("repeat:random:64:8-24x3") == ("random:64", 8, 24, 3)
  for bad in ("repeat:stdlib:64", "repeat:stdlib:24-8x3", "repeat:stdlib:8-x3"):
    with pytest.raises(ValueError, match="repeat:<source>:<period>x<repeats>"):
      derived.parse_repeat(bad)
  assert derived.parse_passkey("passkey:512") == (128, 512)
  assert derived.parse_passkey("passkey:100-300") == (100, 300)
  with pytest.raises(ValueError, match="passkey:<max_tokens>"):
    derived.parse_passkey("passkey:long")


def test_pipeline_builds_derived_sources_by_name(byte_vocab):
  docs = pipeline.documents("passkey:200-400", "validation", byte_vocab)
  assert len(docs) == pipeline.PASSKEY_DOCS["validation"]
  assert byte_vocab.decode(docs[0]["targets"].tolist()).startswith(synthetic.PASSKEY_INSTRUCTION)
  train = pipeline.documents("passkey:200-400", "train", byte_vocab)
  assert not np.array_equal(train[0]["targets"], docs[0]["targets"])  # splits are disjoint seeds
  blend = pipeline.documents("passkey:200-400@1+dict_lookup@1", "validation", byte_vocab)
  assert {int(w) for w in blend.which} == {0, 1}


def test_random_token_documents_and_their_repeats():
  docs = derived.RandomTokenDocuments(num_docs=5, length=300, num_symbols=16, first_id=3, seed=1)
  t = docs[2]["targets"]
  assert t.shape == (300,) and t.min() >= 3 and t.max() < 19 and len(set(t.tolist())) == 16
  np.testing.assert_array_equal(t, derived.RandomTokenDocuments(5, 300, 16, 3, seed=1)[2]["targets"])
  assert derived.parse_random("random:256") == 256
  with pytest.raises(ValueError, match="random:<num_symbols>"):
    derived.parse_random("random:1")
  rep = pipeline.documents("repeat:random:256:64x8", "validation", None)
  d = rep[0]["targets"]
  assert d.shape == (512,)
  np.testing.assert_array_equal(d[:64], d[448:])


def test_landmark_documents_are_the_authors_prompts_with_training_seeds(byte_vocab):
  docs = pipeline.documents("landmark:50-400", "train", byte_vocab)
  assert len(docs) == pipeline.LANDMARK_DOCS["train"]
  evaluation_prompts = {synthetic.landmark_prompt(n, s) for n in range(50, 401, 50) for s in range(20)}
  for i in range(12):
    text, key = docs.prompt(i)
    n_garbage, seed = docs.generator_args(i)
    assert 50 <= n_garbage <= 400 and seed == derived.LANDMARK_TRAIN_SEED_BASE + i  # run seed 0, train split
    assert (text, key) == synthetic.landmark_prompt(n_garbage, seed)
    fixed = len(synthetic.PASSKEY_INSTRUCTION) + len(synthetic.PASSKEY_QUESTION) + 4  # four newlines
    assert len(text) == fixed + n_garbage + len(f"The pass key is {key}. Remember it. {key} is the pass key.")
    assert (text, key) not in evaluation_prompts
    doc = docs[i]
    assert "loss_weights" not in doc  # every token carries loss
    np.testing.assert_array_equal(doc["targets"], byte_vocab.encode(text) + byte_vocab.encode(" " + key))
  val = pipeline.documents("landmark:50-400", "validation", byte_vocab)
  assert {val.prompt(i) for i in range(20)}.isdisjoint({docs.prompt(i) for i in range(20)})


def test_landmark_answer_only_weights_and_name_errors(byte_vocab):
  doc = pipeline.documents("landmark_answers:10-20", "train", byte_vocab)[0]
  answer = doc["loss_weights"] > 0
  key = byte_vocab.decode(doc["targets"][answer].tolist())
  assert key.strip().isdigit() and key.startswith(" ")
  assert not answer[:-len(key)].any()
  for bad in ("landmark:0-5", "landmark:9-3", "landmark:abc", "landmarks:1-2"):
    with pytest.raises(ValueError, match="landmark"):
      derived.parse_landmark(bad)
