"""`python -m fot_jax.evaluate copy_distance`: can the model copy a random sequence it saw D tokens ago?

The id-level passkey (claim (b) of docs/RESULTS.md for models trained on random symbols, which have no text
vocabulary): a document is BOS, a random S-token needle X, D tokens of filler drawn from the same symbols (so
the filler is full of distractors that share X's tokens), then X again. The second copy is scored
teacher-forced: token accuracy on its tokens 2..S (each predicted from the copy's own earlier tokens plus
whatever the model retrieves), and the share of documents with all of them right. The first copy is S + D
tokens back, in memory once that exceeds the window; without usable memory the second copy is at chance
(1/symbols per token). D is rounded up until S + D is a multiple of the window W, so the copies sit at the same
offset within their chunks, as in training on period-W repeats (`repeat:random:<symbols>:<W>x<R>`).
"""

from __future__ import annotations

import sys

import numpy as np

from fot_jax.data.synthetic import SYNTHETIC_SPLIT_SEEDS
from fot_jax.eval import common

BOS, FIRST_SYMBOL = 1, 3  # as the batcher and fot_jax.data.derived.RandomTokenDocuments
TEST_SPLIT = SYNTHETIC_SPLIT_SEEDS["test"]  # the synthetic sources' test split, never a training draw


def aligned_distance(distance: int, window: int, segment: int) -> int:
  """The smallest filler length >= distance that puts the second copy at the first copy's chunk offset."""
  return -(-(segment + distance) // window) * window - segment


def build_inputs(num_docs: int, distance: int, segment: int, symbols: int, seed: int):
  """tokens [num_docs, 1 + 2*segment + distance] and masks of the scored tokens (copy 2 without its first)."""
  rng = np.random.default_rng([seed, TEST_SPLIT, distance])
  needle = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + symbols, (num_docs, segment))
  filler = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + symbols, (num_docs, distance))
  tokens = np.concatenate([np.full((num_docs, 1), BOS), needle, filler, needle], axis=1).astype(np.int32)
  mask = np.zeros(tokens.shape, bool)
  mask[:, 2 + segment + distance:] = True  # copy 2 starts at 1 + segment + distance; its first token is a guess
  return tokens, mask


def score(runner_factory, tokens: np.ndarray, masks: np.ndarray, batch_size: int) -> dict:
  """Token accuracy and all-tokens-right share of the second copies; memory reset for every batch."""
  exact, hits = common.batched_answer_hits(runner_factory, tokens, masks, batch_size)
  return {"accuracy": float(np.mean(hits[masks])), "exact": float(np.mean(exact)), "documents": len(exact)}


def plot(result: dict, path: str, compare=(), label: str = "") -> None:
  plt = common.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, res in [(label, result), *compare]:
    ax.plot([max(d, 1) for d in res["distances"]], res["accuracy"], marker="o", label=name)
  ax.axhline(1 / result["symbols"], color="gray", ls=":", label="chance (1/symbols)")
  common.finish_axes(ax, "tokens between the two copies (filler)", "token accuracy on the second copy",
                     f"copy at a distance ({result['segment']}-token needle)", unit_y=True)
  common.save_figure(fig, path)


def build_parser():
  p = common.make_parser("copy_distance", __doc__.splitlines()[0])
  common.add_compare_flag(p)
  p.add_argument("--distances", default="0,256,1k,4k,16k,32k",
                 help="filler tokens between the copies, comma-separated (k = 1024); each is rounded up so the "
                      "copies share their chunk offset")
  p.add_argument("--segment", type=int, default=None, help="needle length S (default: the window W)")
  p.add_argument("--symbols", type=int, default=64, help="needle and filler symbols (ids 3 .. 3+symbols-1)")
  p.add_argument("--num_docs", type=int, default=16, help="documents per distance")
  p.add_argument("--batch_size", type=int, default=8, help="documents per pass")
  return p


def run(args) -> dict:
  distances = common.int_list("distances", args.distances, minimum=0)
  for flag in ("num_docs", "batch_size"):
    common.positive(flag, getattr(args, flag), allow_none=False)
  common.positive("segment", args.segment)
  if args.symbols < 2:
    raise common.EvalError(f"--symbols: expected >= 2, found {args.symbols}")
  compare = common.compare_results(args, "copy_distance")
  options = common.memory_options(args)
  model = common.load(args)
  if model.config.vocab_size < FIRST_SYMBOL + args.symbols:
    raise common.EvalError(f"--symbols={args.symbols}: needs vocab_size >= {FIRST_SYMBOL + args.symbols}, the "
                           f"model has {model.config.vocab_size}")
  window = model.config.max_position_embeddings
  segment = args.segment or window
  if segment < 2:
    raise common.EvalError(f"--segment: expected >= 2 (the first token of a copy is not scored), found {segment}")
  factory = common.make_runner_factory(model, options)
  progress = common.Progress("copy_distance", len(distances), args.quiet, every=0.0)
  result = {"task": "copy_distance", "label": common.run_label(args), "model": common.model_summary(model, options),
            "vocab": common.synthetic_vocab_record(FIRST_SYMBOL + args.symbols),
            "segment": segment, "symbols": args.symbols, "num_docs": args.num_docs, "seed": args.seed,
            "distances": [], "accuracy": [], "exact": [], "documents": []}
  for i, asked in enumerate(distances):
    distance = aligned_distance(asked, window, segment)
    tokens, masks = build_inputs(args.num_docs, distance, segment, args.symbols, args.seed)
    scores = score(factory, tokens, masks, args.batch_size)
    result["distances"].append(distance)
    for k in ("accuracy", "exact", "documents"):
      result[k].append(scores[k])
    progress(i + 1, f"distance={distance} accuracy={scores['accuracy']:.3f} exact={scores['exact']:.3f}")
  return common.publish(args, result, plot, compare)


def main(argv=None) -> int:
  return common.run_main("copy_distance", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
