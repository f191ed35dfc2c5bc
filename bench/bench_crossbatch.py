"""Crossbatch memory-layer attention, dense vs chunked: fwd+bwd time and peak memory against d.

Run: python bench/bench_crossbatch.py --seq_len=512 --ds=1,4,16,64
Each d uses the smallest micro-batch that holds d additional contexts (B = d + 1) with the released plan
(k = 1: every entry sees its d predecessors). Time is the median wall time of jit(value_and_grad(sum(out *
probe))) over --repeats runs after one warm-up; both paths are timed side by side in this one process. Peak
memory is XLA's compiled plan (temp + argument + output bytes), so it exists even where dense cannot run.
Targets: at d=64 chunked peak <= 1/4 of dense; chunked time <= 1.5x dense wherever dense fits.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fot_jax.model.attention import crossbatch_attention_dense
from fot_jax.model.chunked_attention import crossbatch_attention_chunked
from fot_jax.model.crossbatch import released_plan

MIB = 2.0 ** 20


def parse_args():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--seq_len", type=int, default=512)
  p.add_argument("--ds", type=str, default="1,4,16,64", help="comma-separated crossbatch dimensions d")
  p.add_argument("--heads", type=int, default=4, help="query heads H")
  p.add_argument("--kv_heads", type=int, default=0, help="kv heads K (0: = heads, MHA)")
  p.add_argument("--head_dim", type=int, default=64)
  p.add_argument("--batch", type=int, default=0, help="micro-batch size (0: d + 1 for each d)")
  p.add_argument("--chunk_size", type=str, default="256", help="comma-separated key-block sizes to compare")
  p.add_argument("--dtype", type=str, default="float32", choices=("float32", "bfloat16"))
  p.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median reported)")
  p.add_argument("--max_dense_gib", type=float, default=8.0,
                 help="skip running dense where its compiled peak exceeds this many GiB (memory still reported)")
  p.add_argument("--max_seconds", type=float, default=20.0,
                 help="a run longer than this ends the repeats for its cell (the warm-up run counts)")
  return p.parse_args()


def make_inputs(batch, length, heads, kv_heads, head_dim, d, dtype, seed=0):
  rng = np.random.default_rng(seed)
  plan = released_plan(batch, 1, d)
  shapes = [(batch, length, n, head_dim) for n in (heads, kv_heads, kv_heads, kv_heads)]
  q, k_local, k_mem, v = (jnp.asarray(rng.normal(size=s), dtype) for s in shapes)
  probe = jnp.asarray(rng.normal(size=shapes[0]), dtype)
  key_valid = jnp.ones((batch, length), bool)
  return (q, k_local, k_mem, v), (key_valid, jnp.asarray(plan.visible)), probe


def fwd_bwd(attn, scale):
  """jit(value_and_grad) of sum(out * probe) wrt q, k_local, k_mem, v."""

  def loss(q, k_local, k_mem, v, key_valid, visible, probe):
    out = attn(q, k_local, k_mem, v, key_valid, visible, scale)
    return jnp.sum(out.astype(jnp.float32) * probe.astype(jnp.float32))

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))


def measure(fn, args, repeats, max_seconds, max_peak=None):
  """Compiles and reads the plan's peak bytes; then, unless the peak exceeds max_peak, the median wall seconds
  of `repeats` calls. Returns (seconds or None, peak bytes or None, note)."""
  compiled = fn.lower(*args).compile()
  mem = compiled.memory_analysis()
  peak = None
  if mem is not None:
    peak = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
  if max_peak is not None and peak is not None and peak > max_peak:
    return None, peak, "skipped"
  try:
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))  # warm-up
    if time.perf_counter() - t0 > max_seconds:  # a slow cell: the warm-up run is the measurement
      return time.perf_counter() - t0, peak, "1 run"
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      times.append(time.perf_counter() - t0)
      if times[-1] > max_seconds:
        break
    return statistics.median(times), peak, ""
  except Exception as e:  # XlaRuntimeError RESOURCE_EXHAUSTED and friends
    if "RESOURCE_EXHAUSTED" in str(e) or "memory" in str(e).lower():
      return None, peak, "OOM"
    raise


def fmt(x, spec):
  """Formats a number, or '-' right-aligned to the same width."""
  return format(x, spec) if x is not None else format("-", ">" + spec.split(".")[0])


def main():
  args = parse_args()
  ds = [int(x) for x in args.ds.split(",") if x]
  chunks = [int(x) for x in args.chunk_size.split(",") if x]
  kv_heads = args.kv_heads or args.heads
  dtype = jnp.dtype(args.dtype)
  scale = args.head_dim ** -0.5
  print(f"device={jax.devices()[0].device_kind} L={args.seq_len} H={args.heads} K={kv_heads} "
        f"hd={args.head_dim} dtype={args.dtype} repeats={args.repeats} B={'d+1' if not args.batch else args.batch}")
  header = (f"{'d':>3} {'B':>3} {'chunk':>5} {'dense s':>9} {'chunked s':>9} {'t ratio':>7} "
            f"{'dense MiB':>10} {'chunk MiB':>10} {'mem ratio':>9}  note")
  print(header)
  print("-" * len(header))
  results = []
  for d in ds:
    batch = args.batch or d + 1
    arrays, plan, probe = make_inputs(batch, args.seq_len, args.heads, kv_heads, args.head_dim, d, dtype)
    call = arrays + plan + (probe,)
    t_dense, dense_peak, dense_note = measure(fwd_bwd(crossbatch_attention_dense, scale), call, args.repeats,
                                              args.max_seconds, args.max_dense_gib * 2 ** 30)
    for cs in chunks:
      attn = lambda *a, cs=cs: crossbatch_attention_chunked(*a, chunk_size=cs)
      t_chunk, chunk_peak, chunk_note = measure(fwd_bwd(attn, scale), call, args.repeats, args.max_seconds)
      t_ratio = t_chunk / t_dense if (t_chunk and t_dense) else None
      m_ratio = chunk_peak / dense_peak if (chunk_peak and dense_peak) else None
      note = ", ".join(x for x in (f"dense {dense_note}" if dense_note else "",
                                   f"chunked {chunk_note}" if chunk_note else "") if x)
      print(f"{d:>3} {batch:>3} {cs:>5} {fmt(t_dense, '9.3f')} {fmt(t_chunk, '9.3f')} {fmt(t_ratio, '7.2f')} "
            f"{fmt(dense_peak and dense_peak / MIB, '10.1f')} {fmt(chunk_peak and chunk_peak / MIB, '10.1f')} "
            f"{fmt(m_ratio, '9.3f')}  {note}", flush=True)
      results.append((d, cs, t_ratio, m_ratio))
  # Targets, per chunk size.
  for cs in chunks:
    rows = [r for r in results if r[1] == cs]
    mem64 = [r[3] for r in rows if r[0] == 64 and r[3] is not None]
    times = [r[2] for r in rows if r[2] is not None]
    mem_ok = "n/a (d=64 not measured)" if not mem64 else f"{all(m <= 0.25 for m in mem64)} ({max(mem64):.3f})"
    time_ok = "n/a" if not times else f"{all(t <= 1.5 for t in times)} (worst {max(times):.2f}x)"
    print(f"chunk={cs}: target peak memory at d=64 <= 1/4 dense: {mem_ok}; "
          f"target time <= 1.5x dense where dense ran: {time_ok}")


if __name__ == "__main__":
  main()
