"""`python -m fot_jax.evaluate perplexity`: per-token loss vs context length on held-out documents.

single mode (memory reset per document): each document's first --max_length tokens are run through memory
inference once; the loss of every token is attributed to its context length (its position), averaged in
log2-spaced buckets. Perplexity that keeps falling beyond the training context means memory is used.
multi mode (memory kept across documents): before each target document, --distractors other documents are
run into the same memory; the target's loss against the number of distractor tokens in memory shows how much
unrelated memory distracts the model.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from fot_jax.eval import common


def bucket_edges(max_length: int, first: int = 32) -> list[int]:
  """[0, first, 2*first, ..., max_length]: token t (predicted from t tokens) falls in [edge_i, edge_{i+1})."""
  edges = [0]
  e = first
  while e < max_length:
    edges.append(e)
    e *= 2
  edges.append(max_length)
  return edges


def bucketed(logprobs: np.ndarray, edges: list[int]) -> dict:
  """Mean loss per context-length bucket. logprobs [B, N-1]: column t predicts token t+1 from t+1 tokens."""
  context = np.arange(1, logprobs.shape[1] + 1)
  losses, counts = [], []
  for lo, hi in zip(edges[:-1], edges[1:]):
    cols = (context > lo) & (context <= hi)
    n = int(cols.sum()) * logprobs.shape[0]
    counts.append(n)
    losses.append(float(-logprobs[:, cols].mean()) if n else float("nan"))
  return {"context_lengths": edges[1:], "loss": losses,
          "perplexity": [math.exp(x) if x == x else float("nan") for x in losses], "tokens": counts}


def evaluate_single(runner_factory, docs: list[np.ndarray], max_length: int, batch_size: int, edges,
                    progress=None) -> dict:
  """Single-doc: memory reset per batch of documents; loss by context-length bucket."""
  rows = np.stack([d[:max_length] for d in docs])
  runner = runner_factory(min(batch_size, len(rows)))
  all_lp = []
  for start in range(0, len(rows), batch_size):
    batch = rows[start:start + batch_size]
    if len(batch) < runner.batch:  # last partial batch: pad with copies, drop their scores
      batch = np.concatenate([batch, np.repeat(batch[-1:], runner.batch - len(batch), 0)])
    runner.reset()
    lp, _ = common.stream_scores(runner, batch)
    all_lp.append(lp[:len(rows[start:start + batch_size])])
    if progress:
      progress(min(start + batch_size, len(rows)), f"documents of {max_length} tokens")
  logprobs = np.concatenate(all_lp)
  return {**bucketed(logprobs, edges), "loss_mean": float(-logprobs.mean()),
          "loss_per_document": (-logprobs.mean(axis=1)).tolist()}


def distractor_pieces(docs: list[np.ndarray], length: int) -> list[tuple[int, np.ndarray]]:
  """(document index, piece) for every non-overlapping `length`-token piece of every document."""
  return [(i, d[s:s + length]) for i, d in enumerate(docs) for s in range(0, len(d) - length + 1, length)]


def evaluate_multi(runner_factory, targets: list[np.ndarray], target_ids: list[int],
                   pieces: list[tuple[int, np.ndarray]], distractors: list[int], local: int, seed: int,
                   progress=None) -> dict:
  """Multi-doc: for each count m, m pieces of OTHER documents enter memory before each target document.

  The m pieces are the first m of a seeded per-target order, so counts are nested. Returns target loss
  (all tokens, and tokens beyond the first `local` positions, whose context partly lives in memory) per m.
  """
  rng = np.random.default_rng(seed)
  orders = []
  for doc_id in target_ids:
    others = [p for i, p in pieces if i != doc_id]
    if len(others) < max(distractors):
      raise common.EvalError(f"--distractors: {max(distractors)} distractor pieces needed but only {len(others)} "
                             f"other-document pieces of --distractor_length tokens exist")
    orders.append([others[j] for j in rng.permutation(len(others))[:max(distractors)]])
  runner = runner_factory(1)
  out = {"distractors": list(distractors), "memory_tokens": [], "loss": [], "loss_beyond_local": []}
  done = 0
  for m in distractors:
    lps, mem = [], []
    for target, order in zip(targets, orders):
      runner.reset()
      for piece in order[:m]:
        common.stream_feed(runner, piece[None])
      runner.flush()
      mem.append(runner.memory_size)
      lp, _ = common.stream_scores(runner, target[None])
      lps.append(lp[0])
      done += 1
      if progress:
        progress(done, f"distractors={m} memory={runner.memory_size}")
    lps = np.stack(lps)
    out["memory_tokens"].append(float(np.mean(mem)))
    out["loss"].append(float(-lps.mean()))
    out["loss_beyond_local"].append(float(-lps[:, local:].mean()) if lps.shape[1] > local else float("nan"))
  out["perplexity"] = [math.exp(x) for x in out["loss"]]
  return out


def plot(result: dict, path: str, compare=(), label: str = "") -> None:
  plt = common.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, res in [(label, result), *compare]:
    if res["mode"] == "single":
      ax.plot(res["context_lengths"], res["perplexity"], marker="o", label=name)
    else:
      ax.plot(np.maximum(res["memory_tokens"], 1), res["perplexity"], marker="o", label=name)
  if result["mode"] == "single":
    common.finish_axes(ax, "context length (tokens)", "perplexity", "single-doc perplexity vs context length")
  else:
    common.finish_axes(ax, "distractor tokens in memory (0 plotted at 1)", "perplexity",
                       "multi-doc perplexity vs memory size")
  common.save_figure(fig, path)


def build_parser():
  p = common.make_parser("perplexity", __doc__.splitlines()[0])
  common.add_vocab_flags(p)
  common.add_corpus_flags(p)
  common.add_compare_flag(p)
  p.add_argument("--mode", choices=("single", "multi"), default="single",
                 help="single: memory reset per document; multi: distractor documents kept in memory")
  p.add_argument("--num_docs", type=int, default=8, help="documents evaluated (the longest-enough first ones)")
  p.add_argument("--max_length", default="8k", help="single: tokens per document (k = 1024)")
  p.add_argument("--batch_size", type=int, default=4, help="single: documents per pass")
  p.add_argument("--target_length", default="1k", help="multi: tokens of each target document")
  p.add_argument("--distractor_length", default="1k", help="multi: tokens per distractor piece")
  p.add_argument("--distractors", default="0,1,2,4,8,16", help="multi: distractor pieces in memory, comma-separated")
  return p


def run(args) -> dict:
  common.positive("num_docs", args.num_docs, allow_none=False)
  common.positive("batch_size", args.batch_size, allow_none=False)
  compare = common.compare_results(args, "perplexity")
  options = common.memory_options(args)
  vocab = common.load_vocab(args)
  model = common.load(args)
  common.check_vocab_fits(vocab, model.config)
  factory = common.make_runner_factory(model, options)
  result = {"task": "perplexity", "mode": args.mode, "label": common.run_label(args),
            "model": common.model_summary(model, options), "vocab": common.vocab_record(args, vocab),
            "corpus": args.corpus, "split": args.split}
  if args.mode == "single":
    max_length = common.int_list("max_length", args.max_length)[0]
    docs = common.load_documents(args, vocab, max_length)[:args.num_docs]
    if not docs:
      raise common.EvalError(f"--max_length={max_length}: no {args.corpus}/{args.split} document is that long")
    edges = bucket_edges(max_length)
    result.update(max_length=max_length, num_docs=len(docs),
                  **evaluate_single(factory, docs, max_length, args.batch_size, edges,
                                    common.Progress("perplexity", len(docs), args.quiet)))
  else:
    target_length = common.int_list("target_length", args.target_length)[0]
    piece_length = common.int_list("distractor_length", args.distractor_length)[0]
    distractors = [int(x) for x in args.distractors.split(",") if x.strip()]
    if not distractors or min(distractors) < 0:
      raise common.EvalError(f"--distractors: expected non-negative integers, found {args.distractors!r}")
    all_docs = common.load_documents(args, vocab)
    ids = [i for i, d in enumerate(all_docs) if len(d) >= target_length][:args.num_docs]
    if not ids:
      raise common.EvalError(f"--target_length={target_length}: no {args.corpus}/{args.split} document is that "
                             f"long")
    targets = [all_docs[i][:target_length] for i in ids]
    pieces = distractor_pieces(all_docs, piece_length)
    result.update(target_length=target_length, distractor_length=piece_length, num_docs=len(ids),
                  **evaluate_multi(factory, targets, ids, pieces, distractors, model.config.last_context_length,
                                   args.seed, common.Progress("perplexity", len(ids) * len(distractors),
                                                              args.quiet)))
  return common.publish(args, result, plot, compare)


def main(argv=None) -> int:
  return common.run_main("perplexity", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
