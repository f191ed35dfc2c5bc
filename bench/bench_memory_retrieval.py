"""Memory retrieval at scale through the product's streamed memory attention: dense vs exact vs approximate top-k,
and exact vs an IVF index.

  python bench/bench_memory_retrieval.py [--sizes=64k,1M,16M] [--queries=1024] [--k=64] [--block=262144]
  python bench/bench_memory_retrieval.py --sizes=100M --shards=8 --queries=16 --block=65536 \
      --mem_dtype=float32 --head_dim=8                                            # memory sharded over 8 devices
  python bench/bench_memory_retrieval.py --sizes=1M,16M --index=ivf [--nlist=4096] [--nprobe=32,64]
      [--balance=none,1.25] [--keys=clustered]
  python bench/bench_memory_retrieval.py --sizes=100M --shards=8 --index=ivf --mem_dtype=float32 --head_dim=8 \
      --nlist=1024 --nprobe=16 --queries=64 --block=65536            # index sharded over 8 devices
  [--json=PATH] writes the table.

Times (process CPU seconds, all threads) fot_jax.model.memory_attention, the code MemoryInference runs for a memory layer: the online-softmax
dense read (dense_memory_stats), and the running top-k over memory blocks (topk_memory_logits; approximate =
bin-max selection per block). Measured side by side in one run: CPU seconds per 1k queries, compiled peak memory per
device (temporaries + arguments + outputs), recall of approximate vs exact top-k. With --shards=N the memory is
sharded over N (fake CPU) devices and the full memory_attention runs under shard_map (log-sum-exp / top-k merge
across devices); recall of approximate vs exact top-k is then measured on the first --recall_queries queries (one
more pass of each over the whole memory). Tiny heads (default head_dim 16, one kv head, bf16 keys and values) so
100M keys fit this CPU. Every measured function is compiled as the inference steps are (step_jit.MemoryStepJit: on
CPU, bf16 memory is converted one block at a time, not copied whole).
With --index=ivf (bench/ivf_comparison.py), exact top-k (topk_memory_logits) and the IVF search (ivf_memory_logits:
nprobe of nlist lists per query, per device) run side by side on the same keys and queries: seconds per 1k
queries, their ratio and recall@k of IVF against exact; the index build (k-means + filing every key, through
MemoryIndexer) is timed on its own. With --shards both select per device and merge across devices. One index is
built per --balance (lists capped at that multiple of the mean length, `none`: uncapped) and probed at every
--nprobe, so the rows compare side by side on the same keys and queries. --keys picks the
data: `clustered` (default; a Gaussian mixture, --clusters centres independent of nlist, --spread within-cluster
standard deviation, queries drawn from the same mixture) or `gaussian` (isotropic, the hard case for any index).
Targets: approximate >= 3x exact end to end at recall >= 0.95 at 16M keys; 100M keys sharded over 8 devices
without running out of memory, peak memory per device reported.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ is a folder of scripts, not a package
from bench_sizes import parse_size  # noqa: E402

BALANCE_DEFAULT = None  # fot_jax.model.ivf.BALANCE (not imported: parsing the flags stays free of JAX)


def default_nlist(size: int, nlist: int | None) -> int:
  """--nlist, or the power of two nearest sqrt(size) (the usual IVF balance of coarse and fine scoring)."""
  return nlist or 1 << round((size.bit_length() - 1) / 2)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sizes", default="64k,1M,16M")
  p.add_argument("--queries", type=int, default=1024)
  p.add_argument("--head_dim", type=int, default=16)
  p.add_argument("--k", type=int, default=64)
  p.add_argument("--block", type=int, default=1 << 18, help="memory keys scored at once")
  p.add_argument("--shards", type=int, default=1, help="devices the memory is sharded over (fake CPU devices)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--mem_dtype", choices=("bfloat16", "float32"), default="bfloat16",
                 help="memory keys and values (float32 avoids the CPU backend's float32 copy of bf16 memory)")
  p.add_argument("--recall_queries", type=int, default=16,
                 help="--shards > 1: recall of approximate vs exact top-k on the first this many queries")
  p.add_argument("--index", choices=("ivf",), default=None, help="compare exact top-k with an IVF index")
  p.add_argument("--nlist", type=int, default=None, help="--index=ivf lists (default: 2^round(log2(sqrt(size))))")
  p.add_argument("--nprobe", default="16", help="--index=ivf lists probed per query (comma list: one row each)")
  p.add_argument("--balance", default=str(BALANCE_DEFAULT).lower(),
                 help="--index=ivf list cap as a multiple of the mean list length, `none` for uncapped (comma list: "
                      "one index each, side by side)")
  p.add_argument("--keys", choices=("clustered", "gaussian"), default="clustered", help="--index=ivf key data")
  p.add_argument("--clusters", type=int, default=1000, help="--keys=clustered: mixture centres")
  p.add_argument("--spread", type=float, default=0.5, help="--keys=clustered: within-cluster std (centres: 1)")
  p.add_argument("--json", default=None, help="write the table here")
  args = p.parse_args(argv)
  sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
  for name in ("queries", "head_dim", "k", "block", "shards", "repeats", "recall_queries"):
    if getattr(args, name) <= 0:
      p.error(f"--{name}: expected a positive integer, found {getattr(args, name)}")
  if not sizes or min(sizes) <= 0:
    p.error(f"--sizes: expected positive sizes, found {args.sizes!r}")
  if args.k > min(sizes):
    p.error(f"--k={args.k}: top-k larger than the smallest memory (--sizes {min(sizes):,} keys)")
  bad = [s for s in sizes if s % args.shards or (s // args.shards) % min(args.block, s // args.shards)]
  if bad:
    p.error(f"--shards={args.shards}, --block={args.block}: every size must split into equal shards of whole blocks, "
            f"found {bad}")
  given = [f"--{n}" for n in ("nlist", "nprobe", "balance", "keys", "clusters", "spread")
           if getattr(args, n) != p.get_default(n)]
  args.nprobe = parse_ints(p, "nprobe", args.nprobe)
  args.balance = parse_balances(p, args.balance)
  if args.shards == 1 and args.recall_queries != p.get_default("recall_queries"):
    p.error(f"--recall_queries={args.recall_queries}: applies to sharded runs (--shards > 1); one device measures "
            f"recall on every query")
  if args.index is None:
    if given:
      p.error(f"{', '.join(given)}: configure the IVF comparison; add --index=ivf")
  else:
    for name in ("nlist", "clusters"):
      if getattr(args, name) is not None and getattr(args, name) <= 0:
        p.error(f"--{name}: expected a positive integer, found {getattr(args, name)}")
    nprobe = max(args.nprobe)
    if args.nlist is not None and nprobe > args.nlist:
      p.error(f"--nprobe={nprobe}: expected at most --nlist={args.nlist} lists")
    small = [s for s in sizes if nprobe > default_nlist(s // args.shards, args.nlist)]
    if small:
      p.error(f"--nprobe={nprobe}: more lists than sizes {small} have per device "
              f"(nlist {default_nlist(small[0] // args.shards, None)})")
  args.sizes = sizes
  return args


def parse_ints(p, name: str, text: str) -> list:
  """A comma list of positive integers for flag --name."""
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    values = []
  if not values or min(values) <= 0:
    p.error(f"--{name}: expected positive integers separated by commas, found {text!r}")
  return values


def parse_balances(p, text: str) -> list:
  """--balance: a comma list of list caps (multiples of the mean list length, >= 1) or `none` (uncapped)."""
  values = []
  for v in (v.strip().lower() for v in text.split(",") if v.strip()):
    try:
      values.append(None if v == "none" else float(v))
    except ValueError:
      values.append(0.0)
    if values[-1] is not None and not values[-1] >= 1.0:
      p.error(f"--balance: expected `none` or numbers >= 1 (a multiple of the mean list length), found {text!r}")
  if not values:
    p.error(f"--balance: expected `none` or numbers >= 1, found {text!r}")
  return values


def timed(fn, *args, repeats: int) -> float:
  """Median process CPU seconds (all threads) of a call: a machine shared with other work does not bias it."""
  import jax
  jax.block_until_ready(fn(*args))  # compile + warm up
  times = []
  for _ in range(repeats):
    t0 = time.process_time()
    jax.block_until_ready(fn(*args))
    times.append(time.process_time() - t0)
  return statistics.median(times)


def peak_mib(fn, *args) -> float:
  """Compiled temporaries + arguments + outputs, per device (XLA reports the per-device program)."""
  analysis = fn.lower(*args).compile().memory_analysis()
  if analysis is None:
    return float("nan")
  total = analysis.temp_size_in_bytes + analysis.argument_size_in_bytes + analysis.output_size_in_bytes
  return total / 2**20


def hashed_normal(seed, shape):
  """Pseudo-random bf16 values (unit variance) from an elementwise integer hash of the position."""
  import jax
  import jax.numpy as jnp
  position = (jax.lax.broadcasted_iota(jnp.uint32, shape, 1) + seed) * jnp.uint32(shape[-1])
  idx = position + jax.lax.broadcasted_iota(jnp.uint32, shape, 3)
  h = idx * jnp.uint32(2654435761)
  h = h ^ (h >> 15)
  h = h * jnp.uint32(2246822519)
  h = h ^ (h >> 13)
  uniform = (h >> 8).astype(jnp.float32) / float(1 << 24)
  return ((uniform - 0.5) * 3.4641).astype(jnp.bfloat16)  # uniform on [-sqrt(3), sqrt(3)): variance 1


def sharded_normal(seed, size: int, head_dim: int, mesh, dtype, chunk: int = 1 << 16):
  """[1, 1, size, 1, head_dim] pseudo-random values of dtype (a one-layer stacked memory, as memory layers read it)
  sharded along the slots over the mesh, written chunk by chunk per device: no temporaries of a device's whole part,
  and no reshape of the sharded array later (which would copy it)."""
  import math
  import jax
  import jax.numpy as jnp
  from jax.sharding import PartitionSpec as P
  local = size // mesh.size
  chunk = math.gcd(local, chunk)

  def fill(seed):
    base = jax.lax.axis_index("memory").astype(jnp.uint32) * jnp.uint32(local)

    def body(i, buf):
      part = hashed_normal(seed + base + jnp.uint32(i * chunk), (1, 1, chunk, head_dim)).astype(dtype)
      return jax.lax.dynamic_update_slice(buf, part[None], (0, 0, 0, i * chunk, 0))

    return jax.lax.fori_loop(0, local // chunk, body, jnp.zeros((1, 1, 1, local, head_dim), dtype))

  return jax.shard_map(fill, mesh=mesh, in_specs=P(), out_specs=P(None, None, None, "memory"), check_vma=False)(
      jnp.uint32(seed))


def one_device_fns(args, size):
  import jax.numpy as jnp
  from fot_jax.model import memory_attention as ma
  from fot_jax.model.step_jit import MemoryStepJit
  scale = args.head_dim ** -0.5
  block = min(args.block, size)

  def dense(qg, keys, values, valid):
    return ma.finish(ma.dense_memory_stats(qg, keys[None], values[None], valid, size, scale, block, jnp.float32))

  def topk(qg, keys, valid, approx):
    return ma.topk_memory_logits(qg, keys[None], valid, size, scale, args.k, block, approx)

  return (MemoryStepJit(dense), MemoryStepJit(functools.partial(topk, approx=False)),
          MemoryStepJit(functools.partial(topk, approx=True)))


def sharded_fns(args, size, mesh):
  """The full memory-layer attention with memory sharded over the mesh (one masked local key)."""
  import jax.numpy as jnp
  from fot_jax.model import memory_attention as ma
  from fot_jax.model.step_jit import MemoryStepJit
  scale = args.head_dim ** -0.5

  def attend(q, keys, values, valid, topk, approx):
    t = q.shape[1]
    local_k = jnp.zeros((1, 1, 1, args.head_dim), q.dtype)
    mask = jnp.zeros((1, t, 1), bool)  # no local key: memory only
    return ma.memory_attention(q, local_k, local_k, mask, keys, values, valid, size // args.shards, scale,
                               topk=topk, approx=approx, block=min(args.block, size // args.shards), mesh=mesh,
                               axis="memory", layer=0)

  return [MemoryStepJit(functools.partial(attend, topk=t, approx=a)) for t, a in ((None, False), (args.k, False),
                                                                             (args.k, True))]


def sharded_topk_slots(args, size, mesh, approx: bool):
  """Top-k memory slots of each query over the sharded memory: every device's running top-k (exact or bin-max
  approximate, as the memory layers select), merged across devices by value."""
  import jax
  from jax.sharding import PartitionSpec as P
  from fot_jax.model import memory_attention as ma
  from fot_jax.model.step_jit import MemoryStepJit
  local = size // args.shards

  def select(qg, keys, valid):
    return ma.topk_memory_logits(qg, keys, valid, local, args.head_dim ** -0.5, args.k, min(args.block, local),
                                 approx)

  import ivf_comparison
  per_device = ivf_comparison.merged_across_devices(select, local=local, k=args.k)

  in_specs = (P(), P(None, None, None, "memory"), P(None, "memory"))
  return MemoryStepJit(jax.shard_map(per_device, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False))


def result_table(rows: list, args) -> dict:
  """The rows with the process's peak resident memory and the arguments (what --json writes)."""
  peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return dict(rows=rows, peak_rss_mib=peak_rss, args={k: v for k, v in vars(args).items() if k != "json"})


def run(args) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  from fot_jax.model import retrieval

  mesh = None
  if args.shards > 1:
    if len(jax.devices()) < args.shards:
      raise SystemExit(f"--shards={args.shards}: only {len(jax.devices())} devices (set XLA_FLAGS="
                       f"--xla_force_host_platform_device_count={args.shards} on CPU)")
    mesh = jax.make_mesh((args.shards,), ("memory",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:args.shards])
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.standard_normal((1, args.queries, 1, args.head_dim)), jnp.float32)  # [B, T, H, hd]
  qg = q[:, :, :, None, :]  # [B, T, K, G, hd]
  rows = []
  print(f"backend {jax.default_backend()}, {args.shards} device(s), {args.queries} float32 queries, "
        f"keys and values {args.mem_dtype}, "
        f"head_dim {args.head_dim}, one kv head, k={args.k}, block {args.block}", flush=True)
  for size in args.sizes:
    # Keys and values as --mem_dtype (bf16: LongLLaMA's), generated in place (sharded when --shards > 1).
    shard = None if mesh is None else NamedSharding(mesh, P(None, "memory"))
    if mesh is None:
      make = jax.jit(lambda seed: jax.random.normal(jax.random.key(seed, impl="rbg"), (1, 1, size, args.head_dim),
                                                    args.mem_dtype))
    else:  # each device fills its part chunk by chunk: no temporaries of the whole memory (100M keys)
      make = jax.jit(functools.partial(sharded_normal, size=size, head_dim=args.head_dim, mesh=mesh,
                                       dtype=args.mem_dtype))
    keys, values = make(size), make(size + 1)
    valid = jax.jit(lambda: jnp.ones((1, size), bool), out_shardings=shard)()
    per_1k = 1024 / args.queries
    if mesh is None:
      dense, exact, approx = one_device_fns(args, size)
      calls = [(dense, (qg, keys, values, valid)), (exact, (qg, keys, valid)), (approx, (qg, keys, valid))]
    else:
      calls = [(fn, (q, keys, values, valid)) for fn in sharded_fns(args, size, mesh)]
    seconds = [timed(fn, *a, repeats=args.repeats) for fn, a in calls]
    peaks = [peak_mib(fn, *a) for fn, a in calls]
    row = dict(size=size, shards=args.shards, dense=seconds[0] * per_1k, exact=seconds[1] * per_1k,
               approx=seconds[2] * per_1k, speedup=seconds[1] / seconds[2], mem_dense=peaks[0], mem_exact=peaks[1],
               mem_approx=peaks[2], recall=None)
    if mesh is None:
      exact_slots = np.asarray(exact(qg, keys, valid)[1]).reshape(args.queries, args.k)
      approx_slots = np.asarray(approx(qg, keys, valid)[1]).reshape(args.queries, args.k)
      row["recall"] = retrieval.recall(jnp.asarray(approx_slots), jnp.asarray(exact_slots))
    else:  # sampled queries: one more exact and approximate pass over the whole memory
      nq = min(args.queries, args.recall_queries)
      slots = [sharded_topk_slots(args, size, mesh, a)(qg[:, :nq], keys, valid).reshape(nq, args.k)
               for a in (False, True)]
      row["recall"], row["recall_queries"] = retrieval.recall(slots[1], slots[0]), nq
    rows.append(row)
    rec = "n/a" if row["recall"] is None else f"{row['recall']:.3f}"
    print(f"  {size:>12,} keys: dense {row['dense']:.3f}s exact {row['exact']:.3f}s approx {row['approx']:.3f}s "
          f"(per 1k queries) recall {rec}", flush=True)
    del keys, values, valid
  return result_table(rows, args)


def report(table: dict) -> None:
  rows = table["rows"]
  print(f"{'keys':>13} {'shards':>6} {'dense s/1k q':>13} {'exact s/1k q':>13} {'approx s/1k q':>14} "
        f"{'exact/approx':>13} {'recall':>7} {'dense MiB/dev':>14} {'exact MiB/dev':>14} {'approx MiB/dev':>15}")
  for r in rows:
    rec = "n/a" if r["recall"] is None else f"{r['recall']:.3f}"
    print(f"{r['size']:>13,} {r['shards']:>6} {r['dense']:>13.3f} {r['exact']:>13.3f} {r['approx']:>14.3f} "
          f"{r['speedup']:>12.2f}x {rec:>7} {r['mem_dense']:>14.1f} {r['mem_exact']:>14.1f} {r['mem_approx']:>15.1f}")
  print(f"process peak resident memory: {table['peak_rss_mib']:.0f} MiB")
  largest = rows[-1]
  if largest["shards"] == 1:
    ok = largest["recall"] >= 0.95 and largest["speedup"] >= 3.0
    print(f"target at {largest['size']:,} keys: recall {largest['recall']:.3f} >= 0.95 and approx "
          f"{largest['speedup']:.2f}x faster than exact end to end (>= 3x): {'PASS' if ok else 'FAIL'}")
  else:
    print(f"target at {largest['size']:,} keys over {largest['shards']} devices: ran; peak per device "
          f"{max(largest['mem_dense'], largest['mem_exact'], largest['mem_approx']):.0f} MiB (compiled), process "
          f"{table['peak_rss_mib']:.0f} MiB resident; recall of approx on {largest['recall_queries']} queries "
          f"{largest['recall']:.3f}")


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.shards > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.shards}")
  if args.index is None:
    result = run(args)
    report(result)
  else:
    import ivf_comparison as ivf
    result = ivf.run_ivf(args, timed, peak_mib, result_table, default_nlist)
    ivf.report_ivf(result)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
