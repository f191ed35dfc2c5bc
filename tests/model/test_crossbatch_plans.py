"""Crossbatch visibility: the spec's check tables, the 7B per-segment mix, and plan validation."""

import numpy as np
import pytest

from fot_jax.model.crossbatch import empty_plan, mix_plan, mix_window, parse_mix, released_plan


def test_released_table_without_packing():
  plan = released_plan(batch=6, k=1, d=2, stepping=True)
  assert plan.visible_entries() == [[0], [1, 0], [2, 1, 0], [3, 2, 1], [4, 3, 2], [5, 4, 3]]


def test_released_table_with_stepping_is_the_3b_mix():
  plan = released_plan(batch=8, k=4, d=3, stepping=True)
  assert plan.visible_entries() == [[0], [1, 0], [2, 1, 0], [3, 2, 1, 0], [4], [5, 4, 3], [6, 5, 4, 3],
                                    [7, 6, 5, 4]]
  # The paper's LongLLaMA-3B mix 1/4(0,0), 1/4(1,1), 1/4(2,1), 1/4(3,0) as (positives, negatives).
  assert plan.positives_negatives(k=4)[4:] == [(0, 0), (1, 1), (2, 1), (3, 0)]


def test_released_without_stepping_sees_all_earlier_candidates():
  plan = released_plan(batch=8, k=4, d=3, stepping=False)
  assert plan.visible_entries()[4] == [4, 3, 2, 1]
  assert plan.visible_entries()[1] == [1, 0]


def test_7b_segment_mix():
  mix = parse_mix("0:0,1:2,2:5,3:4")
  plan = mix_plan(batch=16, k=4, mix=mix)
  assert plan.d == 7 and plan.window == 7 and plan.offsets == tuple(range(1, 8))
  assert plan.positives_negatives(k=4) == [tuple(pn) for pn in mix] * 4
  entries = plan.visible_entries()
  # Entry 6 = chunk 2 of stream 1: positives 5, 4 (same stream), then 5 nearest earlier entries of other streams.
  assert entries[6] == [6, 5, 4, 3, 2, 1, 0, 15]
  for b, seen in enumerate(entries):
    positives = [s for s in seen[1:] if s // 4 == b // 4]
    assert all(s < b for s in positives), "positives must be earlier chunks of the same stream"


def test_slots_are_static_offsets_and_windows_are_tight():
  """Slot c of entry b always holds entry b - c - 1 (cyclically): the plan only says which slots are visible."""
  plan = released_plan(8, 4, 3)
  assert plan.window == 3 and plan.offsets == (1, 2, 3)
  np.testing.assert_array_equal(plan.sources, (np.arange(8)[:, None] - np.arange(1, 4)[None]) % 8)
  assert mix_window(((0, 0), (1, 1), (2, 1), (3, 0))) == 3  # the 3B mix as a mix: the window of d = 3
  assert mix_window(((0, 0), (0, 1), (0, 1), (0, 1))) == 4  # negatives only: chunk 3 reaches 4 entries back
  assert mix_window(((0, 0), (1, 0), (2, 0), (0, 0))) == 2  # positives only: the largest p
  # Negatives of chunk j sit at offsets j+1..j+n: before the stream's first chunk, never inside the stream.
  plan = mix_plan(16, 4, ((0, 0), (0, 1), (0, 1), (0, 1)))
  assert plan.window == 4 and plan.d == 1
  assert [seen[1:] for seen in plan.visible_entries()[4:8]] == [[], [3], [3], [3]]
  with pytest.raises(ValueError, match="window >= 4"):
    mix_plan(16, 4, ((0, 0), (0, 1), (0, 1), (0, 1)), window=3)


def test_plans_never_point_outside_the_micro_batch():
  for plan in (released_plan(8, 4, 3), released_plan(6, 1, 5), mix_plan(12, 4, ((0, 0), (1, 2), (2, 5), (3, 4)))):
    assert plan.sources.min() >= 0 and plan.sources.max() < plan.batch
    assert plan.sources.dtype == np.int32 and plan.visible.dtype == bool


def test_empty_plan_has_no_slots():
  plan = empty_plan(4)
  assert plan.d == 0 and plan.visible_entries() == [[0], [1], [2], [3]]


@pytest.mark.parametrize("call, field", [
    (lambda: released_plan(8, 4, -1), "d"),
    (lambda: released_plan(6, 4, 1), "divisible by k"),
    (lambda: released_plan(4, 1, 4), "smaller than the micro-batch"),
    (lambda: mix_plan(8, 4, ((0, 0), (2, 0), (0, 0), (0, 0))), "mix[1]"),
    (lambda: mix_plan(8, 4, ((0, 0), (1, 5), (0, 0), (0, 0))), "negatives"),
    (lambda: mix_plan(8, 4, ((0, 0), (1, 0))), "one (positives, negatives) pair"),
    (lambda: parse_mix("0-0"), "positives:negatives"),
])
def test_invalid_plans_name_the_problem(call, field):
  with pytest.raises(ValueError, match=__import__("re").escape(field)):
    call()
