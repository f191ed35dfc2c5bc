"""Round-3 diagnostic (docs/RESULTS.md): the copy probe with aligned copies, but each batch used for 4 steps in
a row, as a batcher stream of 'repeat:random:64:32x8' does (all chunks of a step are the same sequence, and a
document spans several steps). Run: python docs/figures/r3/probe_reused_batches.py
Measured (100-step window means, chance 4.205): 4.17 4.22 4.22 4.21 4.21 4.21 4.21  -- never learned, while
fresh batches every step are learned by step ~500 (copy_probe_aligned.txt).
"""
import numpy as np
from fot_jax.eval import copy_probe
orig = copy_probe.copy_batch
cache = {}
def reused(rng, mode, streams, length, aligned=False):
  n = cache.get("n", 0); cache["n"] = n + 1
  if n % 4 == 0:
    cache["b"] = orig(rng, mode, streams, length, aligned)
  return cache["b"]
copy_probe.copy_batch = reused
l = copy_probe.train_copy("memory", (1, 2, 3), steps=700, aligned=True)
print("aligned, same batch for 4 steps:", [round(float(np.mean(l[i:i+100])), 2) for i in range(0, 700, 100)])
