"""An IVF (inverted file) index over memory keys: k-means centroids, keys filed in per-centroid lists, search that
scores only the keys of the `nprobe` lists whose centroids best match the query.

Arrays are batched over a leading axis G of independent indexes (one per memory layer, batch row and kv head).
Lists are fixed-capacity buffers [G, L, cap] so that shapes stay static under jit: each holds copies of its keys
(contiguous, so a query reads whole blocks of a list) and the memory slot of each key (to fetch its value).
Capacity is a multiple of LIST_BLOCK; whoever inserts grows it first (`capacity_needed`), so no key is dropped.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

LIST_BLOCK = 128  # list entries scored per query at a time: temporaries are [..., queries, LIST_BLOCK, hd]
ASSIGN_CHUNK = 1024  # keys assigned to centroids at a time
TRAIN_PER_LIST = 64  # k-means sample: up to this many keys per centroid
KMEANS_ITERS = 10
BALANCE = None  # default cap on a list's length as a multiple of the mean list length, e.g. 1.25 (None: uncapped)
SPILL_CHOICES = 3  # nearest centroids a key may be filed under when nearer lists are full


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class IVFIndex:
  """IVF lists of G independent indexes (the leading axes may be several, e.g. [Nm, B, K])."""
  centroids: jax.Array  # [..., L, hd] float32
  keys: jax.Array  # [..., L, cap, hd] copies of the keys filed in each list (memory dtype)
  slots: jax.Array  # [..., L, cap] int32 memory slot of each entry
  count: jax.Array  # [..., L] int32 entries in use

  @property
  def nlist(self) -> int:
    return self.centroids.shape[-2]

  @property
  def capacity(self) -> int:
    return self.keys.shape[-2]


def empty_index(lead: tuple, nlist: int, head_dim: int, dtype, capacity: int = LIST_BLOCK) -> IVFIndex:
  """An index with zero centroids and empty lists of `capacity` entries."""
  return IVFIndex(centroids=jnp.zeros(lead + (nlist, head_dim), jnp.float32),
                  keys=jnp.zeros(lead + (nlist, capacity, head_dim), dtype),
                  slots=jnp.zeros(lead + (nlist, capacity), jnp.int32),
                  count=jnp.zeros(lead + (nlist,), jnp.int32))


def list_capacity(needed: int, current: int) -> int:
  """List capacity after growth: at least double, a multiple of LIST_BLOCK."""
  slots = max(needed, 2 * current, LIST_BLOCK)
  return -(-slots // LIST_BLOCK) * LIST_BLOCK


def grow_lists(index: IVFIndex, capacity: int) -> IVFIndex:
  """Pads every list to `capacity` entries."""
  extra = capacity - index.capacity
  if extra <= 0:
    return index
  lead = index.keys.ndim - 3
  keys = jnp.pad(index.keys, [(0, 0)] * (lead + 1) + [(0, extra), (0, 0)])
  slots = jnp.pad(index.slots, [(0, 0)] * (lead + 1) + [(0, extra)])
  return dataclasses.replace(index, keys=keys, slots=slots)


def nearest(keys: jax.Array, centroids: jax.Array) -> jax.Array:
  """Nearest centroid (L2) of each key: keys [G, n, hd], centroids [G, L, hd] -> [G, n] int32."""
  return nearest_lists(keys, centroids, 1)[0][..., 0]


def nearest_lists(keys: jax.Array, centroids: jax.Array, choices: int) -> tuple[jax.Array, jax.Array]:
  """The `choices` nearest centroids (L2) of each key, nearest first: (ids [G, n, R] int32, closeness
  -|key - centroid|^2 / 2 [G, n, R]). keys [G, n, hd], centroids [G, L, hd].

  Walks the keys ASSIGN_CHUNK at a time, one index at a time, so only [ASSIGN_CHUNK, L] distances exist at once.
  """
  g, n, hd = keys.shape
  chunk = min(ASSIGN_CHUNK, n)
  chunks = -(-n // chunk)
  keys = jnp.pad(keys, [(0, 0), (0, chunks * chunk - n), (0, 0)]).reshape(g * chunks, chunk, hd)
  half_norms = 0.5 * jnp.sum(centroids * centroids, axis=-1)  # [G, L]

  def one(i):
    c = centroids[i // chunks]
    k = keys[i].astype(jnp.float32)
    # argmin |k - c|^2 = argmax k.c - |c|^2 / 2
    score = jnp.einsum("nd,ld->nl", k, c) - half_norms[i // chunks]
    ids, best = [], []
    for _ in range(choices):  # repeated argmax: cheaper than sorting L scores per key
      j = jnp.argmax(score, axis=-1)
      ids.append(j.astype(jnp.int32))
      best.append(jnp.take_along_axis(score, j[:, None], axis=-1)[:, 0])
      score = score.at[jnp.arange(chunk), j].set(-jnp.inf)
    # the score ranks centroids for one key; across keys, closeness needs their norms: -|k - c|^2 / 2
    return jnp.stack(ids, axis=-1), jnp.stack(best, axis=-1) - 0.5 * jnp.sum(k * k, axis=-1)[:, None]

  ids, best = jax.lax.map(one, jnp.arange(g * chunks))
  return (ids.reshape(g, chunks * chunk, choices)[:, :n], best.reshape(g, chunks * chunk, choices)[:, :n])


def list_cap(count: jax.Array, ok: jax.Array, balance: float) -> jax.Array:
  """Most entries a list may take: balance times the mean list length once keys ok [G, n] are filed -> [G, 1]."""
  total = count.sum(axis=-1) + ok.sum(axis=-1)
  return jnp.ceil(balance * total / count.shape[-1]).astype(jnp.int32)[:, None]


def balanced_lists(choices: jax.Array, closeness: jax.Array, ok: jax.Array, count: jax.Array,
                   balance: float) -> jax.Array:
  """Lists for keys ok [G, n] given their nearest centroids (choices, closeness [G, n, R] from nearest_lists) and
  current list lengths count [G, L]: each key goes to the first of its choices with room under `list_cap`, the
  keys nearest a centroid first; a key whose R lists are all full goes to its nearest (over the cap, never dropped).

  Capped lists bound the work of probing any list (search reads as many blocks as the longest probed list) and the
  list buffers, at the cost of filing some keys under their second- or third-nearest centroid. -> [G, n] int32.
  """
  g, n, r = choices.shape
  nlist = count.shape[-1]
  rows = jnp.arange(g)[:, None]
  room = list_cap(count, ok, balance) - count  # [G, L]
  ids = jnp.full((g, n), nlist, jnp.int32)  # nlist: not filed yet
  for j in range(r):
    want = jnp.where(ok & (ids == nlist), choices[..., j], nlist)
    order = jnp.lexsort((-closeness[..., j], want), axis=-1)  # by list, nearest first
    sorted_want = jnp.take_along_axis(want, order, axis=-1)
    first = jax.vmap(lambda a: jnp.searchsorted(a, a, side="left"))(sorted_want)
    room_of = jnp.take_along_axis(jnp.pad(room, [(0, 0), (0, 1)]), sorted_want, axis=-1)
    fits = (sorted_want < nlist) & (jnp.arange(n)[None] - first < room_of)
    taken = jnp.zeros((g, n), bool).at[rows, order].set(fits)
    ids = jnp.where(taken, want, ids)
    room = room.at[rows, jnp.where(taken, want, nlist)].add(-1, mode="drop")
  return jnp.where(ids == nlist, choices[..., 0], ids)


def file_lists(keys: jax.Array, centroids: jax.Array, ok: jax.Array, count: jax.Array,
               balance: float | None) -> jax.Array:
  """Lists for keys [G, n, hd] (ok [G, n]) joining lists of lengths count [G, L]: the nearest centroid's, or with a
  `balance`, capped lists (balanced_lists over the SPILL_CHOICES nearest). -> [G, n] int32."""
  if balance is None:
    return nearest(keys, centroids)
  choices, closeness = nearest_lists(keys, centroids, min(SPILL_CHOICES, centroids.shape[-2]))
  return balanced_lists(choices, closeness, ok, count, balance)


def kmeans(sample: jax.Array, weight: jax.Array, nlist: int, iters: int = KMEANS_ITERS,
           balance: float | None = None) -> jax.Array:
  """Weighted k-means (Lloyd): sample [G, S, hd], weight [G, S] (0: not a key) -> centroids [G, nlist, hd].
  With `balance`, each step assigns the sample to capped lists (file_lists), so centroids move towards even lists.

  Starts from nlist sample keys spread over the sample (repeated when S < nlist). A centroid left without keys
  takes the place of half of one of the largest clusters (its centroid nudged apart from that cluster's), so
  lists do not end up holding several clusters while others hold none.
  """
  g, s, hd = sample.shape
  sample = sample.astype(jnp.float32)
  start = (jnp.arange(nlist) * s) // nlist if s >= nlist else jnp.arange(nlist) % s
  rows = jnp.arange(g)[:, None]

  ok = weight > 0
  empty = jnp.zeros((g, nlist), jnp.int32)

  def step(_, centroids):
    ids = file_lists(sample, centroids, ok, empty, balance)
    sums = jnp.zeros((g, nlist, hd), jnp.float32).at[rows, ids].add(sample * weight[..., None])
    counts = jnp.zeros((g, nlist), jnp.float32).at[rows, ids].add(weight)
    means = jnp.where(counts[..., None] > 0, sums / jnp.maximum(counts, 1.0)[..., None], centroids)
    return _split_largest_into_empty(means, counts)

  return jax.lax.fori_loop(0, iters, step, sample[:, start])


def _split_largest_into_empty(centroids: jax.Array, counts: jax.Array, nudge: float = 1e-3) -> jax.Array:
  """The r-th empty centroid becomes the r-th largest cluster's centroid scaled by (1 + nudge), and that
  cluster's by (1 - nudge) (only clusters of at least 2 keys give one up)."""
  empty = counts <= 0
  rank = jnp.cumsum(empty, axis=-1) - 1  # r for the r-th empty centroid
  largest = jnp.argsort(-counts, axis=-1)  # [G, L]
  donor = jnp.take_along_axis(largest, jnp.clip(rank, 0, None), axis=-1)  # [G, L]
  splits = empty & (jnp.take_along_axis(counts, donor, axis=-1) >= 2)
  donated = jnp.take_along_axis(centroids, donor[..., None], axis=1)
  out = jnp.where(splits[..., None], donated * (1 + nudge), centroids)
  shrink = jnp.zeros(counts.shape, bool).at[jnp.arange(counts.shape[0])[:, None], donor].max(splits)
  return jnp.where(shrink[..., None] & ~splits[..., None], out * (1 - nudge), out)


def _list_ids(ids: jax.Array, ok: jax.Array, nlist: int) -> jax.Array:
  return jnp.where(ok, ids, nlist)  # nlist: not filed (out of range, dropped by the scatters)


def capacity_needed(index: IVFIndex, ids: jax.Array, ok: jax.Array) -> jax.Array:
  """Largest list length after inserting keys filed to ids [G, n] where ok [G, n] (a traced int)."""
  g = ids.shape[0]
  added = jnp.zeros((g, index.nlist), jnp.int32).at[jnp.arange(g)[:, None], _list_ids(ids, ok, index.nlist)].add(
      1, mode="drop")
  return jnp.max(index.count + added)


def insert(index: IVFIndex, keys: jax.Array, slots: jax.Array, ids: jax.Array, ok: jax.Array) -> IVFIndex:
  """Files keys [G, n, hd] (memory slots [G, n]) in lists ids [G, n] where ok; lists must have room for them.

  Keys going to the same list take consecutive entries after its current ones, in their input order.
  """
  g, n = ids.shape
  nlist = index.nlist
  lists = _list_ids(ids, ok, nlist)
  order = jnp.argsort(lists, axis=-1, stable=True)
  sorted_lists = jnp.take_along_axis(lists, order, axis=-1)
  first = jax.vmap(lambda a: jnp.searchsorted(a, a, side="left"))(sorted_lists)
  rows = jnp.arange(g)[:, None]
  base = jnp.take_along_axis(jnp.pad(index.count, [(0, 0), (0, 1)]), sorted_lists, axis=-1)
  pos = base + jnp.arange(n)[None] - first
  new_keys = index.keys.at[rows, sorted_lists, pos].set(
      jnp.take_along_axis(keys, order[..., None], axis=1).astype(index.keys.dtype), mode="drop")
  new_slots = index.slots.at[rows, sorted_lists, pos].set(jnp.take_along_axis(slots, order, axis=-1), mode="drop")
  count = index.count.at[rows, lists].add(1, mode="drop")
  return dataclasses.replace(index, keys=new_keys, slots=new_slots, count=count)


def search(queries: jax.Array, index: IVFIndex, k: int, nprobe: int, scale: float = 1.0, *,
           lead_index=()) -> tuple[jax.Array, jax.Array]:
  """Top-k keys by inner product among the nprobe lists whose centroids have the largest inner product with the
  query. queries [G, Q, hd] (the index's own leading axes flattened to G, or with `lead_index`, see below).

  Returns (scores * scale [G, Q, k], memory slots [G, Q, k]); fewer than k candidates leave -inf scores.
  Lists are read LIST_BLOCK entries at a time, each query's longest probed list first; the merge with the running selection is exact, so with
  nprobe = nlist the result is the exact top-k. lead_index: integer index arrays selecting, in each of the
  index's leading axes, the index each query row g uses (for reading one layer of a stacked index without
  copying it); they must broadcast to [G].
  """
  if not 0 < nprobe <= index.nlist:
    raise ValueError(f"nprobe: expected 1..nlist={index.nlist} lists to probe, found {nprobe}")
  g, q, _ = queries.shape
  lead = tuple(jnp.broadcast_to(jnp.asarray(a, jnp.int32), (g,)) for a in lead_index) or (jnp.arange(g),)
  centroids = index.centroids[lead]  # [G, L, hd]
  coarse = jnp.einsum("gqd,gld->gql", queries.astype(jnp.float32), centroids)
  probes = jax.lax.top_k(coarse, nprobe)[1]  # [G, Q, P]
  probe_count = jnp.take_along_axis(index.count[lead][:, None, :], probes, axis=-1)  # [G, Q, P]
  # Longest probed list first, so step p reads only as many blocks as the longest p-th list of any query.
  order = jnp.argsort(-probe_count, axis=-1)
  probes = jnp.take_along_axis(probes, order, axis=-1)
  probe_count = jnp.take_along_axis(probe_count, order, axis=-1)
  blocks = (jnp.max(probe_count, axis=(0, 1)) + LIST_BLOCK - 1) // LIST_BLOCK  # [P]
  ends = jnp.cumsum(blocks)
  entry = jnp.arange(LIST_BLOCK)
  at_q = tuple(a[:, None, None] for a in lead)  # [G, 1, 1]

  def body(step, carry):
    best, best_slots = carry
    p = jnp.searchsorted(ends, step, side="right")
    j = step - (ends[p] - blocks[p])
    lists = jax.lax.dynamic_index_in_dim(probes, p, axis=-1, keepdims=False)[..., None]  # [G, Q, 1]
    pos = j * LIST_BLOCK + entry  # [E]
    keys = index.keys[at_q + (lists, pos)]  # [G, Q, E, hd]
    scores = jnp.einsum("gqd,gqed->gqe", queries, keys.astype(queries.dtype),
                        preferred_element_type=jnp.float32) * scale
    filled = pos < jax.lax.dynamic_index_in_dim(probe_count, p, axis=-1, keepdims=True)
    scores = jnp.where(filled, scores, -jnp.inf)
    top, which = jax.lax.top_k(jnp.concatenate([best, scores], axis=-1), k)
    cand = jnp.concatenate([best_slots, index.slots[at_q + (lists, pos)]], axis=-1)
    return top, jnp.take_along_axis(cand, which, axis=-1)

  init = (jnp.full((g, q, k), -jnp.inf, jnp.float32), jnp.zeros((g, q, k), jnp.int32))
  return jax.lax.fori_loop(0, ends[-1], body, init)
