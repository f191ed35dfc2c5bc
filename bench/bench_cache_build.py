"""Parallel token-cache build: wall time of building the stdlib train cache with 1, 2 and 4 local processes
(each runs `python -m fot_jax.data.cache_build` on its own shards), the speed-up over 1, and a check that every
build lists the same documents.

Run: python bench/bench_cache_build.py [--processes=1,2,4 --vocab=stdlib_sp2000 --json=PATH]
The corpus and vocabulary are prepared first (not timed); each build writes a fresh cache in a temporary
directory. The time includes each process's start-up (Python, TensorFlow and seqio imports), as a real launch
pays it. Speed-up needs as many free cores as processes: the host's core count is reported beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def parse_args():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--processes", default="1,2,4")
  p.add_argument("--task", default="stdlib")
  p.add_argument("--vocab", default="stdlib_sp2000")
  p.add_argument("--split", default="train")
  p.add_argument("--data_dir", default=None)
  p.add_argument("--json", default="", help="also write the results as JSON to this path")
  return p.parse_args()


def cache_digest(cache: str) -> tuple[int, int, str]:
  """(documents, tokens, sha1 of every document's tokens in order) of a finished cache."""
  from fot_jax.data.token_cache import CachedDocuments
  docs = CachedDocuments(cache)
  h = hashlib.sha1()
  for i in range(len(docs)):
    h.update(np.ascontiguousarray(docs[i]["targets"]).tobytes())
  return len(docs), docs.num_tokens, h.hexdigest()


def timed_build(args, n: int, root: str) -> float:
  cmd = [sys.executable, "-m", "fot_jax.data.cache_build", f"--task={args.task}", f"--vocab={args.vocab}",
         f"--split={args.split}", f"--num_shards={n}", f"--process_count={n}", f"--cache_root={root}"]
  if args.data_dir:
    cmd.append(f"--data_dir={args.data_dir}")
  t0 = time.perf_counter()
  procs = [subprocess.Popen(cmd + [f"--process_index={p}"], stdout=subprocess.DEVNULL) for p in range(n)]
  codes = [p.wait() for p in procs]
  if any(codes):
    raise SystemExit(f"cache_build with {n} processes failed: exit codes {codes}")
  return time.perf_counter() - t0


def main():
  args = parse_args()
  from fot_jax.data import cache_build, corpora, pipeline, vocab as vocab_lib
  counts = [int(x) for x in args.processes.split(",")]
  data_dir = args.data_dir or corpora.default_data_dir()
  vocab = vocab_lib.build_vocabulary(vocab_lib.VocabConfig(name=args.vocab, data_dir=args.data_dir))
  (task,) = pipeline.cache_task_names(args.task, vocab, data_dir, split=args.split)  # prepares the corpus
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for n in counts:
      root = os.path.join(tmp, f"p{n}")
      seconds = timed_build(args, n, root)
      docs, tokens, digest = cache_digest(cache_build.task_cache_path(root, task, args.split))
      rows.append({"processes": n, "seconds": round(seconds, 2), "documents": docs, "tokens": tokens,
                   "digest": digest})
  base = rows[0]["seconds"]
  for r in rows:
    r["speedup"] = round(base / r["seconds"], 2)
  result = {"task": task, "split": args.split, "cpu_count": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "identical": len({r["digest"] for r in rows}) == 1,
            "builds": rows}
  for r in rows:
    print(f"{r['processes']} processes: {r['seconds']:.1f} s, speed-up {r['speedup']:.2f}x, {r['documents']} docs, "
          f"{r['tokens']} tokens")
  print(f"identical caches: {result['identical']}; cores usable by this run: {result['usable_cores']} "
        f"(of {result['cpu_count']})")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
