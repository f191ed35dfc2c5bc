"""`python -m fot_jax.evaluate passkey`: passkey retrieval accuracy over prompt length x passkey depth.

Prompts are the Landmark/LongLLaMA ones (fot_jax.data.synthetic.passkey_example: instruction, filler, the key
line at the requested depth, filler, "What is the pass key? The pass key is"), measured in tokens of the
model's vocabulary (BOS included) so a length of 32k means 32768 tokens of input. Scoring is teacher-forced:
a prompt counts as solved when the greedy prediction of every answer token (" <key>") is right. Writes a JSON
result and a length x depth accuracy heatmap.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from fot_jax.data.synthetic import landmark_prompt  # noqa: F401  (the authors' prompt, re-exported)
from fot_jax.eval import common

DEFAULT_LENGTHS = "512,1k,2k,4k,8k"
DEFAULT_DEPTHS = "0,0.25,0.5,0.75,1"


@dataclasses.dataclass
class Case:
  length: int  # requested prompt length in tokens (BOS included)
  depth: float
  sample: int
  key: int
  tokens: np.ndarray  # [n] prompt + answer
  answer_mask: np.ndarray  # [n] bool, True on the answer tokens


def case_seed(seed: int, sample: int, depth_index: int) -> int:
  """A distinct generator seed per (run seed, sample, depth); passkey_example also mixes in the length."""
  return seed * 1_000_003 + sample * 101 + depth_index


def make_case(vocab, length: int, depth: float, seed: int, sample: int = 0) -> Case:
  """One prompt of at most `length` tokens (with BOS) followed by its answer tokens."""
  from fot_jax.data import synthetic, tasks
  bos = common.bos_prefix(vocab)
  measure = lambda text: len(bos) + len(vocab.encode(text))  # noqa: E731
  example = synthetic.passkey_example(seed, length, depth, measure=measure)
  doc = tasks.passkey_document(example, vocab)
  tokens = np.concatenate([np.asarray(bos, np.int32), doc["targets"]]).astype(np.int32)
  mask = np.concatenate([np.zeros(len(bos), bool), doc["loss_weights"] > 0])
  return Case(length, depth, sample, example.key, tokens, mask)


def make_cases(vocab, lengths, depths, samples: int, seed: int = 0) -> list[Case]:
  return [make_case(vocab, length, depth, case_seed(seed, s, j), s)
          for length in lengths for j, depth in enumerate(depths) for s in range(samples)]


def score_cases(runner: common.Runner, cases: list[Case], progress=None) -> list[dict]:
  """Single-doc scoring: memory is reset before each prompt. One row per case."""
  rows = []
  for i, case in enumerate(cases):
    runner.reset()
    logprobs, preds = common.stream_scores(runner, case.tokens[None])
    exact, hits = common.answer_match(preds, case.tokens[None], case.answer_mask[None])
    answer_lp = logprobs[0][case.answer_mask[1:]]
    rows.append({"length": case.length, "depth": case.depth, "sample": case.sample, "key": case.key,
                 "tokens": int(len(case.tokens)), "correct": bool(exact[0]),
                 "answer_token_accuracy": float(hits.sum() / case.answer_mask.sum()),
                 "answer_logprob": float(answer_lp.sum())})
    if progress:
      progress(i + 1, f"length={case.length} depth={case.depth:g} correct={rows[-1]['correct']}")
  return rows


def summarize(rows: list[dict], lengths, depths) -> dict:
  """accuracy[i][j] for lengths[i] x depths[j], per-length accuracy and the overall mean."""
  grid = np.full((len(lengths), len(depths)), np.nan)
  for i, length in enumerate(lengths):
    for j, depth in enumerate(depths):
      hit = [r["correct"] for r in rows if r["length"] == length and r["depth"] == depth]
      if hit:
        grid[i, j] = np.mean(hit)
  per_length = [float(np.mean([r["correct"] for r in rows if r["length"] == length])) for length in lengths]
  tokens = [float(np.mean([r["tokens"] for r in rows if r["length"] == length])) for length in lengths]
  return {"lengths": list(lengths), "depths": list(depths), "accuracy": grid.tolist(),
          "accuracy_by_length": per_length, "mean_tokens_by_length": tokens,
          "accuracy_mean": float(np.mean([r["correct"] for r in rows]))}


def plot(result: dict, path: str, compare: list[tuple[str, dict]] = (), label: str = "") -> None:
  """Heatmap (depth x length) of this run, plus an accuracy-vs-length panel with any compared runs."""
  plt = common.pyplot()
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
  grid = np.array(result["accuracy"], float).T  # [depths, lengths]
  im = ax0.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="lower")
  ax0.set_xticks(range(len(result["lengths"])), [_short(n) for n in result["lengths"]])
  ax0.set_yticks(range(len(result["depths"])), [f"{d:g}" for d in result["depths"]])
  for (j, i), v in np.ndenumerate(grid):
    if not np.isnan(v):
      ax0.text(i, j, f"{v:.2f}", ha="center", va="center", fontsize=8)
  ax0.set_xlabel("prompt length (tokens)")
  ax0.set_ylabel("passkey depth")
  ax0.set_title(f"passkey accuracy: {label}")
  fig.colorbar(im, ax=ax0)
  for name, res in [(label, result), *compare]:
    ax1.plot(res["lengths"], res["accuracy_by_length"], marker="o", label=name)
  ax1.set_xscale("log", base=2)
  ax1.set_ylim(-0.03, 1.03)
  ax1.set_xlabel("prompt length (tokens)")
  ax1.set_ylabel("accuracy")
  ax1.legend(fontsize=8)
  ax1.grid(alpha=0.3)
  common.save_figure(fig, path)


def _short(n: int) -> str:
  return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def build_parser():
  p = common.make_parser("passkey", __doc__.splitlines()[0])
  common.add_vocab_flags(p)
  common.add_compare_flag(p)
  p.add_argument("--lengths", default=DEFAULT_LENGTHS, help="prompt lengths in tokens (k = 1024), comma-separated")
  p.add_argument("--depths", default=DEFAULT_DEPTHS, help="passkey depths in [0, 1], comma-separated")
  p.add_argument("--samples", type=int, default=2, help="prompts (different keys) per length x depth cell")
  return p


def run(args) -> dict:
  lengths = common.int_list("lengths", args.lengths)
  depths = common.float_list("depths", args.depths)
  common.positive("samples", args.samples, allow_none=False)
  compare = common.compare_results(args, "passkey")
  options = common.memory_options(args)
  model = common.load(args)
  vocab = common.load_vocab(args)
  common.check_vocab_fits(vocab, model.config)
  try:
    cases = make_cases(vocab, lengths, depths, args.samples, args.seed)
  except ValueError as e:
    raise common.EvalError(f"--lengths: {e}") from e
  runner = common.make_runner_factory(model, options)(1)
  rows = score_cases(runner, cases, common.Progress("passkey", len(cases), args.quiet))
  result = {"task": "passkey", "label": common.run_label(args), "model": common.model_summary(model, options),
            "samples": args.samples, "seed": args.seed, **summarize(rows, lengths, depths), "cases": rows}
  common.write_json(args.out, result)
  plot(result, common.figure_path(args), compare, result["label"])
  return result


def main(argv=None) -> int:
  return common.run_main("passkey", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
