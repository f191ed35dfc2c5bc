"""Training throughput and MFU of the full train step: three model sizes, d in {1, 8}.

Run: python bench/bench_train.py [--sizes=small,medium,large --ds=1,8 --seq_len=512 --batch_size=16 --steps=3]
Each size has one memory layer. The step is the trainer's jitted train step (AdamW, donation, one device); time
is the median of --steps steps after compilation. MFU = tokens/s x ModelConfig.flops_per_token(L, d) / peak,
with the peak measured in this same run (f32 matmul through XLA, best of 5). The d=8 / d=1 time ratio shows the
cost of crossbatch (target <= 1.3x at L=512); the MFU target is >= 40% of the measured peak for the
largest size.
"""

from __future__ import annotations

import argparse
import statistics
import time


import jax
import numpy as np

from fot_jax.configs import base
from fot_jax.model import backends
from fot_jax.model.config import ModelConfig
from fot_jax.model.crossbatch import released_plan
from fot_jax.model.params import init_params
from fot_jax.train import metrics, optim, step as step_lib

SIZES = {
    "small": dict(vocab_size=2000, hidden_size=128, num_heads=4, num_layers=4, intermediate_size=352),
    "medium": dict(vocab_size=2000, hidden_size=256, num_heads=8, num_layers=6, intermediate_size=704),
    "large": dict(vocab_size=2000, hidden_size=512, num_heads=8, num_layers=8, intermediate_size=1376),
}


def parse_args():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sizes", default="small,medium,large")
  p.add_argument("--ds", default="1,8")
  p.add_argument("--seq_len", type=int, default=512)
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--remat", default="none")
  p.add_argument("--attention_impl", default="dense", choices=backends.names(),
                 help="crossbatch path of the memory layer (a registered attention backend)")
  return p.parse_args()


def time_step(model: ModelConfig, d: int, batch_size: int, seq_len: int, steps: int, remat: str) -> float:
  opt_cfg = base.get_config().optim
  tx, schedule = optim.make_optimizer(opt_cfg, 100)
  state = step_lib.init_state(init_params(model, jax.random.key(0)), tx)
  fn = jax.jit(step_lib.make_train_step(model, tx, schedule, remat=remat), donate_argnums=0)
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, model.vocab_size, (batch_size, seq_len + 1)).astype(np.int32)
  batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": np.ones((batch_size, seq_len), np.float32),
           "input_mask": np.ones((batch_size, seq_len), bool)}
  plan = released_plan(batch_size, 1, d)
  state, m = fn(state, batch, plan.visible)
  jax.block_until_ready(m)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = fn(state, batch, plan.visible)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main():
  args = parse_args()
  peak = metrics.measure_cpu_peak()
  print(f"device: {jax.devices()[0].device_kind}; measured f32 matmul peak {peak / 1e9:.0f} GFLOP/s")
  print(f"L={args.seq_len} B={args.batch_size} one memory layer ({args.attention_impl} crossbatch), AdamW, "
        f"remat={args.remat}\n")
  print("| size | params | d | step s | tokens/s | MFU vs measured peak | time vs d=1 |")
  print("|---|---|---|---|---|---|---|")
  for name in args.sizes.split(","):
    kw = SIZES[name]
    model = ModelConfig(**kw, mem_layers=(kw["num_layers"] // 2,), max_position_embeddings=args.seq_len,
                        last_context_length=args.seq_len // 2, attention_impl=args.attention_impl)
    base_time = None
    for d in (int(x) for x in args.ds.split(",")):
      t = time_step(model, d, args.batch_size, args.seq_len, args.steps, args.remat)
      base_time = base_time or t
      tps = args.batch_size * args.seq_len / t
      mfu = metrics.mfu(tps, model.flops_per_token(args.seq_len, d), 1, peak)
      print(f"| {name} | {model.num_params() / 1e6:.1f}M | {d} | {t:.3f} | {tps:,.0f} | {100 * mfu:.1f}% | "
            f"{t / base_time:.2f}x |", flush=True)


if __name__ == "__main__":
  main()
