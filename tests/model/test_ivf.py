"""IVF index: exact when every list is probed, high recall on clustered keys, lists that grow without dropping keys."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model import ivf, retrieval


def clustered(rng, n, hd, clusters, spread):
  """n keys around `clusters` random centres (unit-variance), spread the within-cluster standard deviation."""
  centres = rng.standard_normal((clusters, hd))
  return (centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, hd))).astype(np.float32)


def build(keys, nlist, valid=None, balance=None):
  """A one-index IVF over keys [n, hd]: k-means on all of them, every valid key filed (lists capped with balance)."""
  keys = jnp.asarray(keys)[None]
  ok = jnp.ones(keys.shape[:2], bool) if valid is None else jnp.asarray(valid)[None]
  centroids = ivf.kmeans(keys, ok.astype(jnp.float32), nlist, balance=balance)
  index = dataclasses.replace(ivf.empty_index((1,), nlist, keys.shape[-1], jnp.float32), centroids=centroids)
  ids = ivf.file_lists(keys, centroids, ok, index.count, balance)
  index = _grown_for(index, ids, ok)
  slots = jnp.arange(keys.shape[1], dtype=jnp.int32)[None]
  return ivf.insert(index, keys, slots, ids, ok)


def _grown_for(index, ids, ok):
  pages, width = (int(n) for n in ivf.capacity_needed(index, ids, ok))
  return ivf.grow(index, ivf.grown(pages, index.pool_pages), ivf.grown(width, index.table_width))


def exact_top_k(queries, keys, k, valid=None):
  scores = queries @ keys.T
  if valid is not None:
    scores = np.where(valid[None], scores, -np.inf)
  return np.argsort(-scores, axis=-1)[:, :k]


def test_probing_every_list_is_exact():
  rng = np.random.default_rng(0)
  keys = rng.standard_normal((700, 8)).astype(np.float32)  # unclustered: lists of very different lengths
  valid = rng.random(700) > 0.1
  index = build(keys, 16, valid)
  assert int(index.count.sum()) == valid.sum()
  # pages in use: exactly each list's own (an uneven list costs only its pages), within the pool
  assert int(ivf.pages_of(index.count).sum()) <= index.pool_pages
  queries = rng.standard_normal((33, 8)).astype(np.float32)
  scores, slots = ivf.search(jnp.asarray(queries)[None], index, 10, nprobe=16, scale=0.5)
  want = exact_top_k(queries, keys, 10, valid)
  np.testing.assert_array_equal(np.sort(np.asarray(slots[0]), -1), np.sort(want, -1))
  np.testing.assert_allclose(np.asarray(scores[0]), 0.5 * np.take_along_axis(queries @ keys.T, want, -1),
                             rtol=1e-5, atol=1e-5)


def test_clustered_keys_reach_high_recall_probing_few_lists():
  rng = np.random.default_rng(1)
  keys = clustered(rng, 8192, 16, clusters=64, spread=0.3)
  queries = keys[rng.integers(0, len(keys), 64)] + 0.3 * rng.standard_normal((64, 16)).astype(np.float32)
  index = build(keys, 64)
  _, slots = ivf.search(jnp.asarray(queries)[None], index, 16, nprobe=4)
  want = exact_top_k(queries, keys, 16)
  got = retrieval.recall(slots[0], jnp.asarray(want))
  assert got >= 0.95, got
  # and it did not score everything: even the 4 longest lists hold a small share of the keys
  assert int(jnp.sort(index.count[0])[-4:].sum()) < 0.25 * len(keys)


def test_insert_appends_in_order_after_growing():
  rng = np.random.default_rng(2)
  keys = rng.standard_normal((300, 4)).astype(np.float32)
  index = build(keys[:100], 4)
  ids = ivf.nearest(jnp.asarray(keys[None, 100:]), index.centroids)
  ok = jnp.ones((1, 200), bool)
  after = index.count + jnp.bincount(ids[0], length=4)
  pages, width = (int(n) for n in ivf.capacity_needed(index, ids, ok))
  assert (pages, width) == (int(ivf.pages_of(after).sum()), int(ivf.pages_of(after).max()))
  index = _grown_for(index, ids, ok)
  index = ivf.insert(index, jnp.asarray(keys[None, 100:]), jnp.arange(100, 300, dtype=jnp.int32)[None], ids, ok)
  assert int(index.count.sum()) == 300
  for lst in range(4):  # each list holds its keys' slots in ascending order and the keys themselves
    list_keys, slots = (np.asarray(a[0]) for a in ivf.list_entries(index, lst))
    assert len(slots) == int(index.count[0, lst]) and (np.diff(slots) > 0).all()
    np.testing.assert_array_equal(list_keys, keys[slots])
  # every page in use belongs to exactly one list
  used = np.concatenate([np.asarray(index.table[0, lst, :int(ivf.pages_of(index.count[0, lst]))]) for lst in range(4)])
  assert len(set(used.tolist())) == len(used) == int(ivf.pages_of(index.count[0]).sum())


def test_nprobe_outside_the_lists_is_an_error():
  index = ivf.empty_index((1,), 4, 8, jnp.float32)
  with pytest.raises(ValueError, match="nprobe"):
    ivf.search(jnp.zeros((1, 2, 8)), index, 2, nprobe=5)


def test_kmeans_gives_empty_centroids_a_share_of_the_largest_clusters():
  rng = np.random.default_rng(3)
  centres = 5 * rng.standard_normal((8, 4))
  keys = centres[np.arange(400) % 8] + 0.1 * rng.standard_normal((400, 4))
  keys[(np.arange(8) * 400) // 8] = keys[0]  # every starting centroid is the same key: 7 start empty
  centroids = ivf.kmeans(jnp.asarray(keys, jnp.float32)[None], jnp.ones((1, 400)), 8)
  sizes = np.bincount(np.asarray(ivf.nearest(jnp.asarray(keys, jnp.float32)[None], centroids))[0], minlength=8)
  assert (sizes > 0).all() and sizes.max() <= 100, sizes  # 50 keys per true cluster


def test_balanced_lists_cap_every_list_and_spill_to_the_next_nearest():
  # Keys on a line, dense at both ends; centroids at 0.5, 1.5, ..., 7.5: the end lists overflow their neighbours.
  rng = np.random.default_rng(4)
  x = np.concatenate([rng.uniform(0, 1, 250), rng.uniform(1, 7, 500), rng.uniform(7, 10, 250)])
  keys = jnp.asarray(np.stack([x, np.zeros_like(x)], -1), jnp.float32)[None]
  centroids = jnp.asarray(np.stack([np.arange(8) + 0.5, np.zeros(8)], -1), jnp.float32)[None]
  ok = jnp.asarray(np.arange(1000) % 10 != 3)[None]  # 900 keys filed
  plain = ivf.file_lists(keys, centroids, ok, jnp.zeros((1, 8), jnp.int32), None)
  capped = ivf.file_lists(keys, centroids, ok, jnp.zeros((1, 8), jnp.int32), 1.25)
  cap = int(np.ceil(1.25 * 900 / 8))
  sizes = lambda ids: np.bincount(np.asarray(ids)[0][np.asarray(ok)[0]], minlength=8)
  assert sizes(plain).max() > cap and sizes(capped).max() <= cap, (sizes(plain), sizes(capped))
  assert sizes(capped).sum() == 900
  choices = np.asarray(ivf.nearest_lists(keys, centroids, ivf.SPILL_CHOICES)[0])[0]
  got = np.asarray(capped)[0]
  assert all(g in c for g, c in zip(got, choices))  # each key in one of its nearest lists
  # the full first list kept the keys nearest its centroid and turned the others away
  wanted = (choices[:, 0] == 0) & np.asarray(ok)[0]
  kept, turned = wanted & (got == 0), wanted & (got != 0)
  dist = np.abs(x - 0.5)
  assert turned.any() and dist[kept].max() <= dist[turned].min()


def test_balanced_lists_count_keys_already_filed_and_never_drop_one():
  centroids = jnp.asarray([[[0.0, 0.0], [10.0, 0.0]]])
  keys = jnp.zeros((1, 6, 2))  # all nearest to list 0, which already holds 4 of 10 keys
  ok = jnp.ones((1, 6), bool)
  ids = ivf.balanced_lists(*ivf.nearest_lists(keys, centroids, 2), ok, jnp.asarray([[4, 0]]), balance=1.0)
  assert np.bincount(np.asarray(ids)[0], minlength=2).tolist() == [1, 5]  # cap 5: one more fits in list 0
  ids = ivf.balanced_lists(*ivf.nearest_lists(keys, centroids, 1), ok, jnp.asarray([[4, 0]]), balance=1.0)
  assert np.asarray(ids).tolist() == [[0] * 6]  # no other choice: over the cap rather than dropped


def test_capped_index_probing_every_list_is_exact():
  rng = np.random.default_rng(5)
  keys = clustered(rng, 2000, 8, clusters=3, spread=0.2)  # few clusters: uncapped lists are very uneven
  queries = rng.standard_normal((17, 8)).astype(np.float32)
  index = build(keys, 16, balance=1.25)
  assert int(index.count.sum()) == 2000
  _, slots = ivf.search(jnp.asarray(queries)[None], index, 8, nprobe=16)
  np.testing.assert_array_equal(np.sort(np.asarray(slots[0]), -1), np.sort(exact_top_k(queries, keys, 8), -1))


def test_spread_samples_distinct_indices_of_a_large_memory():
  # 262144 picks over 16M slots: the int32 product i * n would overflow and repeat only 256 distinct slots
  picks = ivf.spread(1 << 18, 1 << 24)
  assert len(np.unique(picks)) == 1 << 18 and picks.min() == 0 and picks.max() == (1 << 24) - (1 << 6)
  np.testing.assert_array_equal(np.diff(picks), 1 << 6)
