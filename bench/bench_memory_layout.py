"""The dense memory read in the layout and dot form the product uses, against the alternatives it replaced.

  python bench/bench_memory_layout.py [--slots=16k,32k] [--queries=512,1] [--heads=4] [--head_dim=64] [--json=PATH]

Side by side in one process, on the same float32 keys and values, per (slots, queries) cell:
  head-major   memory [Nm, B, K, C, hd], memory_attention.dense_memory_stats as the inference steps run it (for
               few queries on CPU: one 2-D dot per (batch row, kv head));
  batched      the same memory, one batched dot for every (row, head) (PER_HEAD_DOTS = 0): what a few-query step
               would cost without the per-head dots (equal to head-major for many queries);
  token-major  memory [Nm, B, C, K, hd], each block read as [B, block, K, hd] and contracted by one einsum (the
               layout before head-major: every block is transposed ahead of its dot).
Every function is compiled like the product (step_jit.MemoryStepJit) and checked against head-major (max abs
difference printed). Reported: CPU milliseconds per call, each alternative's time over head-major's, and each
compiled form's count of batched dots (the check that the forms differ as named).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ is a folder of scripts, not a package
from bench_sizes import parse_size  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--slots", default="16k,32k", help="memory slots (a multiple of --block)")
  p.add_argument("--queries", default="512,1", help="queries per call (512: an encoding window; 1: generation)")
  p.add_argument("--heads", type=int, default=4, help="kv heads (one query head per kv head)")
  p.add_argument("--head_dim", type=int, default=64)
  p.add_argument("--block", type=int, default=512, help="memory keys per block (widened for few queries)")
  p.add_argument("--repeats", type=int, default=0, help="calls timed per cell (0: enough for ~2 s)")
  p.add_argument("--json", default=None, help="write the table here")
  args = p.parse_args(argv)
  try:
    args.slots = [parse_size(s) for s in args.slots.split(",") if s.strip()]
    args.queries = [int(s) for s in args.queries.split(",") if s.strip()]
  except ValueError as e:
    p.error(f"--slots/--queries: expected comma-separated sizes ({e})")
  if not args.slots or min(args.slots) <= 0 or any(s % args.block for s in args.slots):
    p.error(f"--slots={args.slots}: positive multiples of --block={args.block} expected")
  if not args.queries or min(args.queries) <= 0:
    p.error(f"--queries={args.queries}: positive counts expected")
  if args.heads <= 0 or args.head_dim <= 0 or args.block <= 0 or args.repeats < 0:
    p.error("--heads, --head_dim and --block must be positive, --repeats non-negative")
  return args


def token_major_stats(qg, mem_k, mem_v, mem_valid, fill, scale: float, block: int):
  """The dense read over token-major memory [Nm, B, C, K, hd] (layer 0): the block transposed for each dot."""
  import jax
  import jax.numpy as jnp
  from fot_jax.model import memory_attention as ma
  b, t, kh, g, hd = qg.shape

  def read(a, i):  # [B, block, K, hd]
    return jax.lax.dynamic_slice(a, (0, 0, i * block, 0, 0), (1, b, block, kh, hd))[0]

  def body(i, carry):
    logits = jnp.einsum("btkgd,bmkd->bkgtm", qg, read(mem_k, i), preferred_element_type=jnp.float32) * scale
    logits = jnp.where(jax.lax.dynamic_slice_in_dim(mem_valid, i * block, block, 1)[:, None, None, None], logits,
                       ma.MASK_VALUE)
    return ma.merge(carry, ma.stats_of(logits, read(mem_v, i)))

  return jax.lax.fori_loop(0, (fill + block - 1) // block, body, ma.empty_stats(b, kh, g, t, hd))


def batched_dots(hlo: str) -> int:
  """Dot instructions with batch dimensions in compiled HLO text (the per-head form has none on the memory)."""
  return sum(1 for line in hlo.splitlines() if " dot(" in line and "lhs_batch_dims" in line)


def timed(fn, *args, repeats: int) -> float:
  """CPU seconds per call (after one call that compiles)."""
  import jax
  jax.block_until_ready(fn(*args))
  n = repeats
  if not n:
    start = time.process_time()
    jax.block_until_ready(fn(*args))
    n = max(1, min(200, int(2.0 / max(time.process_time() - start, 1e-4))))
  start = time.process_time()
  for _ in range(n):
    jax.block_until_ready(fn(*args))
  return (time.process_time() - start) / n


def cell(args, slots: int, queries: int) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from fot_jax.model import memory_attention as ma
  from fot_jax.model.step_jit import MemoryStepJit
  kh, hd, scale = args.heads, args.head_dim, args.head_dim ** -0.5
  rng = np.random.default_rng(slots + queries)
  keys, values = (rng.standard_normal((1, 1, kh, slots, hd)).astype(np.float32) for _ in range(2))
  head_major = [jnp.asarray(a) for a in (keys, values)]
  token_major = [jnp.asarray(np.ascontiguousarray(np.swapaxes(a, 2, 3))) for a in (keys, values)]
  qg = jnp.asarray(rng.standard_normal((1, queries, kh, 1, hd)), jnp.float32)
  valid = jnp.ones((1, slots), bool)
  block = ma.widened_block(args.block, queries, slots)

  def product():  # a new function object each time: jit caches traces per function, and the two forms differ
    return lambda qg, mem_k, mem_v, valid: ma.finish(
        ma.dense_memory_stats(qg, mem_k, mem_v, valid, slots, scale, block, jnp.float32))

  def old(qg, mem_k, mem_v, valid):
    return ma.finish(token_major_stats(qg, mem_k, mem_v, valid, slots, scale, block))

  fns = {"head-major": (MemoryStepJit(product()), head_major), "token-major": (MemoryStepJit(old), token_major),
         "batched": (MemoryStepJit(product()), head_major)}
  row = dict(slots=slots, queries=queries, block=block, ms={}, max_abs_diff={}, batched_dots={})
  for name, (fn, memory) in fns.items():
    saved = ma.PER_HEAD_DOTS
    ma.PER_HEAD_DOTS = 0 if name == "batched" else saved
    try:  # traced (and compiled) here, once: the batched form keeps its setting afterwards
      row["batched_dots"][name] = batched_dots(fn.lower(qg, *memory, valid).compile().as_text())
      jax.block_until_ready(fn(qg, *memory, valid))
    finally:
      ma.PER_HEAD_DOTS = saved
  reference = np.asarray(fns["head-major"][0](qg, *head_major, valid))
  for name, (fn, memory) in fns.items():
    row["max_abs_diff"][name] = float(np.abs(np.asarray(fn(qg, *memory, valid)) - reference).max())
    row["ms"][name] = timed(fn, qg, *memory, valid, repeats=args.repeats) * 1e3
  row["over_head_major"] = {k: v / row["ms"]["head-major"] for k, v in row["ms"].items()}
  print(f"  {slots:>9,} slots {queries:>4} queries (block {block}): " + "  ".join(
      f"{k} {v:8.2f} ms ({row['over_head_major'][k]:.2f}x)" for k, v in row["ms"].items())
        + f"  max|diff| {max(row['max_abs_diff'].values()):.1e}  batched dots {row['batched_dots']}", flush=True)
  return row


def main(argv=None) -> dict:
  args = parse_args(argv)
  import jax
  print(f"backend {jax.default_backend()}, {args.heads} kv heads of {args.head_dim}, float32 memory; CPU ms per "
        f"call, and each form's time over head-major's")
  rows = [cell(args, s, q) for s in args.slots for q in args.queries]
  table = dict(rows=rows, args={k: v for k, v in vars(args).items() if k != "json"})
  if args.json:
    with open(args.json, "w") as f:
      json.dump(table, f, indent=1)
    print(f"wrote {args.json}")
  return table


if __name__ == "__main__":
  main()
