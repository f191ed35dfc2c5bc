"""The memory path can be *learned*, not just computed: with memory layers 1-3 a tiny model learns to copy a
random sequence that only its memory holds (aligned copies: it may read by position), and cannot without the
memory (tests/model/copy_task.py).

This guards against bugs the exactness tests cannot see (e.g. a mask or gather that keeps gradients flowing but
hides the useful keys). Content-based retrieval (unaligned copies) takes far longer to form and is studied in
docs/RESULTS.md, not here. The transition lands between steps 400 and 600, so the test trains 800 steps.
Slow (about two minutes on 2 cores): `pytest -m slow tests/model/test_memory_learning.py`.
"""

import numpy as np
import pytest

from tests.model import copy_task


@pytest.mark.slow
def test_copy_through_memory_is_learned_and_needs_the_memory():
  chance = np.log(copy_task.VOCAB - 3)
  learned = np.mean(copy_task.train_copy("memory", (1, 2, 3), steps=800, aligned=True)[-50:])
  blind = np.mean(copy_task.train_copy("memory", (1, 2, 3), steps=300, memory_visible=False, aligned=True)[-50:])
  assert learned < 0.3 * chance, f"copy through memory not learned: loss {learned:.3f}, chance {chance:.3f}"
  assert blind > 0.9 * chance, f"without memory the sequence is unpredictable, yet the loss fell to {blind:.3f}"


def test_copy_batches_hold_the_copy_where_each_mode_says():
  rng = np.random.default_rng(0)
  tokens, targets, mask = copy_task.copy_batch(rng, "memory", streams=3, length=8, aligned=True)
  assert tokens.shape == (6, 8)
  np.testing.assert_array_equal(tokens[0::2], tokens[1::2])
  assert mask[0::2].sum() == 0 and mask[1::2].sum() == 3 * 7
  np.testing.assert_array_equal(targets[1, :-1], tokens[1, 1:])
  tokens, targets, mask = copy_task.copy_batch(rng, "memory", streams=3, length=8)
  for e in (0, 2, 4):  # entry e+1 is a rotation of entry e, and each target follows its input in the cycle
    assert any(np.array_equal(np.roll(tokens[e], -s), tokens[e + 1]) for s in range(8))
    cycle = {int(a): int(b) for a, b in zip(tokens[e], np.roll(tokens[e], -1))}
    assert all(cycle[int(a)] == int(b) for a, b in zip(tokens[e + 1], targets[e + 1]) if len(set(tokens[e])) == 8)
  tokens, targets, mask = copy_task.copy_batch(rng, "local", streams=3, length=8)
  assert tokens.shape == (3, 16)
  for row in tokens:  # the second half is a rotation of the first
    assert any(np.array_equal(np.roll(row[:8], -s), row[8:]) for s in range(8))
  assert copy_task.learned_at([5, 5, 1, 1], window=2, threshold=2) == 4
  assert copy_task.learned_at([5, 5, 5, 5], window=2, threshold=2) is None
