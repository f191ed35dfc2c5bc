"""Small corpus files in the layouts of RedPajama (JSONL, .gz, .zst) and The Stack (parquet, JSONL), written by
tests into a temporary directory."""

from __future__ import annotations

import gzip
import json
import os


def write_jsonl(path: str, records: list[dict]) -> str:
  """Writes records as JSONL, compressed by the suffix (.gz, .zst); returns path."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  data = "".join(json.dumps(r) + "\n" for r in records).encode()
  if path.endswith(".gz"):
    data = gzip.compress(data)
  elif path.endswith(".zst"):
    import zstandard
    data = zstandard.ZstdCompressor().compress(data)
  with open(path, "wb") as f:
    f.write(data)
  return path


def texts(prefix: str, n: int, words: int) -> list[dict]:
  """n {"text": ...} records; record i has words*(i+1) words, so lengths differ."""
  return [{"text": f"{prefix} {i}: " + " ".join(f"w{j}" for j in range(words * (i + 1)))} for i in range(n)]


def stack_records(repo: str, files: dict[str, str]) -> list[dict]:
  """The Stack-style records (the-stack-dedup column names) of one repository's files."""
  return [{"content": text, "max_stars_repo_name": repo, "max_stars_repo_path": path} for path, text in files.items()]


def write_parquet(path: str, records: list[dict]) -> str:
  import pyarrow as pa
  import pyarrow.parquet as pq
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pq.write_table(pa.Table.from_pylist(records), path, row_group_size=2)
  return path
