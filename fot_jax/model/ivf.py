"""An IVF (inverted file) index over memory keys: k-means centroids, keys filed in per-centroid lists, search that
scores only the keys of the `nprobe` lists whose centroids best match the query.

Arrays are batched over a leading axis G of independent indexes (one per memory layer, batch row and kv head).
Lists are paged so that shapes stay static under jit and an uneven list costs only its own pages: a pool of
pages of PAGE entries each (copies of the keys, contiguous within a page, and the memory slot of each key) and a
page table naming the pages of every list in order. A list of n entries holds its first ceil(n / PAGE) table
entries; pages are handed out in filing order, so the pool's pages in use are the sum of those counts. Whoever
inserts grows the pool and the table first (`capacity_needed`), so no key is dropped.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

PAGE = 128  # entries per page; a query scores PAGES_PER_STEP pages at a time ([..., queries, entries, hd])
PAGES_PER_STEP = 4  # pages scored per query per search step: fewer top-k merges per scored key
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
  keys: jax.Array  # [..., pages, PAGE, hd] the page pool: copies of the filed keys (memory dtype)
  slots: jax.Array  # [..., pages, PAGE] int32 memory slot of each entry
  table: jax.Array  # [..., L, width] int32 pool page of each page of each list (first pages_of(count) in use)
  count: jax.Array  # [..., L] int32 entries in use

  @property
  def nlist(self) -> int:
    return self.centroids.shape[-2]

  @property
  def pool_pages(self) -> int:
    return self.keys.shape[-3]

  @property
  def table_width(self) -> int:
    return self.table.shape[-1]


def pages_of(count: jax.Array) -> jax.Array:
  """Pages a list of `count` entries occupies."""
  return (count + PAGE - 1) // PAGE


def empty_index(lead: tuple, nlist: int, head_dim: int, dtype, pool_pages: int | None = None,
                table_width: int = 1) -> IVFIndex:
  """An index with zero centroids and empty lists (a pool of one page per list unless given)."""
  pool_pages = nlist if pool_pages is None else pool_pages
  return IVFIndex(centroids=jnp.zeros(lead + (nlist, head_dim), jnp.float32),
                  keys=jnp.zeros(lead + (pool_pages, PAGE, head_dim), dtype),
                  slots=jnp.zeros(lead + (pool_pages, PAGE), jnp.int32),
                  table=jnp.zeros(lead + (nlist, table_width), jnp.int32),
                  count=jnp.zeros(lead + (nlist,), jnp.int32))


def grown(needed: int, current: int) -> int:
  """A capacity after growth: at least `needed`, and at least 1.5 times the current one (few regrowths)."""
  return max(needed, current + current // 2) if needed > current else current


def grow(index: IVFIndex, pool_pages: int, table_width: int) -> IVFIndex:
  """Pads the page pool to `pool_pages` pages and the page table to `table_width` pages per list."""
  extra_pages = max(pool_pages - index.pool_pages, 0)
  extra_width = max(table_width - index.table_width, 0)
  lead = [(0, 0)] * (index.count.ndim - 1)
  return dataclasses.replace(
      index, keys=jnp.pad(index.keys, lead + [(0, extra_pages), (0, 0), (0, 0)]),
      slots=jnp.pad(index.slots, lead + [(0, extra_pages), (0, 0)]),
      table=jnp.pad(index.table, lead + [(0, 0), (0, extra_width)]))


def list_entries(index: IVFIndex, lst: int) -> tuple[jax.Array, jax.Array]:
  """(keys [..., n, hd], slots [..., n]) of list `lst` in filing order, n = its largest count over the leading
  axes (entries past a row's own count are unspecified). For tests and inspection of an unsharded index
  (a sharded one's table names pages of each device's own pool)."""
  n = int(jnp.max(index.count[..., lst]))
  pages = index.table[..., lst, :int(pages_of(jnp.asarray(n)))]  # [..., p]
  keys = jnp.take_along_axis(index.keys, pages[..., None, None], axis=-3)  # [..., p, PAGE, hd]
  slots = jnp.take_along_axis(index.slots, pages[..., None], axis=-2)
  lead = keys.shape[:-3]
  return keys.reshape(lead + (-1, keys.shape[-1]))[..., :n, :], slots.reshape(lead + (-1,))[..., :n]


def spread(count: int, n: int) -> np.ndarray:
  """`count` indices spread evenly over range(n) (count <= n), computed in 64 bits: in int32, i * n overflows
  once count * n >= 2^31 (a 16M-key memory sampled 262k times would draw only 256 distinct keys)."""
  return ((np.arange(count, dtype=np.int64) * n) // count).astype(np.int32)


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
  start = jnp.asarray(spread(nlist, s) if s >= nlist else np.arange(nlist) % s)
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


def capacity_needed(index: IVFIndex, ids: jax.Array, ok: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(pool pages, table width) needed after inserting keys filed to ids [G, n] where ok [G, n] (traced ints):
  the most pages any index uses, and the most pages of any one list."""
  g = ids.shape[0]
  added = jnp.zeros((g, index.nlist), jnp.int32).at[jnp.arange(g)[:, None], _list_ids(ids, ok, index.nlist)].add(
      1, mode="drop")
  pages = pages_of(index.count + added)  # [G, L]
  return jnp.max(pages.sum(axis=-1)), jnp.max(pages)


def insert(index: IVFIndex, keys: jax.Array, slots: jax.Array, ids: jax.Array, ok: jax.Array) -> IVFIndex:
  """Files keys [G, n, hd] (memory slots [G, n]) in lists ids [G, n] where ok; the pool and table must have room.

  Keys going to the same list take consecutive entries after its current ones, in their input order; a list's
  new pages are taken from the pool after every page in use, lists in order.
  """
  g, n = ids.shape
  nlist = index.nlist
  rows = jnp.arange(g)[:, None]
  lists = _list_ids(ids, ok, nlist)
  order = jnp.argsort(lists, axis=-1, stable=True)
  sorted_lists = jnp.take_along_axis(lists, order, axis=-1)
  first = jax.vmap(lambda a: jnp.searchsorted(a, a, side="left"))(sorted_lists)
  added = jnp.zeros((g, nlist), jnp.int32).at[rows, lists].add(1, mode="drop")
  old_pages = pages_of(index.count)  # [G, L]
  new_pages = pages_of(index.count + added) - old_pages
  # pool page of a list's first new page: after every page in use, then the new pages of the lists before it
  alloc = old_pages.sum(axis=-1, keepdims=True) + jnp.cumsum(new_pages, axis=-1) - new_pages  # [G, L]
  at = lambda a: jnp.take_along_axis(jnp.pad(a, [(0, 0), (0, 1)]), sorted_lists, axis=-1)  # per sorted key
  pos = at(index.count) + jnp.arange(n)[None] - first  # entry within its list
  page, entry = pos // PAGE, pos % PAGE
  in_table = jnp.take_along_axis(index.table.reshape(g, -1), jnp.minimum(sorted_lists, nlist - 1) *
                                 index.table_width + jnp.minimum(page, index.table_width - 1), axis=-1)
  pool_page = jnp.where(page < at(old_pages), in_table, at(alloc) + page - at(old_pages))
  pool_page = jnp.where(sorted_lists < nlist, pool_page, index.pool_pages)  # not filed: dropped by the scatters
  table = index.table.at[rows, sorted_lists, page].set(pool_page, mode="drop")
  new_keys = index.keys.at[rows, pool_page, entry].set(
      jnp.take_along_axis(keys, order[..., None], axis=1).astype(index.keys.dtype), mode="drop")
  new_slots = index.slots.at[rows, pool_page, entry].set(jnp.take_along_axis(slots, order, axis=-1), mode="drop")
  return dataclasses.replace(index, keys=new_keys, slots=new_slots, table=table, count=index.count + added)


def search(queries: jax.Array, index: IVFIndex, k: int, nprobe: int, scale: float = 1.0, *,
           lead_index=()) -> tuple[jax.Array, jax.Array]:
  """Top-k keys by inner product among the nprobe lists whose centroids have the largest inner product with the
  query. queries [G, Q, hd] (the index's own leading axes flattened to G, or with `lead_index`, see below).

  Returns (scores * scale [G, Q, k], memory slots [G, Q, k]); fewer than k candidates leave -inf scores.
  Each query walks the pages of its probed lists as one sequence, PAGES_PER_STEP pages a step, so the loop runs
  for the most pages any query probes (not the longest list times nprobe). The merge with the running selection
  is exact, so with nprobe = nlist the result is the exact top-k. lead_index: integer index arrays selecting, in
  each of the index's leading axes, the index each query row g uses (for reading one layer of a stacked index
  without copying it); they must broadcast to [G].
  """
  if not 0 < nprobe <= index.nlist:
    raise ValueError(f"nprobe: expected 1..nlist={index.nlist} lists to probe, found {nprobe}")
  g, q, _ = queries.shape
  lead = tuple(jnp.broadcast_to(jnp.asarray(a, jnp.int32), (g,)) for a in lead_index) or (jnp.arange(g),)
  centroids = index.centroids[lead]  # [G, L, hd]
  coarse = jnp.einsum("gqd,gld->gql", queries.astype(jnp.float32), centroids)
  probes = jax.lax.top_k(coarse, nprobe)[1]  # [G, Q, P]
  probe_count = jnp.take_along_axis(index.count[lead][:, None, :], probes, axis=-1)  # [G, Q, P]
  ends = jnp.cumsum(pages_of(probe_count), axis=-1)  # [G, Q, P]: pages of this query up to each probed list
  total = ends[..., -1]  # [G, Q]
  steps = (jnp.max(total) + PAGES_PER_STEP - 1) // PAGES_PER_STEP
  at_q = tuple(a[:, None, None] for a in lead)  # [G, 1, 1]
  entry = jnp.arange(PAGE)

  def page_at(s):
    """The s-th page of each query's sequence: (pool page [G, Q], entries in use [G, Q, PAGE])."""
    p = jnp.minimum(jnp.sum(ends <= s[..., None], axis=-1), nprobe - 1)[..., None]  # probed list [G, Q, 1]
    lst = jnp.take_along_axis(probes, p, axis=-1)
    count = jnp.take_along_axis(probe_count, p, axis=-1)
    j = s[..., None] - (jnp.take_along_axis(ends, p, axis=-1) - pages_of(count))  # page within the list
    pool_page = index.table[at_q + (lst, jnp.minimum(j, index.table_width - 1))][..., 0]  # [G, Q]
    in_use = (j * PAGE + entry < count) & (s < total)[..., None]
    return pool_page, in_use

  def body(step, carry):
    best, best_slots = carry
    pages, in_use = zip(*(page_at(jnp.full((g, q), step * PAGES_PER_STEP + u)) for u in range(PAGES_PER_STEP)))
    pages = jnp.stack(pages, axis=-1)  # [G, Q, U]
    keys = index.keys[at_q + (pages,)].reshape(g, q, PAGES_PER_STEP * PAGE, -1)  # [G, Q, U * PAGE, hd]
    scores = jnp.einsum("gqd,gqed->gqe", queries, keys.astype(queries.dtype),
                        preferred_element_type=jnp.float32) * scale
    scores = jnp.where(jnp.concatenate(in_use, axis=-1), scores, -jnp.inf)
    top, which = jax.lax.top_k(jnp.concatenate([best, scores], axis=-1), k)
    slots = index.slots[at_q + (pages,)].reshape(g, q, -1)
    cand = jnp.concatenate([best_slots, slots], axis=-1)
    return top, jnp.take_along_axis(cand, which, axis=-1)

  init = (jnp.full((g, q, k), -jnp.inf, jnp.float32), jnp.zeros((g, q, k), jnp.int32))
  return jax.lax.fori_loop(0, steps, body, init)
