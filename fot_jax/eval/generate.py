"""`python -m fot_jax.evaluate generate`: generation with memory from a prompt file (greedy, or sampled).

The prompt is encoded as LongLLaMA does (windows of W, the last LCL tokens local, the rest in memory), then
tokens are generated one at a time with the local cache (evicted into memory when full). Prints the
continuation and writes a JSON record (prompt length, memory size, tokens, text).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from fot_jax.eval import common


def generate(runner, prompt_tokens: np.ndarray, max_new_tokens: int, eos_id: int | None, progress=None,
             sampling=None):
  """Continuation ids [n] of prompt_tokens [N] (stops after EOS when eos_id is given); greedy by default."""
  from fot_jax.model.sampling import Sampling
  out = []
  for i, tok in enumerate(runner.generate_iter(np.asarray(prompt_tokens, np.int32)[None], max_new_tokens,
                                               eos_id, sampling=sampling or Sampling())):
    out.append(int(tok[0]))
    if progress:
      progress(i + 1, f"memory={runner.memory_size}")
  return np.asarray(out, np.int32)


def build_parser():
  p = common.make_parser("generate", __doc__.splitlines()[0], figure=False)
  common.add_vocab_flags(p)
  p.add_argument("--prompt_file", required=True, help="UTF-8 text file with the prompt")
  p.add_argument("--max_new_tokens", type=int, default=64, help="tokens to generate")
  p.add_argument("--stop_at_eos", action="store_true", help="stop after the vocabulary's EOS token")
  p.add_argument("--temperature", type=float, default=0.0, help="0: greedy; > 0: sample (seeded by --seed)")
  p.add_argument("--top_p", type=float, default=1.0, help="with --temperature: nucleus sampling mass in (0, 1]")
  p.add_argument("--sample_top_k", type=int, default=None,
                 help="with --temperature: sample among the k most likely tokens (not --topk, the memory top-k)")
  return p


def sampling_flags(args):
  from fot_jax.model.sampling import Sampling
  if args.temperature == 0 and (args.top_p != 1.0 or args.sample_top_k is not None):
    raise common.EvalError("--top_p/--sample_top_k need --temperature > 0 (temperature 0 is greedy)")
  try:
    return Sampling(temperature=args.temperature, top_p=args.top_p, top_k=args.sample_top_k, seed=args.seed)
  except ValueError as e:
    flag = {"temperature": "--temperature", "top_p": "--top_p", "top_k": "--sample_top_k"}
    name = next((v for k, v in flag.items() if f"Sampling.{k}:" in str(e)), "--temperature")
    raise common.EvalError(f"{name}: {str(e).split(': ', 1)[1]}") from e


def run(args) -> dict:
  common.positive("max_new_tokens", args.max_new_tokens, allow_none=False)
  if not os.path.isfile(args.prompt_file):
    raise common.EvalError(f"--prompt_file {args.prompt_file}: no such file")
  with open(args.prompt_file, encoding="utf-8") as f:
    prompt = f.read()
  options = common.memory_options(args)
  sampling = sampling_flags(args)
  vocab = common.load_vocab(args)
  model = common.load(args)
  common.check_vocab_fits(vocab, model.config)
  tokens = np.asarray(common.bos_prefix(vocab) + list(vocab.encode(prompt)), np.int32)
  if len(tokens) == 0:
    raise common.EvalError(f"--prompt_file {args.prompt_file}: empty prompt")
  from fot_jax.data.vocab import special_ids
  eos = special_ids(vocab)[1] if args.stop_at_eos else None
  runner = common.make_runner_factory(model, options)(1)
  start = time.time()
  new = generate(runner, tokens, args.max_new_tokens, eos,
                 common.Progress("generate", args.max_new_tokens, args.quiet), sampling)
  text = vocab.decode(new.tolist())
  result = {"task": "generate", "model": common.model_summary(model, options),
            "vocab": common.vocab_record(args, vocab), "prompt_file": args.prompt_file,
            "prompt_tokens": int(len(tokens)), "memory_size": int(runner.memory_size),
            "sampling": {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
                         "seed": sampling.seed},
            "new_tokens": new.tolist(), "text": text, "seconds": round(time.time() - start, 3)}
  common.write_json(args.out, result)
  print(text)
  return result


def main(argv=None) -> int:
  return common.run_main("generate", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
