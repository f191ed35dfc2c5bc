"""Round-3 diagnostic (docs/RESULTS.md): the copy probe's model and optimiser, fed by the real batcher on
'repeat:random:64:32x8' (aligned copies, one chunk apart) instead of the probe's own batches.
Usage: python docs/figures/r3/probe_batcher_replica.py VARIANT K   (VARIANT: v2000 | v70 | ...nochunk0 | ...nomask)
Measured (700 steps, 100-step window means of the loss; chance ln 64 = 4.16):
  v2000 k=4: 4.49 4.20 4.20 4.19 4.19 4.19 4.19
  v2000 k=2: 4.47 4.20 4.20 4.19 4.19 4.19 4.18
  v70   k=4: 4.19 4.17 4.17 4.17 4.16 4.17 4.16
  v2000 k=2, no loss on chunk 0: 4.47 4.20 4.19 4.19 4.18 4.17 4.17
while the probe's own aligned batches are learned by step ~500 (copy_probe_aligned.txt).
With one fresh document per stream per step (data name edited in place; 700 steps):
  'repeat:random:64:32x4', k=4, v70:                         4.18 4.17 4.16 4.16 4.16 4.16 4.15
  'repeat:random:64:32x4', k=4, v2000, no loss on chunk 0:   4.48 4.18 4.18 4.18 4.17 4.17 4.17
  'repeat:random:64:32x2', k=2, v70 (the probe's layout):    4.18 4.17 4.16 4.16 4.16 4.16 4.16
  same, v2000, input_mask=None:                              4.45 4.18 4.18 4.18 4.17 4.17 4.17
Not yet explained (the probe's own transition also varies between steps ~400 and ~600+ from run to run).
"""
import sys, numpy as np, jax, jax.numpy as jnp, optax
from fot_jax.data import pipeline
from fot_jax.model.config import ModelConfig
from fot_jax.model.crossbatch import mix_plan
from fot_jax.model.params import init_params
from fot_jax.model.transformer import forward
variant = sys.argv[1]
k = int(sys.argv[2]) if len(sys.argv) > 2 else 4
cfg = ModelConfig(vocab_size=2000 if variant != "v70" else 70, hidden_size=64, num_heads=4, num_kv_heads=4, num_layers=4,
                  intermediate_size=128, mem_layers=(1, 2, 3), max_position_embeddings=32, last_context_length=32)
plan = mix_plan(32, k, [(0, 0)] + [(1, 0)] * (k - 1))
vis = jnp.asarray(plan.visible)
b = pipeline.make_batcher("repeat:random:64:32x8", "train", None, 32, 32, k=k, seed=0)
params = init_params(cfg, 0)
opt = optax.adam(3e-3)
state = opt.init(params)
def loss_fn(p, x, y, m, im):
  logits = forward(p, x, cfg, input_mask=im, visible=vis)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None], -1)[..., 0]
  return (nll * m).sum() / m.sum()
@jax.jit
def step(p, s, x, y, m, im):
  l, g = jax.value_and_grad(loss_fn)(p, x, y, m, im)
  u, s = opt.update(g, s, p)
  return optax.apply_updates(p, u), s, l
L = []
for i in range(700):
  bt = b.next_batch()
  m = bt["loss_mask"].copy()
  if "nochunk0" in variant: m[0::k] = 0
  im = bt["input_mask"] if "nomask" not in variant else np.ones_like(bt["input_mask"])
  params, state, l = step(params, state, bt["inputs"], bt["targets"], m, im)
  L.append(float(l))
print(variant, [round(float(np.mean(L[i:i+100])), 2) for i in range(0, 700, 100)])
