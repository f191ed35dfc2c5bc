"""Dictionary lookup documents and passkey prompts: layout, loss weights, determinism."""

import numpy as np
import pytest

from fot_jax.data import synthetic as syn


def test_dict_lookup_layout_and_loss_only_on_values():
  docs = syn.DictLookupDocuments(4, seed=3)
  d = docs[1]
  t, w = d["targets"], d["loss_weights"]
  assert t.shape == w.shape == (512,) and (docs.lengths == 512).all()
  half, rec, n = 256, 10, docs.records
  defs = {tuple(t[j * rec + 1:j * rec + 5]): tuple(t[j * rec + 6:j * rec + 10]) for j in range(n)}
  assert len(defs) == n and all(t[j * rec] == syn.DICT_K and t[j * rec + 5] == syn.DICT_V for j in range(n))
  for j in range(n):  # every query repeats a defined key with its value; loss exactly on v1..v4
    q = t[half + j * rec:half + (j + 1) * rec]
    assert q[0] == syn.DICT_Q and q[5] == syn.DICT_V and defs[tuple(q[1:5])] == tuple(q[6:10])
    np.testing.assert_array_equal(w[half + j * rec:half + (j + 1) * rec], [0] * 6 + [1] * 4)
  assert w.sum() == 4 * n
  assert t.max() < syn.DICT_VOCAB_SIZE and t.min() >= syn.DICT_K
  np.testing.assert_array_equal(docs[1]["targets"], syn.DictLookupDocuments(4, seed=3)[1]["targets"])
  assert not np.array_equal(docs[0]["targets"], docs[1]["targets"])


def test_passkey_prompt_format_and_determinism():
  e = syn.passkey_example(seed=5, length=1000)
  lines = e.prompt.split("\n")
  assert lines[0] == syn.PASSKEY_INSTRUCTION and lines[-1] == syn.PASSKEY_QUESTION
  assert lines[2] == f"The pass key is {e.key}. Remember it. {e.key} is the pass key."
  assert 1 <= e.key <= 50000 and len(e.prompt) <= 1000
  # the longest prompt that fits: one more filler sentence would not
  n = e.prefix_sentences + e.suffix_sentences + 1
  pre = int(round(e.depth * n))
  assert len(syn.passkey_text(e.key, pre, n - pre)) > 1000
  assert syn.passkey_example(seed=5, length=1000) == e
  assert syn.passkey_example(seed=6, length=1000).key != e.key or syn.passkey_example(seed=7, length=1000).key != e.key
  shallow, deep = syn.passkey_example(1, 2000, depth=0.0), syn.passkey_example(1, 2000, depth=1.0)
  assert shallow.prefix_sentences == 0 and deep.suffix_sentences == 0
  words = syn.passkey_example(2, 3000, measure=lambda s: len(s.split()))
  n = words.prefix_sentences + words.suffix_sentences + 1
  pre = int(round(words.depth * n))
  assert len(words.prompt.split()) <= 3000 < len(syn.passkey_text(words.key, pre, n - pre).split())
  with pytest.raises(ValueError, match="shorter than the prompt"):
    syn.passkey_example(0, 50)


class _SpaceVocab:
  """SentencePiece-like: a dummy prefix, pieces are '▁'-runs plus the word after them, so encode(" 123") alone is
  ['▁▁123'] while after "is" the text has '▁123'. BOS 1, as the evaluators expect."""

  bos_id, eos_id, vocab_size = 1, 2, 10_000

  def __init__(self):
    self.ids = {}

  def encode(self, text):
    import re
    pieces = re.findall(r"▁*[^▁]+|▁+", "▁" + text.replace(" ", "▁"))
    return [self.ids.setdefault(p, 3 + len(self.ids)) for p in pieces]


def test_every_passkey_document_tokenizes_its_answer_in_place():
  """Training sources and both evaluation modes share synthetic.passkey_document: the key's tokens are those
  that follow the prompt, never encode(" <key>") on its own."""
  from fot_jax.data import derived
  from fot_jax.eval import passkey
  v = _SpaceVocab()
  train = derived.PasskeyDocuments(v.encode, 3, 100, 300, seed=1)
  landmark = derived.LandmarkPasskeyDocuments(v.encode, 3, 20, 80, seed=1, answer_only=True)
  depth_case = passkey.make_case(v, 300, 0.5, seed=2)
  landmark_case = passkey.landmark_case(v, 60, 4)
  answers = [(train[0]["targets"][-1:], train.example(0).key),
             (landmark[0]["targets"][landmark[0]["loss_weights"] > 0], landmark.prompt(0)[1]),
             (depth_case.tokens[depth_case.answer_mask], depth_case.key),
             (landmark_case.tokens[landmark_case.answer_mask], landmark_case.key)]
  for tokens, key in answers:
    assert tokens.tolist() == [v.ids[f"▁{key}"]] and v.encode(f" {key}") == [v.ids[f"▁▁{key}"]]
  assert depth_case.tokens[0] == v.bos_id and not depth_case.answer_mask[:-1].any()
