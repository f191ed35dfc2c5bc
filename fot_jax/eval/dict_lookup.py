"""`python -m fot_jax.evaluate dict_lookup`: dictionary-lookup accuracy vs dictionary tokens in memory.

Documents are fot_jax.data.synthetic.DictLookupDocuments (test split): `<k> k1..k4 <v> v1..v4` definitions in
the first half, `<q> k1..k4 <v> v1..v4` queries in the second. For a memory size M, the definition halves of
M/(doc_len/2) dictionaries (the target's among them at a seeded random place) run through memory inference,
then the target's queries; a query is answered when all four value tokens are predicted (teacher-forced).
A model without usable memory is at chance (1/64 per value token) once the definitions leave its window.
"""

from __future__ import annotations

import sys

import numpy as np

from fot_jax.data import synthetic
from fot_jax.eval import common

BOS = 1  # the batcher starts dict_lookup documents with LLaMA's <s>


def build_inputs(num_docs: int, n_defs: int, doc_len: int, seed: int):
  """tokens [num_docs, 1 + n_defs*half + half] and answer masks: BOS, n_defs definition halves (the target's
  at a seeded place, the others from further documents of the same split), then the target's queries."""
  docs = synthetic.dict_lookup_documents(num_docs * n_defs + num_docs, "test", seed, doc_len)
  half = doc_len // 2
  rng = np.random.default_rng([seed, n_defs])
  rows, masks = [], []
  for i in range(num_docs):
    target = docs[i]
    defs = [docs[num_docs + i * (n_defs - 1) + j]["targets"][:half] for j in range(n_defs - 1)]
    defs.insert(int(rng.integers(0, n_defs)), target["targets"][:half])
    rows.append(np.concatenate([[BOS], *defs, target["targets"][half:]]).astype(np.int32))
    masks.append(np.concatenate([np.zeros(1 + n_defs * half, bool), target["loss_weights"][half:] > 0]))
  return np.stack(rows), np.stack(masks)


def score(runner_factory, tokens: np.ndarray, masks: np.ndarray, batch_size: int) -> dict:
  """Per-query exact match (4 value tokens) and per-token accuracy; memory reset for every batch."""
  _, hits = common.batched_answer_hits(runner_factory, tokens, masks, batch_size)
  exact, token_hits = [], []
  for h, m in zip(hits, masks):
    per_query = h[m].reshape(-1, synthetic.DICT_KEY_LEN)
    exact.extend(per_query.all(axis=1).tolist())
    token_hits.extend(per_query.reshape(-1).tolist())
  return {"accuracy": float(np.mean(exact)), "token_accuracy": float(np.mean(token_hits)), "queries": len(exact)}


def plot(result: dict, path: str, compare=(), label: str = "") -> None:
  plt = common.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, res in [(label, result), *compare]:
    ax.plot(res["memory_tokens"], res["accuracy"], marker="o", label=name)
  ax.axhline((1 / synthetic.DICT_NUM_SYMBOLS) ** synthetic.DICT_KEY_LEN, color="gray", ls=":", label="chance")
  common.finish_axes(ax, "dictionary tokens in memory", "query accuracy (all 4 value tokens)", "dictionary lookup",
                     unit_y=True)
  common.save_figure(fig, path)


def build_parser():
  p = common.make_parser("dict_lookup", __doc__.splitlines()[0])
  common.add_compare_flag(p)
  p.add_argument("--memory_tokens", default="256,1k,4k,16k",
                 help="dictionary (definition) tokens before the queries, comma-separated (k = 1024); each is "
                      "rounded down to whole definition halves (doc_len/2 tokens)")
  p.add_argument("--num_docs", type=int, default=8, help="target dictionaries (queries) per memory size")
  p.add_argument("--doc_len", type=int, default=512, help="dictionary document length the model was trained on")
  p.add_argument("--batch_size", type=int, default=4, help="targets per pass")
  return p


def run(args) -> dict:
  sizes = common.int_list("memory_tokens", args.memory_tokens)
  for flag in ("num_docs", "doc_len", "batch_size"):
    common.positive(flag, getattr(args, flag), allow_none=False)
  if args.doc_len % 2 or args.doc_len < 40:
    raise common.EvalError(f"--doc_len: expected an even number >= 40, found {args.doc_len}")
  half = args.doc_len // 2
  compare = common.compare_results(args, "dict_lookup")
  options = common.memory_options(args)
  model = common.load(args)
  if model.config.vocab_size < synthetic.DICT_VOCAB_SIZE:
    raise common.EvalError(f"--checkpoint: dict_lookup needs vocab_size >= {synthetic.DICT_VOCAB_SIZE}, the model "
                           f"has {model.config.vocab_size}")
  factory = common.make_runner_factory(model, options)
  progress = common.Progress("dict_lookup", len(sizes), args.quiet, every=0.0)
  result = {"task": "dict_lookup", "label": common.run_label(args), "model": common.model_summary(model, options),
            "vocab": common.synthetic_vocab_record(synthetic.DICT_VOCAB_SIZE),
            "doc_len": args.doc_len, "num_docs": args.num_docs, "seed": args.seed, "memory_tokens": [],
            "accuracy": [], "token_accuracy": [], "queries": []}
  for i, size in enumerate(sizes):
    n_defs = max(1, size // half)
    tokens, masks = build_inputs(args.num_docs, n_defs, args.doc_len, args.seed)
    scores = score(factory, tokens, masks, args.batch_size)
    result["memory_tokens"].append(n_defs * half)
    for k in ("accuracy", "token_accuracy", "queries"):
      result[k].append(scores[k])
    progress(i + 1, f"memory_tokens={n_defs * half} accuracy={scores['accuracy']:.3f}")
  return common.publish(args, result, plot, compare)


def main(argv=None) -> int:
  return common.run_main("dict_lookup", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
