"""Exact top-k against the IVF index, side by side on the same keys and queries (bench_memory_retrieval --index=ivf).

Both sides run the product's code, compiled as the inference steps are (step_jit.MemoryStepJit): exact =
memory_attention.topk_memory_logits (every key scored), IVF = memory_attention.ivf_memory_logits over an index built
by memory_index.MemoryIndexer (the upkeep MemoryInference runs after a flush). With --shards the memory and the index are sharded over the devices; each device selects
its own top-k and the selections merge by value across devices, for exact and IVF alike.
"""

from __future__ import annotations

import functools
import time
import types


def centres_and_queries(args):
  """Mixture centres [C, hd] and queries [1, Q, 1, hd] (float32) drawn from the keys' law (--keys)."""
  import jax
  kc, kq, kqn = jax.random.split(jax.random.key(1, impl="rbg"), 3)
  centres = jax.random.normal(kc, (args.clusters, args.head_dim))
  if args.keys == "gaussian":
    return centres, jax.random.normal(kq, (1, args.queries, 1, args.head_dim))
  which = jax.random.randint(kq, (args.queries,), 0, args.clusters)
  queries = centres[which] + args.spread * jax.random.normal(kqn, (args.queries, args.head_dim))
  return centres, queries.reshape(1, args.queries, 1, args.head_dim)


def one_device_data(args, size: int):
  """Keys [1, 1, size, hd] (--mem_dtype, head-major) and queries [1, Q, 1, hd] (f32) of --keys; queries from the
  keys' law."""
  import jax
  hd, q = args.head_dim, args.queries

  def make(seed):
    kc, kk, kn, kq, kqn = jax.random.split(jax.random.key(seed, impl="rbg"), 5)
    if args.keys == "gaussian":
      keys, queries = jax.random.normal(kk, (size, hd)), jax.random.normal(kq, (q, hd))
    else:
      centres = jax.random.normal(kc, (args.clusters, hd))
      draw = lambda kind, knoise, n: (centres[jax.random.randint(kind, (n,), 0, args.clusters)] +
                                      args.spread * jax.random.normal(knoise, (n, hd)))
      keys, queries = draw(kk, kn, size), draw(kq, kqn, q)
    return keys.astype(args.mem_dtype).reshape(1, 1, size, hd), queries.reshape(1, q, 1, hd)

  return jax.jit(make)(0)


def _hash(x):
  """A 32-bit integer hash (uint32 -> uint32), elementwise."""
  import jax.numpy as jnp
  x = x * jnp.uint32(2654435761)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(2246822519)
  return x ^ (x >> 13)


def sharded_keys(args, size: int, centres, mesh, chunk: int = 1 << 16):
  """[1, 1, size, 1, hd] keys of --keys (mixture labels and noise hashed from the global position) sharded along
  the slots, written chunk by chunk on each device: no temporaries of a device's whole part."""
  import math
  import jax
  import jax.numpy as jnp
  from jax.sharding import PartitionSpec as P
  hd, local = args.head_dim, size // mesh.size
  chunk = math.gcd(local, chunk)

  def noise(position):  # [chunk] -> [chunk, hd] approximately standard normal (sum of 4 uniforms, rescaled)
    idx = position[:, None] * jnp.uint32(hd) + jnp.arange(hd, dtype=jnp.uint32)[None]
    total = sum((_hash(idx * jnp.uint32(4) + jnp.uint32(r)) >> 8).astype(jnp.float32) / float(1 << 24)
                for r in range(4))
    return (total - 2.0) * 3.0 ** 0.5  # variance of a sum of 4 U(0, 1): 1/3

  def fill(centres):
    base = jax.lax.axis_index("memory").astype(jnp.uint32) * jnp.uint32(local)

    def body(i, buf):
      position = base + jnp.uint32(i * chunk) + jnp.arange(chunk, dtype=jnp.uint32)
      if args.keys == "gaussian":
        part = noise(position)
      else:
        label = _hash(position ^ jnp.uint32(0x9E3779B9)) % jnp.uint32(args.clusters)
        part = centres[label] + args.spread * noise(position)
      return jax.lax.dynamic_update_slice(buf, part.astype(args.mem_dtype)[None, None, None], (0, 0, 0, i * chunk, 0))

    return jax.lax.fori_loop(0, local // chunk, body, jnp.zeros((1, 1, 1, local, hd), args.mem_dtype))

  return jax.jit(jax.shard_map(fill, mesh=mesh, in_specs=P(), out_specs=P(None, None, None, "memory"),
                               check_vma=False))(centres)


def build_index(mem_k, valid, nlist: int, balance, layout):
  """The product's index upkeep after one flush of every slot (per device): k-means, then every key filed.
  mem_k [1, 1, 1, C, hd] (one layer, batch row and kv head), valid [1, C]; nlist lists per device."""
  import jax.numpy as jnp
  from fot_jax.model.memory_index import MemoryIndexer, empty_memory_index
  index = empty_memory_index(1, 1, 1, mem_k.shape[-1], nlist, jnp.dtype(mem_k.dtype), layout)
  state = types.SimpleNamespace(index=index, mem_k=mem_k, mem_valid=valid)
  return MemoryIndexer(layout, balance).after_flush(state, 0, mem_k.shape[3] // layout.shards)


def merged_across_devices(select, *, local: int, k: int):
  """The per-device body (under shard_map over axis "memory") that runs select(qg, *rest) -> (logits, local slots)
  on this device's memory, makes the slots global, and keeps the top-k of all devices' selections: slots [..., k]."""
  import jax
  import jax.numpy as jnp

  def per_device(qg, *rest):
    logits, slots = select(qg, *rest)
    slots = slots + jax.lax.axis_index("memory") * local
    everyone = jax.lax.all_gather(logits, "memory", axis=-1, tiled=True)
    best = jax.lax.top_k(everyone, k)[1]
    return jnp.take_along_axis(jax.lax.all_gather(slots, "memory", axis=-1, tiled=True), best, axis=-1)
  return per_device


def selection_fns(args, local: int, mesh):
  """(exact(qg, mem_k, valid), ivf(qg, index, nprobe)) -> top-k memory slots [Q, k] of the whole memory."""
  import jax
  from jax.sharding import PartitionSpec as P
  from fot_jax.model import memory_attention as ma
  from fot_jax.model.memory_index import index_spec
  from fot_jax.model.memory import MemoryLayout
  from fot_jax.model.step_jit import MemoryStepJit
  scale, k = args.head_dim ** -0.5, args.k

  def exact(qg, mem_k, valid):
    return ma.topk_memory_logits(qg, mem_k, valid, local, scale, k, min(args.block, local), False)

  def ivf(qg, index, nprobe):
    return ma.ivf_memory_logits(qg, index, scale, k, nprobe)

  merged = functools.partial(merged_across_devices, local=local, k=k)
  slots_of = lambda out: out.reshape(-1, k)
  if mesh is None:
    return (MemoryStepJit(lambda qg, m, v: slots_of(exact(qg, m, v)[1])),
            MemoryStepJit(lambda qg, index, nprobe: slots_of(ivf(qg, index, nprobe)[1]), static_argnums=2))
  mem_spec, valid_spec = P(None, None, None, "memory"), P(None, "memory")
  spec = index_spec(MemoryLayout(mesh, "memory"))
  sharded_exact = jax.shard_map(merged(exact), mesh=mesh, in_specs=(P(), mem_spec, valid_spec), out_specs=P(),
                                check_vma=False)

  def sharded_ivf(qg, index, nprobe):
    fn = merged(functools.partial(ivf, nprobe=nprobe))
    return jax.shard_map(fn, mesh=mesh, in_specs=(P(), spec), out_specs=P(), check_vma=False)(qg, index)

  return (MemoryStepJit(lambda qg, m, v: slots_of(sharded_exact(qg, m, v))),
          MemoryStepJit(lambda qg, index, nprobe: slots_of(sharded_ivf(qg, index, nprobe)), static_argnums=2))


def run_ivf(args, timed, peak_mib, result_table, default_nlist) -> dict:
  """Exact top-k vs IVF indexes (one per --balance, each probed at every --nprobe) on the same keys and queries;
  the bench script's timing, memory, table and nlist helpers are passed in."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  from fot_jax.model import retrieval
  from fot_jax.model.memory import MemoryLayout
  mesh = None
  if args.shards > 1:
    mesh = jax.make_mesh((args.shards,), ("memory",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:args.shards])
  layout = MemoryLayout() if mesh is None else MemoryLayout(mesh, "memory")
  print(f"backend {jax.default_backend()}, {args.shards} device(s), {args.queries} queries, head_dim "
        f"{args.head_dim}, keys {args.mem_dtype} {args.keys}"
        + (f" ({args.clusters} centres, spread {args.spread})" if args.keys == "clustered" else "")
        + f", k={args.k}, block {args.block}", flush=True)
  rows = []
  per_1k = 1024 / args.queries
  for size in args.sizes:
    local = size // args.shards
    nlist = default_nlist(local, args.nlist)  # per device
    if mesh is None:
      keys, q = one_device_data(args, size)
      mem_k, valid = keys[None], jnp.ones((1, size), bool)
    else:
      centres, q = centres_and_queries(args)
      mem_k = sharded_keys(args, size, centres, mesh)
      valid = jax.jit(lambda: jnp.ones((1, size), bool), out_shardings=NamedSharding(mesh, P(None, "memory")))()
    qg = q[:, :, :, None, :]
    exact, ivf = selection_fns(args, local, mesh)
    exact_s = timed(exact, qg, mem_k, valid, repeats=args.repeats)
    exact_slots = exact(qg, mem_k, valid)
    mem_exact = peak_mib(exact, qg, mem_k, valid)
    print(f"  {size:>12,} keys: exact {exact_s * per_1k:.3f}s per 1k queries", flush=True)
    for balance in args.balance:
      t0, w0 = time.process_time(), time.perf_counter()
      index = jax.block_until_ready(build_index(mem_k, valid, nlist, balance, layout))
      build, build_wall = time.process_time() - t0, time.perf_counter() - w0
      counts = np.asarray(index.count).ravel()
      for nprobe in args.nprobe:
        ivf_s = timed(ivf, qg, index, nprobe, repeats=args.repeats)
        row = dict(size=size, shards=args.shards, nlist=nlist, nprobe=nprobe, balance=balance,
                   exact=exact_s * per_1k, ivf=ivf_s * per_1k, speedup=exact_s / ivf_s,
                   recall=retrieval.recall(ivf(qg, index, nprobe), exact_slots), build=build,
                   build_wall=build_wall, list_mean=float(counts.mean()), list_max=int(counts.max()),
                   mem_exact=mem_exact, mem_ivf=peak_mib(ivf, qg, index, nprobe),
                   index_mib=sum(a.nbytes for a in jax.tree.leaves(index)) / args.shards / 2**20)
        rows.append(row)
        print(f"    balance {balance}, nprobe {nprobe}: ivf {row['ivf']:.3f}s (per 1k queries) "
              f"{row['speedup']:.2f}x recall@{args.k} {row['recall']:.3f}; build {build:.1f}s, lists "
              f"{row['list_mean']:.0f}/{row['list_max']}", flush=True)
      del index
    del mem_k, valid
  return result_table(rows, args)


def report_ivf(table: dict) -> None:
  rows, k = table["rows"], table["args"]["k"]
  print(f"{'keys':>13} {'dev':>3} {'nlist':>6} {'balance':>7} {'nprobe':>6} {'exact s/1k q':>13} {'ivf s/1k q':>11} "
        f"{'exact/ivf':>10} {'recall@' + str(k):>9} {'build s':>8} {'list mean/max':>14} {'exact MiB':>10} "
        f"{'ivf MiB':>8} {'index MiB':>9}")
  for r in rows:
    print(f"{r['size']:>13,} {r['shards']:>3} {r['nlist']:>6} {str(r['balance']):>7} {r['nprobe']:>6} "
          f"{r['exact']:>13.3f} {r['ivf']:>11.3f} {r['speedup']:>9.2f}x {r['recall']:>9.3f} {r['build']:>8.1f} "
          f"{r['list_mean']:>7.0f}/{r['list_max']:<6} {r['mem_exact']:>10.1f} {r['mem_ivf']:>8.1f} "
          f"{r['index_mib']:>9.1f}")
  print("(nlist per device; MiB per device: compiled exact / IVF search, and the index itself)")
  print(f"process peak resident memory: {table['peak_rss_mib']:.0f} MiB")
  largest = max(r["size"] for r in rows)
  meets = [r for r in rows if r["size"] == largest and r["recall"] >= 0.95 and r["speedup"] >= 3.0]
  best = max(meets or [r for r in rows if r["size"] == largest], key=lambda r: (r["recall"] >= 0.95, r["speedup"]))
  print(f"target at {largest:,} keys: IVF recall@{k} >= 0.95 and >= 3x faster than exact end to end (build not "
        f"included): {'PASS' if meets else 'FAIL'} (best: balance {best['balance']}, nprobe {best['nprobe']}, "
        f"recall {best['recall']:.3f}, {best['speedup']:.2f}x)")
