"""`python -m fot_jax.evaluate logprobs`: per-token log-probabilities of a token array, with memory inference.

Reads [batch, length] int tokens (.npy), writes float32 [batch, length-1]: entry t is
log p(tokens[t+1] | tokens[0..t]) computed as LongLLaMA does (docs/BEHAVIOUR.md section 3 windowing and memory).
Used to compare checkpoints (JAX vs exported PyTorch) and as the core of perplexity evaluation.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from fot_jax.model.config import ModelConfig
from fot_jax.model.modules import FoTLlama


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m fot_jax.evaluate logprobs", description=__doc__.splitlines()[0])
  p.add_argument("--checkpoint", required=True, help="orbax workdir or Hugging Face folder")
  p.add_argument("--step", type=int, default=None, help="orbax checkpoint step (default: latest)")
  p.add_argument("--tokens", required=True, help=".npy file of int tokens [batch, length]")
  p.add_argument("--out", required=True, help=".npy output, float32 [batch, length-1]")
  p.add_argument("--last_context_length", type=int, default=None, help="overrides the checkpoint's LCL")
  p.add_argument("--window", type=int, default=None, help="W; overrides max_position_embeddings")
  p.add_argument("--mem_layers", default=None, help="comma-separated memory layers, e.g. 1,2 ('' for none)")
  p.add_argument("--mem_dtype", default=None, help="float32|bfloat16|float16 (default: the checkpoint's)")
  p.add_argument("--batch_size", type=int, default=None, help="rows per pass (default: all rows at once)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
  return p


def read_tokens(path: str) -> np.ndarray:
  """Loads and checks a [batch, length>=2] integer array."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--tokens {path}: no such file")
  try:
    tokens = np.load(path, allow_pickle=False)
  except ValueError as e:
    raise ValueError(f"--tokens {path}: not a numpy .npy array ({e})") from e
  if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(f"--tokens {path}: expected a 2-D integer array [batch, length], found shape "
                     f"{tokens.shape} dtype {tokens.dtype}")
  if tokens.shape[0] < 1 or tokens.shape[1] < 2:
    raise ValueError(f"--tokens {path}: need at least 1 row and 2 tokens per row, found shape {tokens.shape}")
  return tokens.astype(np.int32)


def token_logprobs(params, config: ModelConfig, tokens: np.ndarray, batch_size: int | None = None,
                   mem_dtype: str | None = None) -> np.ndarray:
  """float32 [B, L-1] log p(tokens[:, t+1] | tokens[:, :t+1]) with memory inference (config's W and LCL)."""
  if tokens.min() < 0 or tokens.max() >= config.vocab_size:
    raise ValueError(f"tokens: ids must lie in [0, vocab_size={config.vocab_size}), found "
                     f"[{tokens.min()}, {tokens.max()}]")
  batch_size = batch_size or tokens.shape[0]
  window = config.max_position_embeddings
  # Memory never holds more than the input: size it once so it is not regrown (and recompiled) per window.
  capacity = max(-(-tokens.shape[1] // window) * window, window)
  model = FoTLlama.from_params(config, params)
  out = []
  for start in range(0, tokens.shape[0], batch_size):
    rows = tokens[start:start + batch_size]
    runner = model.memory(rows.shape[0], mem_dtype=mem_dtype, initial_capacity=capacity)
    logits = runner.encode(rows)  # [b, L, V] float32
    out.append(np.asarray(_gather_logprobs(logits, jnp.asarray(rows))))
  return np.concatenate(out, axis=0)


@jax.jit
def _gather_logprobs(logits, tokens):
  logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)  # [B, L-1, V]
  return jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]


def run(args) -> np.ndarray:
  """Checks flags and files, loads the model, writes the log-probabilities; returns them."""
  from fot_jax.eval.common import load, positive
  from fot_jax.eval.loading import checkpoint_kind
  if os.path.exists(args.out) and not args.overwrite:
    raise FileExistsError(f"--out {args.out} exists; pass --overwrite to replace it")
  tokens = read_tokens(args.tokens)
  checkpoint_kind(args.checkpoint)
  positive("batch_size", args.batch_size)
  model = load(args)  # the evaluators' loader: overrides, flag checks, W >= LCL
  config = model.config
  logprobs = token_logprobs(model.params, config, tokens, args.batch_size)
  with open(args.out, "wb") as f:  # exactly this path (np.save on a name would append .npy)
    np.save(f, logprobs.astype(np.float32))
  return logprobs


def main(argv=None) -> int:
  from fot_jax.eval import common
  return common.run_main("logprobs", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
