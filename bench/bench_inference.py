"""Long-prompt inference with memory, fot_jax vs the exported PyTorch LongLLaMA, same weights, same W and LCL.

  python bench/bench_inference.py [--lengths=8k,32k,128k] [--gen_prompt=32k] [--new_tokens=128] [--json=PATH]

One random model (hidden 256, 4 layers, 4 heads, memory layers [1, 2], W = LCL = 512, float32 memory) is
exported once with fot_jax's Hugging Face export; the PyTorch side loads that folder with trust_remote_code.
Every cell runs in its own subprocess so its peak resident memory (ru_maxrss) is its own; both sides run on the
same CPUs with one intra-op thread each. Speeds are tokens per CPU-second of the process (all its threads), so a
machine shared with other work does not bias the ratio; wall seconds are reported beside them. Times exclude one warm-up on a short prompt (jit compilation; the fot_jax
memory is sized for the whole prompt up front so nothing recompiles while timing).
Reported: encode tokens/s per prompt length, greedy-generation tokens/s after --gen_prompt tokens, peak memory,
and its slope in bytes per prompt token (least squares over the lengths, with the two segment slopes).
Targets: encode 32k and 128k, and generation, at >= 2x PyTorch's tokens/s; peak memory linear in the length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ is a folder of scripts, not a package
from bench_sizes import parse_size  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2.0 ** 20


def model_config(args):
  from fot_jax.model.config import ModelConfig
  return ModelConfig(vocab_size=args.vocab, hidden_size=256, num_heads=4, num_layers=4, intermediate_size=688,
                     mem_layers=(1, 2), max_position_embeddings=args.window, last_context_length=args.window,
                     mem_dtype="float32")


def export_model(args, folder: str) -> None:
  from fot_jax.convert import hf
  from fot_jax.model.params import init_params
  config = model_config(args)
  hf.write_hf_folder(folder, init_params(config, 0), config)


def prompt_tokens(args, length: int) -> np.ndarray:
  return np.random.default_rng(length).integers(3, args.vocab, (1, length)).astype(np.int32)


# ---- workers (one cell each, in a subprocess) -----------------------------------------------------------------
class Clock:
  """Wall and process CPU seconds of a timed part."""

  def __enter__(self):
    self.wall, self.cpu = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc):
    self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def jax_cell(args, folder: str, task: str, length: int) -> Clock:
  """Clock of the timed part: encode `length` tokens, or generate args.new_tokens after them."""
  import jax
  from fot_jax.eval.loading import load_model
  from fot_jax.model.inference import MemoryInference, MemoryOptions
  loaded = load_model(folder, None, mem_dtype="float32")
  runner = MemoryInference(loaded.params, loaded.config, 1, options=MemoryOptions(block=args.block),
                           initial_capacity=length + 2 * args.window)
  warm = prompt_tokens(args, 2 * args.window + 7)
  if task == "encode":
    jax.block_until_ready(runner.encode(warm))
    runner.reset()
    prompt = prompt_tokens(args, length)
    with Clock() as clock:
      jax.block_until_ready(runner.encode(prompt))
    return clock
  runner.generate(warm, 3)
  runner.reset()
  steps = runner.generate_iter(prompt_tokens(args, length), args.new_tokens)
  next(steps)  # the prompt is encoded and the first token chosen
  with Clock() as clock:
    for _ in steps:
      pass
  return clock


def torch_cell(args, folder: str, task: str, length: int) -> Clock:
  import torch
  import transformers
  torch.set_num_threads(1)
  model = transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
  warm = torch.tensor(prompt_tokens(args, 2 * args.window + 7), dtype=torch.long)
  prompt = torch.tensor(prompt_tokens(args, length), dtype=torch.long)
  with torch.no_grad():
    model(warm)
    if task == "encode":
      with Clock() as clock:
        model(prompt)
      return clock
    out = model(prompt, use_cache=True)  # what model.generate does, with the decode loop timed alone
    cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else out.cache
    nxt = out.logits[:, -1].argmax(-1)
    with Clock() as clock:
      for _ in range(args.new_tokens - 1):
        out = model(nxt[:, None], cache=cache)
        nxt = out.logits[:, -1].argmax(-1)
    return clock


def worker(args) -> None:
  impl, task, length = args.worker.split(":")
  cell = jax_cell if impl == "fot_jax" else torch_cell
  clock = cell(args, args.folder, task, int(length))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
  print(json.dumps({"seconds": clock.wall, "cpu_seconds": clock.cpu, "peak_bytes": peak}))


def run_cell(args, folder: str, impl: str, task: str, length: int) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), f"--worker={impl}:{task}:{length}", f"--folder={folder}",
         f"--window={args.window}", f"--vocab={args.vocab}", f"--block={args.block}",
         f"--new_tokens={args.new_tokens}"]
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
  if proc.returncode != 0:
    raise RuntimeError(f"{impl} {task} {length}: worker failed:\n{proc.stderr[-3000:]}")
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  tokens = length if task == "encode" else args.new_tokens - 1
  row = dict(impl=impl, task=task, length=length, tokens_per_s=tokens / out["cpu_seconds"], **out)
  print(f"  {impl:>8} {task:>8} {length:>8,} tokens: {out['cpu_seconds']:8.2f} CPU s ({out['seconds']:.2f} wall s)  "
        f"{row['tokens_per_s']:9.1f} tok/CPU-s  "
        f"peak {out['peak_bytes'] / MIB:8.0f} MiB", flush=True)
  return row


def slope(rows: list[dict]) -> dict:
  """Least-squares bytes per prompt token of peak memory, and the slopes of consecutive segments."""
  x = np.asarray([r["length"] for r in rows], float)
  y = np.asarray([r["peak_bytes"] for r in rows], float)
  fit = np.polyfit(x, y, 1) if len(x) > 1 else [float("nan"), y[0]]
  segments = [float((y[i + 1] - y[i]) / (x[i + 1] - x[i])) for i in range(len(x) - 1)]
  return {"bytes_per_token": float(fit[0]), "intercept_mib": float(fit[1] / MIB), "segment_slopes": segments}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--lengths", default="8k,32k,128k", help="encoded prompt lengths")
  p.add_argument("--gen_prompt", default="32k", help="prompt length before generation ('' to skip generation)")
  p.add_argument("--new_tokens", type=int, default=128)
  p.add_argument("--window", type=int, default=512, help="W = LCL")
  p.add_argument("--vocab", type=int, default=1024, help="small, so that [N, vocab] logits of 128k tokens fit")
  p.add_argument("--block", type=int, default=512, help="fot_jax memory keys scored at once")
  p.add_argument("--impls", default="fot_jax,torch")
  p.add_argument("--json", default=None, help="write the table here")
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    return worker(args)
  lengths = [parse_size(s) for s in args.lengths.split(",") if s.strip()]
  impls = [s.strip() for s in args.impls.split(",") if s.strip()]
  bad = [i for i in impls if i not in ("fot_jax", "torch")]
  if bad or not lengths or min(lengths) <= 0 or args.new_tokens < 2:
    raise SystemExit(f"bench_inference: --impls must name fot_jax/torch (found {bad}), --lengths positive "
                     f"(found {lengths}), --new_tokens >= 2 (found {args.new_tokens})")
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, "export")
    export_model(args, folder)
    print(f"model: hidden 256, 4 layers, memory layers [1, 2], W = LCL = {args.window}, vocab {args.vocab}, "
          f"float32 memory; exported to {folder}")
    for length in lengths:
      for impl in impls:
        rows.append(run_cell(args, folder, impl, "encode", length))
    if args.gen_prompt:
      for impl in impls:
        rows.append(run_cell(args, folder, impl, "generate", parse_size(args.gen_prompt)))
  table = {"rows": rows, "ratios": {}, "memory_slope": {}}
  print(f"\n{'task':>9} {'tokens':>8} " + " ".join(f"{i + ' tok/CPU-s':>18}" for i in impls) + f" {'fot_jax/torch':>14}")
  for task in ("encode", "generate"):
    for length in sorted({r["length"] for r in rows if r["task"] == task}):
      cell = {r["impl"]: r for r in rows if r["task"] == task and r["length"] == length}
      ratio = (cell["fot_jax"]["tokens_per_s"] / cell["torch"]["tokens_per_s"]) if len(cell) == 2 else float("nan")
      table["ratios"][f"{task}_{length}"] = ratio
      print(f"{task:>9} {length:>8,} " + " ".join(f"{cell[i]['tokens_per_s']:>18.1f}" for i in impls)
            + f" {ratio:>13.2f}x")
  for impl in impls:
    enc = sorted((r for r in rows if r["impl"] == impl and r["task"] == "encode"), key=lambda r: r["length"])
    table["memory_slope"][impl] = s = slope(enc)
    print(f"peak memory {impl}: {s['bytes_per_token']:.0f} bytes per prompt token (segments "
          f"{', '.join(f'{v:.0f}' for v in s['segment_slopes'])}), intercept {s['intercept_mib']:.0f} MiB")
  checks = {k: v >= 2.0 for k, v in table["ratios"].items() if k.startswith("generate")
            or int(k.split("_")[1]) >= 32768}
  table["targets"] = checks
  print("targets (>= 2x PyTorch's tokens/s): " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in checks.items()))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(table, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
