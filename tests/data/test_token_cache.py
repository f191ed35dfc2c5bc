"""Token caches built in N shards: identical to a single-process build (documents and batches), resumable after a
crash, readable from an in-memory filesystem with ranged reads, and refused when written with another vocabulary;
the paper's LongLLaMA mixture over fixture files in RedPajama / The Stack layouts."""

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")
pytest.importorskip("zstandard")

from fot_jax.data import cache_build, fs, pipeline, tasks, token_cache, vocab  # noqa: E402
from fot_jax.data.batcher import BatcherConfig, DocumentBatcher  # noqa: E402
from tests.data.corpus_fixtures import stack_records, texts, write_jsonl, write_parquet  # noqa: E402


@pytest.fixture(scope="module")
def byte_vocab():
  return vocab.build_vocabulary("byte")


@pytest.fixture(scope="module")
def task(tmp_path_factory, byte_vocab):
  d = tmp_path_factory.mktemp("corpus")
  write_jsonl(str(d / "train" / "a.jsonl.zst"), texts("a", 9, 3))
  write_jsonl(str(d / "train" / "b.jsonl.gz"), texts("b", 8, 5))
  return tasks.register_text_task(f"jsonl:{d}/{{split}}/*.jsonl*", byte_vocab, str(d), min_length=40)


def _docs(cache):
  c = token_cache.CachedDocuments(cache)
  return c, [c[i]["targets"].tolist() for i in range(len(c))]


def _batches(docs, n=6):
  b = DocumentBatcher(docs, BatcherConfig(batch_size=4, seq_len=16, k=2, seed=1))
  return [next(b) for _ in range(n)]


def test_parallel_build_equals_single_process_build(task, tmp_path):
  one = cache_build.build(task, "train", str(tmp_path / "one"))
  assert one["num_shards"] == 1 and 0 < one["num_docs"] < 17  # the minimum length dropped the short ones
  for p in (2, 0):  # processes finish in any order; the last one writes the index
    assert cache_build.build(task, "train", str(tmp_path / "three"), 3, p, 3) is None
  three = cache_build.build(task, "train", str(tmp_path / "three"), 3, 1, 3)
  assert three["num_docs"] == one["num_docs"] and three["num_tokens"] == one["num_tokens"]
  (a, docs_a), (b, docs_b) = _docs(str(tmp_path / "one")), _docs(str(tmp_path / "three"))
  assert docs_a == docs_b and len(b.shards) == 3
  np.testing.assert_array_equal(a.lengths, b.lengths)
  for x, y in zip(_batches(a), _batches(b)):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.parametrize("kind", ["redpajama", "stack"])
def test_builders_with_enough_files_read_only_their_own(kind, tmp_path, byte_vocab, monkeypatch):
  d = tmp_path / "corpus"
  if kind == "redpajama":
    paths = [write_jsonl(str(d / f"part{f}.jsonl{'.gz' if f % 2 else ''}"), texts(f"p{f}", 6, 4)) for f in range(4)]
  else:  # a subdirectory spans files 1 and 2
    paths = [write_parquet(str(d / f"part{f}.parquet"), stack_records(f"org/r{f}", {"a/x.py": "x" * 50, "b/y.py": "y"})
                           + stack_records("org/s", {f"c/m{f}.py": "m" * 30})) for f in range(4)]
  task = tasks.register_text_task(f"{kind}:{d}/part*", byte_vocab, str(d), min_length=20)
  one = cache_build.build(task, "train", str(tmp_path / "one"))
  opened = []
  real = fs.open_file
  monkeypatch.setattr(fs, "open_file", lambda path, mode="rb": opened.append(path) or real(path, mode))
  for p in (0, 1, 2):
    opened.clear()
    three = cache_build.build(task, "train", str(tmp_path / "three"), 3, p, 3)
    if kind == "redpajama":  # shard p reads files p, p+3, ... only
      assert sorted(set(opened)) == paths[p::3]
  assert three["num_docs"] == one["num_docs"] > 0 and three["num_tokens"] == one["num_tokens"]
  assert _docs(str(tmp_path / "one"))[1] == _docs(str(tmp_path / "three"))[1]


def test_crashed_build_resumes_and_keeps_finished_shards(task, tmp_path, monkeypatch):
  cache = str(tmp_path / "c")
  cache_build.build(task, "train", cache, 3, 0, 3)
  done = token_cache.shard_path(cache, 3 - 3, 3)
  stamp = fs.read_bytes(fs.join(done, "meta.json")), (tmp_path / "c" / "shards").stat().st_mtime_ns
  real = tasks.task_documents

  def crash(name, split, shard, num_shards):
    yield from list(real(name, split, shard, num_shards))[:1]
    raise KeyboardInterrupt("host lost")
  monkeypatch.setattr(tasks, "task_documents", crash)
  with pytest.raises(KeyboardInterrupt):
    cache_build.build(task, "train", cache, 3, 1, 3)
  assert not token_cache.shard_complete(token_cache.shard_path(cache, 1, 3)) and not token_cache.is_complete(cache)
  assert fs.listdir(fs.join(cache, "shards")) == [token_cache.shard_name(0, 3)]  # no half shard left readable
  with pytest.raises(token_cache.CacheError, match="incomplete"):
    token_cache.CachedDocuments(cache)
  monkeypatch.setattr(tasks, "task_documents", real)
  with pytest.raises(token_cache.CacheError, match="holds a build in 3 shards, not 2"):
    cache_build.build(task, "train", cache, 2)
  info = cache_build.build(task, "train", cache)  # resumes with the shard count it finds
  assert info["num_shards"] == 3
  assert fs.read_bytes(fs.join(done, "meta.json")) == stamp[0]  # the finished shard was kept, not rebuilt
  assert _docs(cache)[1] == _docs(cache_build.build(task, "train", str(tmp_path / "ref")) and str(tmp_path / "ref"))[1]


def test_memory_filesystem_cache_uses_ranged_reads(task, tmp_path, monkeypatch):
  cache = "memory://caches/t/train"
  cache_build.build(task, "train", cache, 2, 0, 1)
  whole = []
  real = fs.read_bytes
  monkeypatch.setattr(fs, "read_bytes", lambda p: whole.append(p) or real(p))
  docs = token_cache.CachedDocuments(cache)
  got = [docs[i]["targets"].tolist() for i in range(len(docs))]
  assert got == _docs(cache_build.build(task, "train", str(tmp_path / "l")) and str(tmp_path / "l"))[1]
  assert whole and not any(p.endswith("tokens.npy") for p in whole)  # tokens come by ranged reads only


def test_cache_of_another_vocabulary_is_refused(task, tmp_path, byte_vocab):
  cache = str(tmp_path / "v")
  cache_build.build(task, "train", cache)
  with pytest.raises(token_cache.CacheError, match=rf"{cache}: token cache written with vocabulary 'byte', "
                     r"expected 'hf_"):
    token_cache.CachedDocuments(cache, expected_vocab="hf_0123abcd")
  assert len(pipeline.documents(f"cache:{cache}", "train", byte_vocab)) > 0
  meta = fs.join(token_cache.shard_path(cache, 0, 1), "meta.json")
  fs.write_bytes(meta, fs.read_bytes(meta).replace(b'"vocab": "byte"', b'"vocab": "other"'))
  with pytest.raises(token_cache.CacheError, match=rf"{meta}: token cache written with vocabulary 'other'"):
    token_cache.write_index(cache, 1, expected_vocab="byte")
  assert token_cache.CachedDocuments(cache).meta["vocab"] == "byte"  # the built index was not touched


# --- the paper's LongLLaMA mixture -----------------------------------------------------------------------------
PAPER_TABLE = {"arxiv": (0.25, 0), "python": (0.25, 4096), "book": (0.10, 0), "common_crawl": (0.29, 0),
               "c4": (0.05, 1024), "github": (0.02, 2048), "stackexchange": (0.02, 1024), "wikipedia": (0.02, 1024)}


def test_longllama_subsets_are_the_papers_table():
  got = {s.name: (s.rate, s.min_length) for s in tasks.LONGLLAMA_SUBSETS}
  assert got == PAPER_TABLE
  assert {s.name: s.kind for s in tasks.LONGLLAMA_SUBSETS if s.kind != "redpajama"} == {"python": "stack"}


def _redpajama(root, name, n, words, ext):
  return write_jsonl(str(root / "redpajama" / name / f"{name}_0000.jsonl{ext}"), texts(name, n, words))


def _longllama_files(root):
  paths = {}
  for name, ext in (("arxiv", ".zst"), ("book", ".gz"), ("common_crawl", ".zst"), ("c4", ""), ("github", ""),
                    ("stackexchange", ".gz"), ("wikipedia", "")):
    _redpajama(root, name, 30, 60, ext)
    paths[name] = str(root / "redpajama" / name / "*.jsonl*")
  repos = []
  for r in range(24):  # one long and one short subdirectory per repository
    repos += stack_records(f"org/r{r}", {f"src/m{j}.py": "x = 1\n" * 150 for j in range(5)})
    repos += stack_records(f"org/r{r}", {"tiny/t.py": "pass\n"})
  write_parquet(str(root / "stack" / "data" / "python" / "train-00000-of-00002.parquet"), repos[:24])
  write_jsonl(str(root / "stack" / "data" / "python" / "train-00001-of-00002.jsonl"), repos[24:])
  paths["python"] = str(root / "stack" / "data" / "python" / "train-*")
  return paths


def test_longllama_mixture_on_fixture_files(tmp_path, byte_vocab):
  paths = _longllama_files(tmp_path)
  docs = pipeline.documents("mixture:longllama", "train", byte_vocab, str(tmp_path / "data"), subset_paths=paths)
  names = [s.name for s in tasks.LONGLLAMA_SUBSETS]
  for j, src in enumerate(docs.sources):
    assert src.lengths.min() >= PAPER_TABLE[names[j]][1]
  python = docs.sources[names.index("python")]
  assert len(python) > 0 and "# ---- src/m" in bytes((python[0]["targets"] - 3).astype(np.uint8)).decode()
  share = np.bincount(docs.which, minlength=len(names)) / len(docs.which)
  assert abs(share[names.index("common_crawl")] - 0.29) < 0.08 and share[names.index("arxiv")] > 0.15


def test_longllama_mixture_bad_input_names_the_field_or_file(tmp_path, byte_vocab):
  paths = _longllama_files(tmp_path)
  data_dir = str(tmp_path / "data")
  with pytest.raises(ValueError, match="config.data.subset_paths.wikipedia: expected a path or glob"):
    pipeline.documents("mixture:longllama", "train", byte_vocab, data_dir,
                       subset_paths={k: v for k, v in paths.items() if k != "wikipedia"})
  missing = {**paths, "book": str(tmp_path / "nowhere" / "*.jsonl")}
  with pytest.raises(FileNotFoundError, match=r"config.data.subset_paths.book: redpajama corpus: no files match"):
    pipeline.documents("mixture:longllama", "train", byte_vocab, data_dir, subset_paths=missing)
  short = {**paths, "github": _redpajama(tmp_path / "short", "github", 5, 3, "")}
  with pytest.raises(ValueError, match=r"\(redpajama:.*github_0000.jsonl\) split 'train' has no documents of at "
                     r"least min_length=2048"):
    pipeline.documents("mixture:longllama", "train", byte_vocab, data_dir, subset_paths=short)
  bad = write_jsonl(str(tmp_path / "corrupt" / "c4_0000.jsonl.gz"), texts("c4", 40, 60))
  with open(bad, "r+b") as f:
    f.truncate(200)
  with pytest.raises(ValueError, match=rf"{bad}: corrupt gzip data"):
    pipeline.documents("mixture:longllama", "train", byte_vocab, data_dir, subset_paths={**paths, "c4": bad})
  assert token_cache.is_complete(cache_build.task_cache_path(
      data_dir, tasks.register_text_task(f"redpajama:{paths['arxiv']}", byte_vocab, data_dir, 0), "train"))


@pytest.mark.slow  # each spawned builder imports TensorFlow and seqio (~2 min on one busy core)
def test_missing_cache_is_built_by_local_processes(tmp_path, byte_vocab):
  d = tmp_path / "rp"
  for f in range(3):
    write_jsonl(str(d / f"part{f}.jsonl"), texts(f"p{f}", 5, 4))
  name = f"redpajama:{d}/*.jsonl"
  two = pipeline.documents(name, "train", byte_vocab, str(tmp_path / "two"), cache_processes=2)
  one = pipeline.documents(name, "train", byte_vocab, str(tmp_path / "one"))
  assert len(two.shards) == 2 and len(one.shards) == 1
  assert [two[i]["targets"].tolist() for i in range(len(two))] == [one[i]["targets"].tolist() for i in range(len(one))]
