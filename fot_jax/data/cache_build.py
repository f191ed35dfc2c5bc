"""Builds the token cache of a task split in N shards, by N processes or hosts at once, resumably.

Shard i holds the documents at source positions i, i+N, ... (`tasks.task_documents`); the index written when
the last shard is done orders them by position, so the cache reads exactly like a single-process build, and
every batch is the same for any N. A crash loses only the shards being written: complete shards (those with
their meta.json) are kept and skipped on the next run; a half-written shard sits in a temporary directory that
no reader opens.

  python -m fot_jax.data.cache_build --task=stdlib --vocab=stdlib_sp2000 --split=train \\
      --num_shards=16 --process_index=$HOST --process_count=$HOSTS

Process p builds shards p, p+P, ...; whichever process completes the last shard writes the index.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from fot_jax.data import fs, token_cache


def task_cache_path(data_dir: str, task_name: str, split: str) -> str:
  return fs.join(data_dir, "tokens", f"v{token_cache.CACHE_VERSION}", task_name, split)


def build_shard(task_name: str, split: str, cache: str, shard: int, num_shards: int) -> bool:
  """Tokenizes shard `shard` of `num_shards` into the cache; False when it was already complete (skipped)."""
  from fot_jax.data import tasks
  path = token_cache.shard_path(cache, shard, num_shards)
  if token_cache.shard_complete(path):
    return False
  meta = {"task": task_name, "split": split, "vocab": tasks.task_vocab_tag(task_name), "shard": shard,
          "num_shards": num_shards}
  return token_cache.write_shard(path, tasks.task_documents(task_name, split, shard, num_shards), meta)


def existing_shard_count(cache: str) -> int | None:
  """The shard count of the shards already in a cache (a build to resume), None when there are none."""
  counts = {int(n.rsplit("-of-", 1)[1]) for n in fs.listdir(fs.join(cache, "shards")) if "-of-" in n
            and not n.startswith(".")}
  return max(counts) if counts else None


def build(task_name: str, split: str, cache: str, num_shards: int | None = None, process_index: int = 0,
          process_count: int = 1) -> dict | None:
  """Builds this process's shards, then the index if every shard is complete; returns index.json or None
  (other processes still building). num_shards=None resumes the shard count found in the cache (else 1)."""
  from fot_jax.data import tasks
  found = existing_shard_count(cache)
  num_shards = num_shards or found or 1
  check_counts(num_shards, process_index, process_count)
  if found is not None and found != num_shards:
    other = f"{found} shards"
    raise token_cache.CacheError(f"token cache {cache!r} holds a build in {other}, not {num_shards}; finish "
                                 f"it with --num_shards={found} or delete the cache")
  for shard in range(process_index, num_shards, process_count):
    build_shard(task_name, split, cache, shard, num_shards)
  if all(token_cache.shard_complete(token_cache.shard_path(cache, i, num_shards)) for i in range(num_shards)):
    return token_cache.write_index(cache, num_shards, tasks.task_vocab_tag(task_name))
  return None


def _build_in_child(register: Callable[[], str], task_name: str, split: str, cache: str, num_shards: int,
                    process_index: int, process_count: int) -> None:
  """A spawned local builder: registers the task in this fresh process, then builds its shards."""
  registered = register()
  if registered != task_name:
    raise ValueError(f"local cache builder registered task {registered!r}, expected {task_name!r}")
  build(task_name, split, cache, num_shards, process_index, process_count)


def build_local(task_name: str, split: str, cache: str, processes: int, register: Callable[[], str]) -> None:
  """Builds the cache with `processes` local processes (spawned, so no JAX or TF state is forked), each taking
  shards p, p+P, ... as `build` does on hosts; register is a picklable callable that registers the task in a
  fresh process and returns its name. An unfinished cache is completed with the shard count it holds."""
  import concurrent.futures
  import multiprocessing
  num_shards = existing_shard_count(cache) or processes
  workers = min(processes, num_shards)
  if workers == 1:  # an unfinished one-shard build: nothing to spread
    build(task_name, split, cache, num_shards)
    return
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
    jobs = [pool.submit(_build_in_child, register, task_name, split, cache, num_shards, p, workers)
            for p in range(workers)]
    for job in jobs:
      job.result()  # re-raises a builder's error here
  if not token_cache.is_complete(cache):  # every shard is done: the index, if no builder wrote it
    build(task_name, split, cache, num_shards)


def wait_complete(cache: str, timeout_s: float, poll_s: float = 2.0) -> None:
  """Blocks until the cache's index exists (other hosts finishing their shards); TimeoutError after timeout_s."""
  deadline = time.monotonic() + timeout_s
  while not token_cache.is_complete(cache):
    if time.monotonic() > deadline:
      raise TimeoutError(f"token cache {cache!r}: not complete after {timeout_s:.0f} s; are all builders running?")
    time.sleep(poll_s)


def check_counts(num_shards: int, process_index: int, process_count: int) -> None:
  if num_shards < 1:
    raise ValueError(f"--num_shards: expected >= 1, found {num_shards}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"--process_index: expected 0 <= index < --process_count={process_count}, found {process_index}")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m fot_jax.data.cache_build", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--task", required=True, help="a fot_jax.data.pipeline text source: stdlib, jsonl:<glob>, "
                 "redpajama:<glob>, stack:<glob>, a registered seqio task, or mixture:<name> (each subset)")
  p.add_argument("--vocab", required=True)
  p.add_argument("--split", default="train")
  p.add_argument("--data_dir", default=None, help="default $FOT_JAX_DATA_DIR or ~/.cache/fot_jax; any fsspec URL")
  p.add_argument("--cache_root", default=None, help="where tokens/ is written (default: the data dir)")
  p.add_argument("--num_shards", type=int, default=1)
  p.add_argument("--process_index", type=int, default=0)
  p.add_argument("--process_count", type=int, default=1)
  p.add_argument("--subset_paths", default="", help="mixture subsets: 'name=<glob>,name=<glob>'")
  p.add_argument("--min_length", type=int, default=0)
  from fot_jax import cli
  cli.add_debug_flag(p)
  args = p.parse_args(argv)
  return cli.run(lambda: _build_all(args), prog="fot_jax.data.cache_build", debug=args.debug,
                 also=(ValueError, FileNotFoundError))


def _build_all(args: argparse.Namespace) -> None:
  """Checks the flags, then builds this process's shards of every cache the task needs."""
  from fot_jax.data import corpora, pipeline, vocab as vocab_lib
  check_counts(args.num_shards, args.process_index, args.process_count)
  data_dir = args.data_dir or corpora.default_data_dir()
  vocab = vocab_lib.build_vocabulary(vocab_lib.VocabConfig(name=args.vocab, data_dir=args.data_dir))
  subsets = pipeline.parse_subset_paths(args.subset_paths) if args.subset_paths else None
  names = pipeline.cache_task_names(args.task, vocab, data_dir, args.min_length, subsets)
  for name in names:
    cache = task_cache_path(args.cache_root or data_dir, name, args.split)
    info = build(name, args.split, cache, args.num_shards, args.process_index, args.process_count)
    print(f"{cache}: " + (f"{info['num_docs']} documents, {info['num_tokens']} tokens" if info
                          else "this process's shards done; the index is written by the last builder"))


if __name__ == "__main__":
  sys.exit(main())
