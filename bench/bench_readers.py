"""Reader throughput per host against what the LongLLaMA-3B step consumes per host.

The cached reader is the DocumentBatcher over the stdlib train token cache; the streaming reader is the
StreamingBatcher over the same documents written as JSONL.zst files (decompression and tokenization included).
Both produce one host's rows of the paper's batch (default: 16 rows of k=4 x 2048 tokens, i.e. 128 entries over
8 hosts). The per-host need is tokens/s/chip x chips per host of the LongLLaMA-3B step (default: the fastest
estimate in docs/TPU.md, v5p-64 at 8,471 tokens/s/chip, 4 chips per host); headroom = reader / need (target >= 10).

With --workers=0,4 the streaming reader is timed once per count of tokenizing threads (0: inline) and each
count's tokens/s is reported as a ratio to the first; --no_cached skips the cached reader.

Run: python bench/bench_readers.py [--batches=20 --workers=0,4 --no_cached --json=PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def parse_args():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--rows", type=int, default=16, help="batch rows of one host")
  p.add_argument("--seq_len", type=int, default=2048)
  p.add_argument("--k", type=int, default=4)
  p.add_argument("--batches", type=int, default=20, help="batches timed per reader, from the first")
  p.add_argument("--vocab", default="stdlib_sp2000")
  p.add_argument("--data_dir", default=None)
  p.add_argument("--stream_files", type=int, default=4)
  p.add_argument("--tokens_per_chip_s", type=float, default=8471.0)
  p.add_argument("--chips_per_host", type=int, default=4)
  p.add_argument("--workers", default="0", help="comma-separated streaming tokenizer thread counts (0: inline)")
  p.add_argument("--no_cached", action="store_true", help="time the streaming reader only")
  p.add_argument("--json", default="", help="also write the results as JSON to this path")
  return p.parse_args()


def tokens_per_second(batcher, args) -> tuple[float, float]:
  """(tokens/s of wall time, tokens per second of this process's CPU time, all threads): on a shared, busy host
  the second says what one free core would give. Timed from the first batch: a streaming batcher reads nothing
  before it, so its tokenizer pool gets no head start."""
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(args.batches):
    next(batcher)
  tokens = args.batches * args.rows * args.seq_len
  return tokens / (time.perf_counter() - t0), tokens / (time.process_time() - c0)


def write_stream_corpus(root: str, n_files: int) -> str:
  """The stdlib train documents as n_files JSONL.zst files (round-robin); returns their glob."""
  import zstandard
  from fot_jax.data import corpora
  outs = [zstandard.ZstdCompressor().stream_writer(open(os.path.join(root, f"part{i:03d}.jsonl.zst"), "wb"))
          for i in range(n_files)]
  for j, (_, text) in enumerate(corpora.corpus_documents("stdlib", "train")):
    outs[j % n_files].write((json.dumps({"text": text}) + "\n").encode())
  for o in outs:
    o.close()
  return os.path.join(root, "*.jsonl.zst")


def main():
  args = parse_args()
  from fot_jax.data import pipeline, vocab as vocab_lib
  vocab = vocab_lib.build_vocabulary(vocab_lib.VocabConfig(name=args.vocab, data_dir=args.data_dir))
  shape = dict(batch_size=args.rows, seq_len=args.seq_len, k=args.k, data_dir=args.data_dir)
  timed = {}
  if not args.no_cached:
    timed["cached"] = tokens_per_second(pipeline.make_batcher("stdlib", "train", vocab, **shape), args)
  workers = [int(w) for w in args.workers.split(",")]
  with tempfile.TemporaryDirectory() as tmp:
    pattern = write_stream_corpus(tmp, args.stream_files)
    for w in workers:
      timed["streaming" + (f"_workers{w}" if w else "")] = tokens_per_second(
          pipeline.make_batcher(f"stream:jsonl:{pattern}", "train", vocab, stream_workers=w, **shape), args)
  need = args.tokens_per_chip_s * args.chips_per_host
  result = {"rows_per_host": args.rows, "seq_len": args.seq_len, "k": args.k, "need_tokens_per_s_per_host": need,
            "readers": {name: {"tokens_per_s": round(wall), "headroom": round(wall / need, 2),
                               "tokens_per_cpu_s": round(cpu), "headroom_per_busy_core": round(cpu / need, 2)}
                        for name, (wall, cpu) in timed.items()},
            "usable_cores": len(os.sched_getaffinity(0))}
  streams = [name for name in timed if name.startswith("streaming")]
  result["streaming_ratio_to_first"] = {name: round(timed[name][0] / timed[streams[0]][0], 2) for name in streams}
  for name, r in result["readers"].items():
    print(f"{name}: {r['tokens_per_s']:,} tokens/s per host = {r['headroom']}x the LongLLaMA-3B need of "
          f"{need:,.0f} tokens/s per host (target >= 10x); per CPU-second {r['tokens_per_cpu_s']:,} = "
          f"{r['headroom_per_busy_core']}x")
  if len(streams) > 1:
    print("streaming tokens/s relative to " + streams[0] + ": " + ", ".join(
        f"{name} {ratio}x" for name, ratio in result["streaming_ratio_to_first"].items()))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
