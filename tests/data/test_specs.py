"""Source specs: the name grammar ('+' and '@' inside paths), canonical round trips, field validation, and
documents built from a spec equal to those of the source classes they stand for."""

import json
import sys
import types

import numpy as np
import pytest

from fot_jax.data import build, derived, pipeline, sources, synthetic
from fot_jax.data import source_names as N
from fot_jax.data import specs as S
from fot_jax.data.vocab import IdVocabulary


def encode(text):
  return list(text.encode("utf-8"))


class _Bytes(IdVocabulary):
  """Byte ids with LLaMA's BOS/EOS ids and no seqio import (an id vocabulary that can encode)."""

  def __init__(self):
    super().__init__(259)

  def encode(self, text):
    return encode(text)


@pytest.fixture
def registered(monkeypatch):
  """A seqio stand-in whose registry holds 'my.task' (a name is a task only once seqio has registered it)."""
  fake = types.SimpleNamespace(TaskRegistry=types.SimpleNamespace(names=lambda: {"my.task": None}.keys()))
  monkeypatch.setitem(sys.modules, "seqio", fake)


# --- grammar -------------------------------------------------------------------------------------------------------
def test_a_jsonl_path_with_plus_and_at_is_one_source():
  assert N.parse_source("jsonl:/data/c++/a+b@c/*.jsonl") == S.JsonlSpec("/data/c++/a+b@c/*.jsonl")
  assert N.parse_source("jsonl:/d/x+y.jsonl") == S.JsonlSpec("/d/x+y.jsonl")  # 'y.jsonl' is not a source
  assert N.parse_source("stream:redpajama:gs://b/a+b@2x/*.zst") == S.StreamSpec(S.RedPajamaSpec("gs://b/a+b@2x/*.zst"))
  assert N.parse_source("repeat:jsonl:/d/a+b/*.jsonl:64x4") == S.RepeatSpec(S.JsonlSpec("/d/a+b/*.jsonl"), 64, 4)


def test_blends_split_where_a_source_starts():
  assert N.parse_source("stdlib@0.3+shakespeare@0.7") == S.BlendSpec(
      (S.BlendPart(S.CorpusSpec("stdlib"), 0.3), S.BlendPart(S.CorpusSpec("shakespeare"), 0.7)))
  assert N.blend_parts("a@0.3+b@0.7") == [("a", 0.3), ("b", 0.7)]
  path = N.parse_source("jsonl:/d/a+b@c/*.jsonl@0.25+stdlib+dict_lookup:64@2")
  assert path == S.BlendSpec((S.BlendPart(S.JsonlSpec("/d/a+b@c/*.jsonl"), 0.25), S.BlendPart(S.CorpusSpec("stdlib")),
                              S.BlendPart(S.DictLookupSpec(64), 2.0)))
  assert [str(p.source) for p in N.parse_source("cache:/c/x+y+landmark:1-60@0.75").parts] == ["cache:/c/x+y",
                                                                                              "landmark:1-60"]
  # one part with a share is still a blend (a mixture over one source), as before
  assert N.parse_source("stdlib@2") == S.BlendSpec((S.BlendPart(S.CorpusSpec("stdlib"), 2.0),))


def test_seqio_tasks_are_task_prefixed_or_registered_never_just_dotted(registered):
  assert N.parse_source("task:other.task") == S.TaskSpec("other.task")
  assert N.parse_source("my.task") == S.TaskSpec("my.task")
  assert N.parse_source("jsonl:/d/a+my.task") == S.BlendSpec((S.BlendPart(S.JsonlSpec("/d/a")),
                                                              S.BlendPart(S.TaskSpec("my.task"))))
  with pytest.raises(S.SpecError, match="unknown data source 'fot.unregistered.byte.min0'"):
    N.parse_source("fot.unregistered.byte.min0")


def test_round_trips_through_the_canonical_text(registered):
  names = {"stdlib": "stdlib", "pg19": "pg19", "dict_lookup": "dict_lookup", "dict_lookup:512": "dict_lookup",
           "dict_lookup:128": "dict_lookup:128", "passkey:512": "passkey:128-512", "passkey:100-300": "passkey:100-300",
           "landmark:1-60": "landmark:1-60", "landmark_answers:200-900": "landmark_answers:200-900",
           "random:256": "random:256", "repeat:random:64:8-24x3": "repeat:random:64:8-24x3",
           "repeat:stdlib:64x4@2+stdlib": "repeat:stdlib:64x4@2.0+stdlib@1.0", "mixture:offline": "mixture:offline",
           "arrayrecord:/d/*.ar": "arrayrecord:/d/*.ar", "stack:/s/{split}/*.parquet": "stack:/s/{split}/*.parquet",
           "instruct:/i/*.jsonl": "instruct:/i/*.jsonl", "cache:/c": "cache:/c", "my.task": "task:my.task",
           "stream:jsonl:/d/a+b/*.jsonl": "stream:jsonl:/d/a+b/*.jsonl",
           "jsonl:/d/a+b@c/*.jsonl@0.5+passkey:64-128@0.5": "jsonl:/d/a+b@c/*.jsonl@0.5+passkey:64-128@0.5"}
  for name, canonical in names.items():
    spec = N.parse_source(name)
    assert str(spec) == canonical, name
    assert N.parse_source(canonical) == spec, name


@pytest.mark.parametrize("name,match", [
    ("passkey:long", r"passkey:<max_tokens>"), ("passkey:0-5", r"PasskeySpec.min_len: .*found 0"),
    ("random:1", r"RandomSpec.num_symbols: .*found 1; syntax: 'random:<num_symbols>'"),
    ("repeat:stdlib:24-8x3", r"RepeatSpec.max_period"), ("repeat:stdlib:64x1", r"RepeatSpec.repeats"),
    ("repeat:nope:64x4", r"unknown data source 'nope'"), ("dict_lookup:41", r"DictLookupSpec.doc_len"),
    ("landmark:9-3", r"LandmarkSpec.min_garbage"), ("stream:arrayrecord:/x", r"stream:<kind>:<glob>"),
    ("jsonl:", r"JsonlSpec.pattern"), ("task:", r"TaskSpec.name"), ("stdlib@0+shakespeare", r"rate > 0"),
    ("stdlib@x", r"rate 'x' of 'stdlib' is not a number"), ("", r"expected a source name")])
def test_bad_names_say_what_is_wrong(name, match):
  with pytest.raises(S.SpecError, match=match):
    N.parse_source(name)


@pytest.mark.parametrize("make,field", [
    (lambda: S.CorpusSpec("nope"), "CorpusSpec.name"), (lambda: S.PasskeySpec(5, 0), "PasskeySpec.max_len"),
    (lambda: S.LandmarkSpec(1, 5, answer_only="yes"), "LandmarkSpec.answer_only"),
    (lambda: S.RandomSpec(True), "RandomSpec.num_symbols"), (lambda: S.DictLookupSpec(30), "DictLookupSpec.doc_len"),
    (lambda: S.StreamSpec(S.ArrayRecordSpec("/x")), "StreamSpec.corpus"),
    (lambda: S.RepeatSpec(N.parse_source("stdlib@1"), 8, 2), "RepeatSpec.base"),
    (lambda: S.RepeatSpec(S.CorpusSpec("stdlib"), 0, 2), "RepeatSpec.period"),
    (lambda: S.BlendPart(S.CorpusSpec("stdlib"), float("nan")), "BlendPart.share"),
    (lambda: S.BlendPart("stdlib"), "BlendPart.source"), (lambda: S.BlendSpec(()), "BlendSpec.parts"),
    (lambda: S.MixtureSpec(""), "MixtureSpec.name")])
def test_fields_are_validated_and_named(make, field):
  with pytest.raises(S.SpecError, match=f"^{field}: expected "):
    make()


# --- building --------------------------------------------------------------------------------------------------------
def _same(a, b, n=4):
  assert len(a) == len(b)
  for i in range(n):
    x, y = a[i], b[i]
    assert sorted(x) == sorted(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_built_documents_are_the_source_classes_documents():
  seed = synthetic.split_seed(3, "validation")
  blend = pipeline.documents("passkey:200-400@1+dict_lookup:64@1", "validation", _Bytes(), seed=3)
  passkey = derived.PasskeyDocuments(encode, build.PASSKEY_DOCS["validation"], 200, 400, seed=seed)
  lookup = synthetic.DictLookupDocuments(build.DICT_LOOKUP_DOCS["validation"], seed=seed, doc_len=64)
  expected = sources.MixtureDocuments([passkey, lookup], derived.document_rates([1, 1], [passkey, lookup]), seed=3)
  np.testing.assert_array_equal(blend.which, expected.which)
  np.testing.assert_array_equal(blend.index, expected.index)
  _same(blend, expected, 8)
  spec = S.RepeatSpec(S.RandomSpec(64), 8, 3, max_period=24)
  rep = pipeline.documents(spec, "train", None, seed=1)
  base = derived.RandomTokenDocuments(build.RANDOM_DOCS["train"], build.RANDOM_DOC_LEN, 64,
                                      seed=synthetic.split_seed(1, "train"))
  _same(rep, derived.RepeatedSegments(base, 8, 3, seed=synthetic.split_seed(1, "train"), max_period=24))
  answers = pipeline.documents("landmark_answers:10-20", "test", _Bytes())
  _same(answers, derived.LandmarkPasskeyDocuments(encode, build.LANDMARK_DOCS["test"], 10, 20,
                                                  seed=synthetic.split_seed(0, "test"), answer_only=True))


def test_a_streamed_path_with_plus_and_at_reaches_the_reader(tmp_path):
  d = tmp_path / "a+b@c"
  d.mkdir()
  (d / "part0.jsonl").write_text("".join(json.dumps({"text": f"doc {i} " * 20}) + "\n" for i in range(4)))
  b = pipeline.make_batcher(f"stream:jsonl:{d}/*.jsonl", "train", _Bytes(), batch_size=2, seq_len=16)
  assert b.files == [str(d / "part0.jsonl")]
  assert bytes(t for t in next(b)["inputs"][0].tolist() if t > 2).decode().startswith("doc ")


def test_sources_without_documents_or_caches_fail_clearly():
  with pytest.raises(S.SpecError, match="stream:jsonl:/x: a streamed corpus has no indexable documents"):
    pipeline.documents("stream:jsonl:/x", "train", None)
  with pytest.raises(S.SpecError, match="passkey:1-8: not a corpus or seqio task"):
    pipeline.cache_task_names("passkey:1-8", None, "/tmp")


def test_the_trainers_file_check_reads_paths_with_plus_and_at():
  from fot_jax.train.config_paths import corpus_globs
  from fot_jax.train.errors import ConfigError
  assert corpus_globs("jsonl:/d/a+b@c/{split}.jsonl@0.5+stdlib@0.5", ("train",)) == ["/d/a+b@c/train.jsonl"]
  assert corpus_globs("stream:stack:/s/x+y/*.parquet") == ["/s/x+y/*.parquet"]
  with pytest.raises(ConfigError, match="^data.task: blend 'stdlib@x'"):
    corpus_globs("stdlib@x")
