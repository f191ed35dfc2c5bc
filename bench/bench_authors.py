"""fot_jax crossbatch training vs the authors' formulation of it, side by side on the same model (forward+backward).

Run: python bench/bench_authors.py [--ds=1,3 --batch=8 --seq_len=256 --repeats=5]
The model: vocab 1024, hidden 256, 4 heads (MHA), 4 layers, memory layers [1, 2], B=8, L=256, k=d+1 (one document
streams of d+1 entries), the released stepping plan, full remat of every layer, float32; the
step is jit(value_and_grad) of the token cross-entropy. Every variant runs the same fot_jax model and parameters;
only the memory layers' crossbatch attention differs:
  * fot_jax dense / chunked: this codebase (static window offsets, runtime visibility mask);
  * authors: a re-implementation, written here, of how the authors' FoT training code (their EasyLM fork)
    computes crossbatch attention: contexts gathered with an index array fixed at trace time (entry b takes
    b, b-1 .. b-d), logits [B, H, L, d+1, L] from one einsum, the stepping mask added as a trace-time constant
    bias, the causal/padding bias added to the local slot, one softmax over the (d+1)L keys, and the values
    gathered with the same indices.
  * no crossbatch: the same model with no memory layers (local attention only), the floor under any crossbatch
    implementation: authors / floor is the most that a faster crossbatch attention could gain.
Variants are timed interleaved (round-robin) after one warm-up each; the median of --repeats is reported with
the ratio authors time / fot_jax time (> 1: fot_jax is faster). Target: >= 1.3x for d=1 and d=3.
"""

from __future__ import annotations

import argparse
import statistics
import time


import jax
import jax.numpy as jnp
import numpy as np

from fot_jax.model import transformer
from fot_jax.model.attention import MASK_VALUE
from fot_jax.model.config import ModelConfig
from fot_jax.model.crossbatch import released_plan
from fot_jax.model.params import init_params
from fot_jax.train.step import token_stats


def parse_args():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--ds", default="1,3")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--seq_len", type=int, default=256)
  p.add_argument("--repeats", type=int, default=5)
  return p.parse_args()


def authors_attention(batch: int, k: int, d: int, stepping: bool = True):
  """Crossbatch attention as the authors' training code formulates it (trace-time indices and masks)."""
  selector = np.arange(batch)[:, None] - np.arange(d + 1)[None, :]  # [B, d+1]; negative indices wrap
  step = -(-(d + 1) // max(k - 1, 1))
  sizes = [min(min((i % k) * step + 1, d + 1) if stepping and k > 1 else d + 1, i + 1) for i in range(batch)]
  packing = np.where(np.arange(d + 1)[None, :] < np.asarray(sizes)[:, None], 0.0, MASK_VALUE)
  packing = packing.astype(np.float32)[:, None, None, :, None]  # [B, 1, 1, d+1, 1]

  def attention(q, k_local, k_mem, v, key_valid, visible, scale, gate=None, impl=None, chunk_size=None):
    b, length, h, hd = q.shape
    keys = jnp.concatenate([k_local[:, None], k_mem[selector[:, 1:]]], axis=1)  # [B, d+1, L, H, hd]
    logits = jnp.einsum("bqhd,bckhd->bhqck", q * scale, keys)  # [B, H, L, d+1, L]
    causal = jnp.tril(jnp.ones((length, length), bool))[None] & key_valid[:, None, :]
    bias = jnp.where(causal, 0.0, MASK_VALUE)[:, None]  # [B, 1, L, L]
    logits = (logits + packing).at[:, :, :, 0, :].add(bias)
    probs = jax.nn.softmax(logits.reshape(b, h, length, -1), axis=-1).reshape(logits.shape)
    return jnp.einsum("bhqck,bckhd->bqhd", probs, v[selector]).astype(q.dtype)
  return attention


def make_step(model: ModelConfig, visible, attention=None):
  """jit(value_and_grad) of the summed token cross-entropy with full remat; `attention` replaces fot_jax's."""

  def loss(params, tokens, targets):
    original = transformer.crossbatch_attention
    if attention is not None:
      transformer.crossbatch_attention = attention
    try:
      logits = transformer.forward(params, tokens, model, visible=visible, remat="full")
    finally:
      transformer.crossbatch_attention = original
    return token_stats(logits, targets, jnp.ones(targets.shape, jnp.float32))[0]
  return jax.jit(jax.value_and_grad(loss))


def main():
  args = parse_args()
  model = ModelConfig(vocab_size=1024, hidden_size=256, num_heads=4, num_kv_heads=4, num_layers=4,
                      intermediate_size=704, mem_layers=(1, 2), max_position_embeddings=args.seq_len,
                      last_context_length=args.seq_len // 2)
  params = init_params(model, 0)
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, model.vocab_size, (args.batch, args.seq_len + 1)).astype(np.int32)
  inputs, targets = jnp.asarray(tokens[:, :-1]), jnp.asarray(tokens[:, 1:])
  print(f"device {jax.devices()[0].device_kind}; B={args.batch} L={args.seq_len} hidden 256, 4 layers, memory "
        f"layers [1, 2], k=d+1, full remat, fwd+bwd; median of {args.repeats} interleaved runs\n")
  print("| d | authors s | fot_jax dense s | fot_jax chunked s | no crossbatch s | authors / dense | "
        "authors / chunked | authors / no crossbatch (the cap) |")
  print("|---|---|---|---|---|---|---|---|")
  for d in (int(x) for x in args.ds.split(",")):
    k = d + 1
    plan = released_plan(args.batch, k, d)
    visible = jnp.asarray(plan.visible)
    steps = {"authors": make_step(model, visible, authors_attention(args.batch, k, d)),
             "dense": make_step(model, visible),
             "chunked": make_step(model.replace(attention_impl="chunked", attention_chunk_size=128), visible)}
    floor = make_step(model.replace(mem_layers=()), visible)
    losses = {name: float(jax.block_until_ready(fn(params, inputs, targets))[0]) for name, fn in steps.items()}
    jax.block_until_ready(floor(params, inputs, targets))  # warm-up; a different function, so no loss check
    steps["floor"] = floor
    assert max(losses.values()) - min(losses.values()) < 1e-3 * abs(losses["dense"]), losses  # same function
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
      for name, fn in steps.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, inputs, targets))
        times[name].append(time.perf_counter() - t0)
    t = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"| {d} | {t['authors']:.3f} | {t['dense']:.3f} | {t['chunked']:.3f} | {t['floor']:.3f} | "
          f"{t['authors'] / t['dense']:.2f}x | {t['authors'] / t['chunked']:.2f}x | {t['authors'] / t['floor']:.2f}x |",
          flush=True)


if __name__ == "__main__":
  main()
