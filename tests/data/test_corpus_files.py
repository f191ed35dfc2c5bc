"""Corpus file readers: RedPajama JSONL in every compression, The Stack's per-subdirectory concatenation, the
hash split, and an error naming the file for every kind of bad input."""

import gzip
import os

import fsspec
import pytest

from fot_jax.data import corpus_files
from tests.data.corpus_fixtures import stack_records, texts, write_jsonl, write_parquet

pytest.importorskip("zstandard")


def test_plain_gz_and_zst_jsonl_read_the_same(tmp_path):
  records = texts("doc", 5, 3)
  got = [list(corpus_files.text_documents(write_jsonl(str(tmp_path / f"part.jsonl{ext}"), records)))
         for ext in ("", ".gz", ".zst")]
  assert [t for _, t in got[0]] == [r["text"] for r in records]
  assert [t for _, t in got[1]] == [t for _, t in got[0]] == [t for _, t in got[2]]
  assert got[2][3][0] == "part.jsonl.zst:3"


@pytest.mark.parametrize("ext", [".gz", ".zst"])
def test_corrupt_archive_names_the_file(tmp_path, ext):
  path = write_jsonl(str(tmp_path / f"bad.jsonl{ext}"), texts("doc", 50, 20))
  data = open(path, "rb").read()
  with open(path, "wb") as f:  # truncated mid-stream, then garbage
    f.write(data[: len(data) // 2] + b"\x00garbage" * 4)
  with pytest.raises(corpus_files.CorpusError, match=rf"{path}: corrupt {'gzip' if ext == '.gz' else 'zstd'}"):
    list(corpus_files.text_documents(path))


def test_empty_file_and_bad_records_name_the_file(tmp_path):
  empty = write_jsonl(str(tmp_path / "empty.jsonl.gz"), [])
  with pytest.raises(corpus_files.CorpusError, match=rf"{empty}: empty file"):
    list(corpus_files.text_documents(empty))
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"text": "ok"}\n{"text": \n')
  with pytest.raises(corpus_files.CorpusError, match=rf"{bad}:2: not a JSON object"):
    list(corpus_files.text_documents(str(bad)))
  nofield = write_jsonl(str(tmp_path / "nofield.jsonl"), [{"body": "x"}])
  with pytest.raises(corpus_files.CorpusError, match=r"record 0: expected a string field 'text'"):
    list(corpus_files.text_documents(nofield))
  with pytest.raises(FileNotFoundError, match="no files match"):
    corpus_files.files("redpajama", str(tmp_path / "nothing" / "*.jsonl"), "train")


def _stack_fixture():
  return (stack_records("org/a", {"pkg/x.py": "X = 1", "pkg/y.py": "Y = 2", "pkg/z.py": "Z = 3", "top.py": "T"})
          + stack_records("org/b", {"pkg/x.py": "BX"}))


def test_stack_concatenates_each_subdirectory_in_a_seeded_order(tmp_path):
  docs = dict(corpus_files.stack_documents(write_parquet(str(tmp_path / "s.parquet"), _stack_fixture())))
  assert list(docs) == ["org/a/pkg", "org/a/", "org/b/pkg"]
  pkg = docs["org/a/pkg"]
  for name, text in (("pkg/x.py", "X = 1"), ("pkg/y.py", "Y = 2"), ("pkg/z.py", "Z = 3")):
    assert f"# ---- {name} ----\n{text}" in pkg
  assert "BX" not in pkg and "T" not in pkg.replace("# ----", "")
  again = dict(corpus_files.stack_documents(write_jsonl(str(tmp_path / "s.jsonl"), _stack_fixture())))
  assert again == docs  # parquet and JSONL give the same documents; the order is seeded, not random per run
  other = dict(corpus_files.stack_documents(str(tmp_path / "s.jsonl"), seed=1))
  assert sorted(other["org/a/pkg"].split("\n")) == sorted(pkg.split("\n"))


def test_stack_parquet_without_the_columns_names_the_file(tmp_path):
  path = write_parquet(str(tmp_path / "bad.parquet"), [{"content": "x", "lang": "py"}])
  with pytest.raises(corpus_files.CorpusError, match=rf"{path}: expected columns 'content'"):
    list(corpus_files.stack_documents(path))


def test_hash_split_is_disjoint_and_covers_every_document(tmp_path):
  write_jsonl(str(tmp_path / "rp" / "a.jsonl"), texts("doc", 400, 1))
  pattern = str(tmp_path / "rp" / "*.jsonl")
  train = list(corpus_files.split_documents("redpajama", pattern, "train"))
  valid = list(corpus_files.split_documents("redpajama", pattern, "validation"))
  assert len(train) + len(valid) == 400 and 0 < len(valid) < 20 and not set(train) & set(valid)
  assert len(list(corpus_files.split_documents("jsonl", pattern, "validation"))) == 400  # jsonl: no hash split


def test_memory_filesystem_reads_through_the_same_code(tmp_path):
  path = write_jsonl(str(tmp_path / "m.jsonl.gz"), texts("mem", 3, 2))
  fsspec.filesystem("memory").pipe_file("/corpus/m.jsonl.gz", open(path, "rb").read())
  (found,) = corpus_files.files("redpajama", "memory://corpus/*.jsonl.gz", "train")
  assert found.startswith("memory://") and found.endswith("/corpus/m.jsonl.gz")
  got = [t for _, t in corpus_files.text_documents(found)]
  assert got == [r["text"] for r in texts("mem", 3, 2)]
  assert gzip.decompress(open(path, "rb").read()).count(b"\n") == 3 and os.path.getsize(path) > 0


def _spanning_fixture():
  """Three repositories; org/a/pkg's files lie in both data files, org/b's only in the first."""
  first = (stack_records("org/a", {"pkg/x.py": "X = 1", "pkg/y.py": "Y = 2"})
           + stack_records("org/b", {"lib/u.py": "U"}) + stack_records("org/a", {"top.py": "T"}))
  second = stack_records("org/c", {"c.py": "C"}) + stack_records("org/a", {"pkg/z.py": "Z = 3"})
  return first, second


@pytest.mark.parametrize("second_ext", ["parquet", "jsonl"])
def test_stack_subdirectory_spanning_two_files_is_one_document(tmp_path, second_ext):
  first, second = _spanning_fixture()
  write_parquet(str(tmp_path / "two" / "part0.parquet"), first)
  writer = write_parquet if second_ext == "parquet" else write_jsonl
  writer(str(tmp_path / "two" / f"part1.{second_ext}"), second)
  got = list(corpus_files.stack_subdirectories(corpus_files.files("stack", str(tmp_path / "two" / "*"), "train")))
  # each subdirectory once, as soon as its last member is read; ranks 0, 1, ...
  assert [(rank, key) for rank, key, _ in got] == [(0, "org/b/lib"), (1, "org/a/"), (2, "org/c/"), (3, "org/a/pkg")]
  pkg = got[3][2]
  assert sorted(pkg.split("\n")) == sorted("# ---- pkg/x.py ----\nX = 1\n# ---- pkg/y.py ----\nY = 2\n"
                                           "# ---- pkg/z.py ----\nZ = 3".split("\n"))
  one = dict(corpus_files.stack_documents(write_parquet(str(tmp_path / "one.parquet"), first + second)))
  assert one["org/a/pkg"] == pkg  # the seeded order depends on the subdirectory, not on how files split it
  again = corpus_files.stack_subdirectories(corpus_files.files("stack", str(tmp_path / "two" / "*"), "train"))
  assert list(again) == got  # deterministic


def test_stack_shards_partition_the_subdirectories_and_read_only_their_files(tmp_path, monkeypatch):
  first, second = _spanning_fixture()
  paths = [write_parquet(str(tmp_path / "s" / "part0.parquet"), first),
           write_jsonl(str(tmp_path / "s" / "part1.jsonl"), second)]
  whole = list(corpus_files.sharded_documents("stack", str(tmp_path / "s" / "*"), "train"))
  content_reads = []
  real = corpus_files._stack_records

  def recording(path, text=True, wanted=None):
    rows = [i for i, _ in real(path, text, wanted)]
    if text:
      content_reads.append((path, rows))
    return real(path, text, wanted)
  monkeypatch.setattr(corpus_files, "_stack_records", recording)
  shards = [list(corpus_files.sharded_documents("stack", str(tmp_path / "s" / "*"), "train", i, 2))
            for i in range(2)]
  assert sorted(shards[0] + shards[1]) == sorted(whole) and len(whole) == 4
  assert [p for p, _ in shards[0]] == [0, 1] and [p for p, _ in shards[1]] == [2, 3]  # by the last member's file
  # only the parquet row groups (2 rows each) holding a shard's rows: shard 0 its subdirectories' (rows 2, 3),
  # shard 1 org/a/pkg's in the first file (rows 0, 1) and the whole JSONL second file
  assert content_reads == [(paths[0], [2, 3]), (paths[0], [0, 1]), (paths[1], [0, 1])]
