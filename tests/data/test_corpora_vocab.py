"""Offline corpora from files, SentencePiece training/loading, and the errors for bad input."""

import os

import pytest

from fot_jax.data import corpora, vocab


def test_stdlib_documents_are_seeded_directory_concatenations(tmp_path):
  root = tmp_path / "lib"
  for d in ["", "pkg", "site-packages/foreign", "pkg/__pycache__"]:
    (root / d).mkdir(parents=True, exist_ok=True)
  for i in range(6):
    (root / f"m{i}.py").write_text(f"x = {i}\n")
    (root / "pkg" / f"p{i}.py").write_text(f"y = {i}\n")
  (root / "site-packages" / "foreign" / "f.py").write_text("z = 1\n")
  docs = dict(corpora.stdlib_documents(str(root), seed=0))
  assert set(docs) == {".#0", "pkg#0"}  # one document per directory, site-packages excluded
  order0 = [ln for ln in docs[".#0"].splitlines() if ln.startswith("# ----")]
  order1 = [ln for ln in dict(corpora.stdlib_documents(str(root), seed=1))[".#0"].splitlines()
            if ln.startswith("# ----")]
  assert sorted(order0) == sorted(order1) and len(order0) == 6
  assert order0 == [ln for ln in dict(corpora.stdlib_documents(str(root), seed=0))[".#0"].splitlines()
                    if ln.startswith("# ----")]
  assert order0 != order1 or order0 != [ln for ln in dict(corpora.stdlib_documents(str(root), seed=2))[
      ".#0"].splitlines() if ln.startswith("# ----")]
  cut = list(corpora.stdlib_documents(str(root), seed=0, max_doc_chars=30))
  assert len(cut) > 2 and "".join(t for _, t in cut).count("x = ") == 6


def test_real_stdlib_splits_are_disjoint_and_nonempty():
  train = {i for i, _ in corpora.corpus_documents("stdlib", "train")}
  valid = {i for i, _ in corpora.corpus_documents("stdlib", "validation")}
  assert train and valid and not train & valid and len(valid) < len(train)
  assert not any("site-packages" in i for i in train | valid)


def test_missing_and_empty_corpus_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    list(corpora.stdlib_documents(str(tmp_path / "nope")))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no non-empty .py files"):
    list(corpora.stdlib_documents(str(tmp_path / "empty")))
  with pytest.raises(FileNotFoundError, match="shakespeare"):
    corpora.prepare_corpus("shakespeare", str(tmp_path))
  with pytest.raises(ValueError, match="unknown offline corpus"):
    corpora.prepare_corpus("nope", str(tmp_path))


def _texts():
  return [t for _, t in corpora.stdlib_documents() if _.startswith("json") or _.startswith("email")]


def test_sentencepiece_training_is_deterministic_and_llama_like(tmp_path):
  texts = _texts()
  a = vocab.train_sentencepiece(texts, str(tmp_path / "a" / "m.model"), vocab_size=500, max_sentences=5000)
  b = vocab.train_sentencepiece(texts, str(tmp_path / "b" / "m.model"), vocab_size=500, max_sentences=5000)
  assert open(a, "rb").read() == open(b, "rb").read()
  v = vocab.load_sentencepiece(a)
  assert v.vocab_size == 500 and vocab.special_ids(v) == (1, 2)
  assert v.tokenizer.unk_id() == 0 and v.tokenizer.pad_id() == -1
  text = "def f(x):\n    return x  # café\n"
  ids = v.encode(text)
  assert v.decode(ids) == text and 1 not in ids and 2 not in ids  # seqio adds no BOS/EOS
  vocab.check_model_vocab(v, 512)
  with pytest.raises(ValueError, match="vocabulary/model mismatch"):
    vocab.check_model_vocab(v, 256)


def test_byte_vocabulary_and_missing_model(tmp_path):
  v = vocab.build_vocabulary("byte")
  assert vocab.special_ids(v) == (None, 1) and v.vocab_size == 259
  with pytest.raises(FileNotFoundError, match="SentencePiece model not found"):
    vocab.build_vocabulary(str(tmp_path / "missing.model"))
  assert vocab.parse_trained_name("stdlib_sp2000") == ("stdlib", 2000)
  assert vocab.parse_trained_name("/x/y.model") is None


def test_id_vocabulary_feeds_id_sources_without_seqio_and_refuses_text():
  ids = vocab.build_vocabulary("ids:2000")
  assert ids.vocab_size == 2000 and vocab.special_ids(ids) == (vocab.BOS_ID, vocab.EOS_ID)
  with pytest.raises(ValueError, match="ids:2000.*cannot encode text"):
    ids.encode("hello")
  for bad in ("ids:", "ids:2", "ids:many"):
    with pytest.raises(ValueError, match="ids:<size>"):
      vocab.build_vocabulary(bad)
  from fot_jax.data import pipeline
  batch = pipeline.make_batcher("repeat:random:64:32x2", "validation", ids, 4, 32, k=2,
                                model_vocab_size=2000).next_batch()
  assert (batch["inputs"][batch["input_mask"] > 0] < 67).all()
  assert (batch["inputs"] == vocab.BOS_ID).any()  # documents start with BOS, as with a SentencePiece vocabulary


def test_book_documents_from_texts_dirs(tmp_path):
  for sub in ("a/texts", "b/texts", "b/other"):
    (tmp_path / sub).mkdir(parents=True)
  (tmp_path / "a/texts/play.txt").write_text("ACT I\nTo be.\n")
  (tmp_path / "b/texts/dup.txt").write_text("ACT I\nTo be.\n")  # exact duplicate: dropped
  (tmp_path / "b/texts/poem.txt").write_text("A poem.\n")
  (tmp_path / "b/other/notes.txt").write_text("not a text\n")
  docs = dict(corpora.book_documents(str(tmp_path)))
  assert sorted(docs) == ["a/texts/play.txt", "b/texts/poem.txt"]


def test_fetched_shakespeare_if_present():
  root = corpora.shakespeare_dir()
  if not os.path.isdir(root):
    pytest.skip(f"book corpus not fetched ({root}); run python -m fot_jax.data.prepare --corpus=shakespeare "
                "--fetch")
  train = list(corpora.corpus_documents("shakespeare", "train"))
  valid = list(corpora.corpus_documents("shakespeare", "validation"))
  assert train and valid and len(valid) < len(train)


@pytest.mark.slow
def test_stdlib_end_to_end_tfds_sentencepiece_batcher(tmp_path):
  from fot_jax.data import pipeline
  v = vocab.build_vocabulary(vocab.VocabConfig(name="stdlib_sp1000", data_dir=str(tmp_path)))
  b = pipeline.make_batcher("stdlib", "validation", v, batch_size=4, seq_len=128, k=2, data_dir=str(tmp_path),
                            model_vocab_size=1024)
  x = next(b)
  assert x["inputs"].shape == (4, 128) and x["inputs"][0, 0] == 1 and x["input_mask"].all()
  assert "# ----" in v.decode(x["inputs"][0, 1:].tolist())
