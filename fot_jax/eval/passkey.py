"""`python -m fot_jax.evaluate passkey`: passkey retrieval accuracy, the authors' test by default.

Two prompt generators (--prompt):
  landmark    (default) the authors' test: fot_jax.data.synthetic.landmark_prompt(n_garbage, seed), byte for byte
              LongLLaMA's examples/utils/landmark_prompt.py (a seeded Landmark Attention run_test.py): n_garbage
              characters of filler cut from one repeated string, the key line after randint(0, n_garbage) of
              them, key randint(1, 50000), both drawn from numpy's legacy generator seeded with `seed`. The grid
              is n_garbage values x seeds: --n_garbage=30k,60k (characters, k = 1000, the authors' unit) or
              --tokens=1k,4k,32k (k = 1024: for each, the n_garbage whose prompt is about that many tokens of
              the model's vocabulary, BOS included, calibrated by tokenizing the filler; the real counts are
              reported), and --seeds=0-9 (the authors' seeds are plain integers; ranges and lists allowed).
  depth_grid  the earlier prompts: synthetic.passkey_example with whole filler sentences, the longest prompt of
              at most --lengths tokens, the key at each of --depths, --samples keys per cell. Chosen by
              --prompt=depth_grid, or when --lengths/--depths/--samples are given without --prompt (so earlier
              command lines keep their meaning).
Input: BOS (when the vocabulary has one, as in training) + the prompt's tokens; the answer is " <key>", tokenized
in context for both generators (synthetic.passkey_document: the tokens that follow the prompt's in
encode(prompt + " " + key), which for a SentencePiece vocabulary is the authors' tokenizer(key)[1:]). Scoring is
teacher-forced greedy: a prompt is solved when the argmax at every answer token is that token, which is the
authors' check (greedy generation of len(answer) tokens equals the answer).
Memory is reset before each prompt (single-doc). Writes a JSON result and a figure.

Python API (no CLI): landmark_cases(vocab, n_garbages, seeds), n_garbage_for_tokens(vocab, tokens),
score_cases(runner, cases) and summarize(rows, lengths); make_cases for the depth grid.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Sequence

import numpy as np

from fot_jax.data import synthetic
from fot_jax.data.synthetic import landmark_prompt  # the authors' prompt, re-exported
from fot_jax.eval import common

DEFAULT_LENGTHS = "512,1k,2k,4k,8k"
DEFAULT_DEPTHS = "0,0.25,0.5,0.75,1"
DEFAULT_SAMPLES = 2
DEFAULT_TOKENS = "512,1k,2k,4k,8k"
DEFAULT_SEEDS = "0-9"
MAX_SEED = 2**32 - 1  # numpy's legacy np.random.seed range


# ---- depth grid (synthetic.passkey_example) ---------------------------------------------------------------------
@dataclasses.dataclass
class Case:
  length: int  # requested prompt length in tokens (BOS included)
  depth: float
  sample: int
  key: int
  tokens: np.ndarray  # [n] prompt + answer
  answer_mask: np.ndarray  # [n] bool, True on the answer tokens

  def info(self) -> dict:
    return {"length": self.length, "depth": self.depth, "sample": self.sample, "key": self.key,
            "tokens": int(len(self.tokens))}


def case_seed(seed: int, sample: int, depth_index: int) -> int:
  """A distinct generator seed per (run seed, sample, depth); passkey_example also mixes in the length."""
  return seed * 1_000_003 + sample * 101 + depth_index


def make_case(vocab, length: int, depth: float, seed: int, sample: int = 0) -> Case:
  """One prompt of at most `length` tokens (with BOS) followed by its answer tokens."""
  bos = common.bos_prefix(vocab)
  measure = lambda text: len(bos) + len(vocab.encode(text))  # noqa: E731
  example = synthetic.passkey_example(seed, length, depth, measure=measure)
  doc = synthetic.passkey_document(vocab.encode, example.prompt, example.answer, bos=bos)
  return Case(length, depth, sample, example.key, doc["targets"], doc["loss_weights"] > 0)


def make_cases(vocab, lengths, depths, samples: int, seed: int = 0) -> list[Case]:
  return [make_case(vocab, length, depth, case_seed(seed, s, j), s)
          for length in lengths for j, depth in enumerate(depths) for s in range(samples)]


# ---- landmark prompts (the authors' test) -------------------------------------------------------------------------
@dataclasses.dataclass
class LandmarkCase:
  length: int  # the grid row: the --tokens target, or n_garbage itself
  n_garbage: int  # filler characters
  seed: int
  key: int
  depth: float  # prefix / n_garbage: the share of the filler before the key line
  characters: int  # len(prompt text)
  tokens: np.ndarray  # [n] BOS + prompt + answer
  answer_mask: np.ndarray  # [n] bool, True on the answer tokens

  def info(self) -> dict:
    answer = int(self.answer_mask.sum())
    return {"length": self.length, "n_garbage": self.n_garbage, "seed": self.seed, "key": self.key,
            "depth": self.depth, "characters": self.characters, "tokens": int(len(self.tokens)) - answer,
            "answer_tokens": answer}


@functools.lru_cache(maxsize=1)
def landmark_filler_chars() -> int:
  """Characters of the authors' filler (5000 repeats of the five sentences): the largest n_garbage, 449,999."""
  return len(" ".join([" ".join(synthetic.PASSKEY_FILLER)] * synthetic.LANDMARK_FILLER_REPEATS))


def answer_tokens(vocab, prompt: str, prompt_ids: Sequence[int], key) -> np.ndarray:
  """The tokens of " <key>" where they follow the prompt (synthetic.answer_in_place): what the authors score."""
  return np.asarray(synthetic.answer_in_place(vocab.encode, prompt, prompt_ids, f" {key}"), np.int32)


def landmark_case(vocab, n_garbage: int, seed: int, length: int | None = None) -> LandmarkCase:
  """One authors' prompt: BOS + encode(landmark_prompt(n_garbage, seed)) + the answer tokens."""
  text, key = landmark_prompt(n_garbage, seed)
  prefix = len(text.split("\n")[1])  # the filler before the key line (filler has no newlines)
  doc = synthetic.passkey_document(vocab.encode, text, f" {key}", bos=common.bos_prefix(vocab))
  return LandmarkCase(n_garbage if length is None else int(length), int(n_garbage), int(seed), int(key),
                      prefix / n_garbage, len(text), doc["targets"], doc["loss_weights"] > 0)


def landmark_cases(vocab, n_garbages: Sequence[int], seeds: Sequence[int],
                   lengths: Sequence[int] | None = None) -> list[LandmarkCase]:
  """The grid n_garbages x seeds (row-major). `lengths` labels the rows (default: the n_garbage values; the CLI
  passes its --tokens targets)."""
  lengths = list(n_garbages) if lengths is None else list(lengths)
  if len(lengths) != len(n_garbages):
    raise ValueError(f"landmark_cases: {len(lengths)} lengths for {len(n_garbages)} n_garbage values")
  return [landmark_case(vocab, n, s, length) for n, length in zip(n_garbages, lengths) for s in seeds]


def landmark_token_model(vocab) -> tuple[int, float]:
  """(fixed, per_char): a landmark prompt is about fixed + per_char * n_garbage tokens, BOS included.

  fixed: the prompt without filler (a 5-digit key, as 80% of keys); per_char: tokens per character of 100
  filler blocks."""
  block = " ".join(synthetic.PASSKEY_FILLER)
  info = "The pass key is 12345. Remember it. 12345 is the pass key."
  bare = "\n".join([synthetic.PASSKEY_INSTRUCTION, "", info, "", synthetic.PASSKEY_QUESTION])
  fixed = len(common.bos_prefix(vocab)) + len(vocab.encode(bare))
  sample = " ".join([block] * 100)
  return fixed, len(vocab.encode(sample)) / len(sample)


def n_garbage_for_tokens(vocab, tokens: int) -> int:
  """The n_garbage whose landmark prompt is about `tokens` tokens (BOS included) in this vocabulary.

  ValueError when no n_garbage in [1, 449,999] gets there (the message gives the reachable range)."""
  fixed, per_char = landmark_token_model(vocab)
  n = int(round((tokens - fixed) / per_char))
  lo, hi = fixed + 1, int(fixed + per_char * landmark_filler_chars())
  if n < 1 or n > landmark_filler_chars():
    raise ValueError(f"{tokens} tokens is outside what the authors' prompt reaches in this vocabulary "
                     f"(about {lo}..{hi} tokens: 1..{landmark_filler_chars()} filler characters)")
  return n


# ---- scoring and summary -------------------------------------------------------------------------------------------
def score_cases(runner: common.Runner, cases: Sequence[Case | LandmarkCase], progress=None) -> list[dict]:
  """Single-doc scoring: memory is reset before each prompt. One row per case: the case's info() plus correct
  (every answer token predicted), answer_token_accuracy and answer_logprob (sum over the answer tokens)."""
  rows = []
  for i, case in enumerate(cases):
    runner.reset()
    first_answer = int(np.argmax(case.answer_mask))
    logprobs, preds = common.end_scores(runner, case.tokens[None], first_answer - 1)
    exact, hits = common.answer_match(preds, case.tokens[None], case.answer_mask[None])
    answer_lp = logprobs[0][case.answer_mask[1:]]
    rows.append({**case.info(), "correct": bool(exact[0]),
                 "answer_token_accuracy": float(hits.sum() / case.answer_mask.sum()),
                 "answer_logprob": float(answer_lp.sum())})
    if progress:
      where = f"seed={case.seed}" if isinstance(case, LandmarkCase) else f"depth={case.depth:g}"
      progress(i + 1, f"length={case.length} {where} correct={rows[-1]['correct']}")
  return rows


def _mean(values) -> float:
  return float(np.mean(values)) if len(values) else float("nan")


def summarize(rows: list[dict], lengths, depths=None) -> dict:
  """Per grid row (rows' "length" in `lengths`): accuracy_by_length, mean_tokens_by_length (and, for landmark
  rows, mean_characters_by_length); with `depths` (the depth grid) also accuracy[i][j] for lengths[i] x
  depths[j]; accuracy_mean over all rows."""
  out: dict = {"lengths": list(lengths)}
  if depths is not None:
    grid = np.full((len(lengths), len(depths)), np.nan)
    for i, length in enumerate(lengths):
      for j, depth in enumerate(depths):
        hit = [r["correct"] for r in rows if r["length"] == length and r["depth"] == depth]
        if hit:
          grid[i, j] = np.mean(hit)
    out.update(depths=list(depths), accuracy=grid.tolist())
  by = lambda field, length: [r[field] for r in rows if r["length"] == length]  # noqa: E731
  out["accuracy_by_length"] = [_mean(by("correct", n)) for n in lengths]
  out["mean_tokens_by_length"] = [_mean(by("tokens", n)) for n in lengths]
  if rows and "characters" in rows[0]:
    out["mean_characters_by_length"] = [_mean(by("characters", n)) for n in lengths]
  out["accuracy_mean"] = _mean([r["correct"] for r in rows])
  return out


# ---- figure -----------------------------------------------------------------------------------------------------
def plot(result: dict, path: str, compare: list[tuple[str, dict]] = (), label: str = "") -> None:
  """Left: this run's depth x length heatmap (depth grid) or per-case depth vs tokens, coloured by correct
  (landmark). Right: accuracy vs prompt tokens (each row's mean) of this run and any compared runs."""
  plt = common.pyplot()
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
  if result.get("mode") == "landmark":
    cases = result["cases"]
    for ok, color, marker, name in ((True, "tab:green", "o", "correct"), (False, "tab:red", "x", "wrong")):
      pts = [(c["tokens"], c["depth"]) for c in cases if c["correct"] == ok]
      if pts:
        ax0.scatter(*zip(*pts), c=color, marker=marker, s=22, label=name)
    ax0.set_xscale("log", base=2)
    ax0.set_ylim(-0.05, 1.05)
    ax0.set_xlabel("prompt tokens")
    ax0.set_ylabel("key depth (prefix / n_garbage)")
    ax0.legend(fontsize=8)
    ax0.grid(alpha=0.3)
  else:
    grid = np.array(result["accuracy"], float).T  # [depths, lengths]
    im = ax0.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="lower")
    ax0.set_xticks(range(len(result["lengths"])), [_short(n) for n in result["lengths"]])
    ax0.set_yticks(range(len(result["depths"])), [f"{d:g}" for d in result["depths"]])
    for (j, i), v in np.ndenumerate(grid):
      if not np.isnan(v):
        ax0.text(i, j, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax0.set_xlabel("prompt length (tokens)")
    ax0.set_ylabel("passkey depth")
    fig.colorbar(im, ax=ax0)
  ax0.set_title(f"passkey ({result.get('mode', 'depth_grid')}): {label}")
  for name, res in [(label, result), *compare]:
    x = res.get("mean_tokens_by_length") or res["lengths"]
    ax1.plot(x, res["accuracy_by_length"], marker="o", label=f"{name} ({res.get('mode', 'depth_grid')})")
  common.finish_axes(ax1, "prompt tokens (mean per grid row)", "accuracy", unit_y=True)
  common.save_figure(fig, path)


def _short(n: int) -> str:
  return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


# ---- command line -----------------------------------------------------------------------------------------------
def seed_list(text: str) -> list[int]:
  """'0-9' -> [0..9]; '0,5,555' and '0-4,555' too (ranges inclusive). Seeds are in [0, 2**32 - 1], distinct."""
  out = []
  for part in str(text).split(","):
    part = part.strip()
    if not part:
      continue
    lo, sep, hi = part.partition("-")
    try:
      lo_i = int(lo)
      hi_i = int(hi) if sep else lo_i
    except ValueError as e:
      raise common.EvalError(f"--seeds: expected seeds and ranges like 0-9 or 0,5,555, found {text!r}") from e
    if not 0 <= lo_i <= hi_i <= MAX_SEED:
      raise common.EvalError(f"--seeds: {part!r} is not a seed or an increasing range in [0, {MAX_SEED}]")
    out.extend(range(lo_i, hi_i + 1))
  if not out:
    raise common.EvalError(f"--seeds: expected at least one seed, found {text!r}")
  if len(set(out)) != len(out):
    raise common.EvalError(f"--seeds: a seed is listed twice in {text!r}")
  return out


def build_parser():
  p = common.make_parser("passkey", __doc__.splitlines()[0])
  common.add_vocab_flags(p)
  common.add_compare_flag(p)
  p.add_argument("--prompt", choices=("landmark", "depth_grid"), default=None,
                 help="landmark (default): the authors' prompts, n_garbage x seeds; depth_grid: --lengths x "
                      "--depths x --samples (implied when one of those is given)")
  p.add_argument("--n_garbage", default=None,
                 help=f"landmark: filler characters per grid row, comma-separated, k = 1000 (e.g. 30k,60k; at "
                      f"most {landmark_filler_chars()}); or --tokens")
  p.add_argument("--tokens", default=None,
                 help=f"landmark: target prompt lengths in tokens (BOS included), comma-separated, k = 1024; "
                      f"n_garbage is calibrated per vocabulary (default {DEFAULT_TOKENS}); or --n_garbage")
  p.add_argument("--seeds", default=None, help=f"landmark: prompt seeds, e.g. 0-9 or 0,5,555 (default {DEFAULT_SEEDS})")
  p.add_argument("--lengths", default=None,
                 help=f"depth_grid: prompt lengths in tokens (k = 1024), comma-separated (default {DEFAULT_LENGTHS})")
  p.add_argument("--depths", default=None,
                 help=f"depth_grid: passkey depths in [0, 1], comma-separated (default {DEFAULT_DEPTHS})")
  p.add_argument("--samples", type=int, default=None,
                 help=f"depth_grid: prompts (different keys) per length x depth cell (default {DEFAULT_SAMPLES})")
  return p


GRID_FLAGS = ("lengths", "depths", "samples")
LANDMARK_FLAGS = ("n_garbage", "tokens", "seeds")


def prompt_mode(args) -> str:
  """--prompt, else depth_grid when a depth-grid flag is given, else landmark; flags of the other mode are errors."""
  given = lambda flags: [f"--{f}" for f in flags if getattr(args, f) is not None]  # noqa: E731
  mode = args.prompt or ("depth_grid" if given(GRID_FLAGS) else "landmark")
  other = given(GRID_FLAGS if mode == "landmark" else LANDMARK_FLAGS)
  if other:
    raise common.EvalError(f"{', '.join(other)}: not a flag of --prompt={mode} (landmark takes --n_garbage or "
                           f"--tokens and --seeds; depth_grid takes --lengths, --depths and --samples)")
  return mode


def parse_n_garbage(text: str) -> list[int]:
  """--n_garbage: filler characters, k = 1000 ('30k' = 30000, the authors' n_garbage), at most the filler."""
  n_garbages = common.int_list("n_garbage", text, kilo=1000)
  too_long = [n for n in n_garbages if n > landmark_filler_chars()]
  if too_long:
    raise common.EvalError(f"--n_garbage: {too_long[0]} exceeds the authors' filler "
                           f"({landmark_filler_chars()} characters)")
  return n_garbages


def run(args) -> dict:
  mode = prompt_mode(args)
  if mode == "landmark":  # every flag is checked before the model loads
    if args.n_garbage is not None and args.tokens is not None:
      raise common.EvalError("--n_garbage, --tokens: give one of them (characters of filler or prompt tokens)")
    if args.seed != 0:
      raise common.EvalError("--seed: landmark prompts take their seeds from --seeds (e.g. --seeds=0-9)")
    seeds = seed_list(args.seeds or DEFAULT_SEEDS)
    n_garbages = parse_n_garbage(args.n_garbage) if args.n_garbage is not None else None
    targets = None if n_garbages else common.int_list("tokens", args.tokens or DEFAULT_TOKENS)
  else:
    lengths = common.int_list("lengths", args.lengths or DEFAULT_LENGTHS)
    depths = common.float_list("depths", args.depths or DEFAULT_DEPTHS)
    samples = DEFAULT_SAMPLES if args.samples is None else args.samples
    common.positive("samples", samples, allow_none=False)
  compare = common.compare_results(args, "passkey")
  options = common.memory_options(args)
  vocab = common.load_vocab(args)
  model = common.load(args)
  common.check_vocab_fits(vocab, model.config)
  head = {"task": "passkey", "mode": mode, "label": common.run_label(args),
          "model": common.model_summary(model, options), "vocab": common.vocab_record(args, vocab)}
  if mode == "landmark":
    if targets is not None:
      try:
        n_garbages = [n_garbage_for_tokens(vocab, t) for t in targets]
      except ValueError as e:
        raise common.EvalError(f"--tokens: {e}") from e
    lengths, depths = targets or n_garbages, None
    cases = landmark_cases(vocab, n_garbages, seeds, lengths)
    head.update(length_unit="characters" if targets is None else "tokens", n_garbage=n_garbages,
                target_tokens=targets, seeds=seeds)
  else:
    try:
      cases = make_cases(vocab, lengths, depths, samples, args.seed)
    except ValueError as e:
      raise common.EvalError(f"--lengths: {e}") from e
    head.update(samples=samples, seed=args.seed)
  runner = common.make_runner_factory(model, options)(1)
  rows = score_cases(runner, cases, common.Progress("passkey", len(cases), args.quiet))
  result = {**head, **summarize(rows, lengths, depths), "cases": rows}
  return common.publish(args, result, plot, compare)


def main(argv=None) -> int:
  return common.run_main("passkey", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
