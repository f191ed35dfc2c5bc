"""seqio tasks end to end on small JSONL corpora (same code path as stdlib/pg19/c4), mixtures, synthetic tasks,
and the pipeline errors."""

import json
import os

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")

from fot_jax.data import pipeline, sources, synthetic, tasks, vocab  # noqa: E402


def _write_jsonl(d, split, texts):
  os.makedirs(d / split, exist_ok=True)
  with open(d / split / "part0.jsonl", "w") as f:
    for t in texts:
      f.write(json.dumps({"text": t}) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  d = tmp_path_factory.mktemp("jsonl")
  _write_jsonl(d, "train", [f"document {i} " + "abc " * (5 * i) for i in range(12)])
  _write_jsonl(d, "validation", ["short", "a bit longer text here"])
  return d


def test_jsonl_task_returns_whole_documents_and_filters_min_length(corpus, tmp_path):
  v = vocab.build_vocabulary("byte")
  pattern = f"jsonl:{corpus}/{{split}}/*.jsonl"
  name = tasks.register_text_task(pattern, v, str(tmp_path), min_length=0)
  docs = list(tasks.task_documents(name, "train"))
  assert len(docs) == 12
  assert v.decode(docs[3]["targets"].tolist()) == "document 3 " + "abc " * 15  # no EOS, no truncation
  long_name = tasks.register_text_task(pattern, v, str(tmp_path), min_length=100)
  long_docs = list(tasks.task_documents(long_name, "train"))
  assert 0 < len(long_docs) < len(docs) and all(len(d["targets"]) >= 100 for d in long_docs)


def test_batcher_from_task_cache_and_resume(corpus, tmp_path):
  v = vocab.build_vocabulary("byte")
  pattern = f"jsonl:{corpus}/{{split}}/*.jsonl"
  b = pipeline.make_batcher(pattern, "train", v, batch_size=4, seq_len=16, k=2, data_dir=str(tmp_path))
  assert isinstance(b.docs, sources.CachedDocuments) and b.cfg.bos_id is None and b.cfg.eos_id == 1
  first = [next(b) for _ in range(5)]
  state = b.get_state()
  after = [next(b) for _ in range(3)]
  again = pipeline.make_batcher(pattern, "train", v, batch_size=4, seq_len=16, k=2, data_dir=str(tmp_path))
  again.set_state(state)
  for x, y in zip(after, [next(again) for _ in range(3)]):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  text = v.decode([t for t in first[0]["inputs"][0].tolist() if t > 2])
  assert text.startswith("document ")


def test_pipeline_errors(corpus, tmp_path):
  v = vocab.build_vocabulary("byte")
  with pytest.raises(FileNotFoundError, match="no files match"):
    pipeline.make_batcher(f"jsonl:{tmp_path}/missing/*.jsonl", "train", v, 2, 8, data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="min_length=100000"):
    pipeline.make_batcher(f"jsonl:{corpus}/{{split}}/*.jsonl", "train", v, 2, 8, data_dir=str(tmp_path),
                          min_length=100000)
  empty = tmp_path / "empty"
  _write_jsonl(empty, "train", [])
  with pytest.raises(ValueError, match=f"{empty}/train/part0.jsonl: empty file"):
    pipeline.make_batcher(f"jsonl:{empty}/{{split}}/*.jsonl", "train", v, 2, 8, data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="vocabulary/model mismatch"):
    pipeline.make_batcher(f"jsonl:{corpus}/{{split}}/*.jsonl", "train", v, 2, 8, data_dir=str(tmp_path),
                          model_vocab_size=128)
  with pytest.raises(ValueError, match="unknown corpus"):
    tasks.text_source("nope")


def test_mixture_rates_and_registration(corpus, tmp_path):
  v = vocab.build_vocabulary("byte")
  comps = (tasks.MixtureComponent(f"jsonl:{corpus}/{{split}}/*.jsonl", 3.0, 0),
           tasks.MixtureComponent(f"jsonl:{corpus}/{{split}}/*.jsonl", 1.0, 60))
  mix, names = tasks.register_mixture("unit", comps, v, str(tmp_path))
  assert seqio.get_mixture_or_task(mix).get_rate(seqio.get_mixture_or_task(names[0])) == 3.0
  srcs = [sources.task_documents_cached(n, "train", str(tmp_path)) for n in names]
  m = sources.MixtureDocuments(srcs, [3.0, 1.0], seed=0, num_docs=4000)
  share = (m.which == 0).mean()
  assert 0.7 < share < 0.8
  assert all(len(m[i]["targets"]) >= 60 for i in np.flatnonzero(m.which == 1)[:20])
  np.testing.assert_array_equal(m.lengths[:50], [len(m[i]["targets"]) for i in range(50)])
  with pytest.raises(ValueError, match="rates must be > 0"):
    tasks.register_mixture("bad", (tasks.MixtureComponent("stdlib", 0.0),), v, str(tmp_path))


def test_dict_lookup_task_and_batcher():
  name = tasks.register_dict_lookup_task(num_docs=3, doc_len=64, seed=0)
  docs = list(tasks.task_documents(name, "validation"))
  ref = synthetic.DictLookupDocuments(3, seed=1, doc_len=64)
  assert len(docs) == 3
  np.testing.assert_array_equal(docs[2]["targets"], ref[2]["targets"])
  np.testing.assert_array_equal(docs[2]["loss_weights"], ref[2]["loss_weights"])
  b = pipeline.make_batcher("dict_lookup", "validation", None, batch_size=2, seq_len=256, k=2,
                            model_vocab_size=128)
  x = next(b)
  tw = x["loss_mask"] > 0  # loss only where the target is a value symbol of a query
  assert tw.any() and (x["targets"][tw] >= synthetic.DICT_FIRST_SYMBOL).all()
  assert x["loss_mask"].sum() < 0.25 * x["loss_mask"].size
  with pytest.raises(ValueError, match="vocabulary/model mismatch"):
    pipeline.make_batcher("dict_lookup", "validation", None, batch_size=2, seq_len=64, model_vocab_size=64)


def test_passkey_task_loss_on_answer_only(tmp_path):
  texts = ["The grass is green. The pass key is 123. What is it?\n" * 50]
  path = vocab.train_sentencepiece(texts * 20, str(tmp_path / "pk.model"), vocab_size=300, max_sentences=2000)
  v = vocab.load_sentencepiece(path)
  name = tasks.register_passkey_task(v, length=200, num_docs=2, seed=0)
  (doc, _) = list(tasks.task_documents(name, "test"))
  w = doc["loss_weights"]
  answer = v.decode(doc["targets"][w > 0].tolist())
  prompt = v.decode(doc["targets"][w == 0].tolist())
  assert prompt.endswith(synthetic.PASSKEY_QUESTION) and f"The pass key is {answer.strip()}." in prompt
  assert int((w == 0).sum()) <= 200


def test_user_tfds_corpora_register_but_need_prepared_data(tmp_path):
  v = vocab.build_vocabulary("byte")
  for corpus in ("pg19", "c4"):
    assert tasks.register_text_task(corpus, v, str(tmp_path)).startswith(f"fot.{corpus}.")
    with pytest.raises(FileNotFoundError, match="not prepared"):
      pipeline.make_batcher(corpus, "train", v, 2, 8, data_dir=str(tmp_path))


def test_make_batcher_on_a_mixture(corpus, tmp_path, monkeypatch):
  v = vocab.build_vocabulary("byte")
  comps = (tasks.MixtureComponent(f"jsonl:{corpus}/{{split}}/*.jsonl", 1.0, 0),
           tasks.MixtureComponent(f"jsonl:{corpus}/{{split}}/*.jsonl", 1.0, 40))
  monkeypatch.setitem(pipeline.MIXTURES, "unit2", comps)
  b = pipeline.make_batcher("mixture:unit2", "train", v, batch_size=2, seq_len=32, data_dir=str(tmp_path))
  assert isinstance(b.docs, sources.MixtureDocuments) and next(b)["inputs"].shape == (2, 32)
  with pytest.raises(ValueError, match="unknown mixture"):
    pipeline.make_batcher("mixture:nope", "train", v, batch_size=2, seq_len=32, data_dir=str(tmp_path))
