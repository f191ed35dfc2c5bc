"""`python -m fot_jax.evaluate summary`: the main job's table, read at a glance: is the memory used?

For the final model with memory on and with memory off (its memory layers read only their local window), and
optionally a baseline checkpoint beside them (e.g. the locally pretrained stage-1 model, memory on):
  - passkey accuracy of the authors' prompts (synthetic.landmark_prompt) at lengths beyond the training context;
  - held-out loss of the tokens beyond the local context (positions > last_context_length), on held-out passkey
    prompts (the training task) and on held-out text;
  - r_d of the first memory layer at d = 2 .. 64 (the positive attention mass; 1/d means no focus).
Prints the table, writes the JSON (`{"passkey": [{"tokens", "memory_on", "memory_off", ...}], "loss_beyond_local":
{...}, "r_d": {"<d>": r}, ...}`) and a three-panel figure.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from fot_jax.eval import common, distraction, passkey, perplexity

DEFAULT_PASSKEY_TOKENS = "1k,4k,16k"
DEFAULT_CONTEXTS = "2,4,8,16,32,64"
TASK_CORPUS = "landmark:4500-9000"  # held-out passkey prompts of ~2k-4k tokens (validation seeds)


def build_parser():
  p = common.make_parser("summary", __doc__.splitlines()[0])
  common.add_vocab_flags(p)
  p.add_argument("--baseline", default=None, help="a second checkpoint reported beside (memory on), e.g. stage 1")
  p.add_argument("--passkey_tokens", default=DEFAULT_PASSKEY_TOKENS, help="passkey prompt lengths (k = 1024)")
  p.add_argument("--passkey_seeds", type=int, default=10, help="prompts per length (the authors' seeds 0..N-1)")
  p.add_argument("--loss_corpora", default=f"{TASK_CORPUS},stdlib",
                 help="held-out documents (pipeline names, comma-separated) for the loss beyond the local context; "
                      "the first is summary.json's loss_beyond_local")
  p.add_argument("--text_corpus", default="stdlib", help="held-out text for r_d (pipeline name)")
  p.add_argument("--text_split", default="validation")
  p.add_argument("--loss_docs", type=int, default=4, help="documents for the loss beyond the local context")
  p.add_argument("--loss_length", default="2k", help="tokens per document for that loss")
  p.add_argument("--contexts", default=DEFAULT_CONTEXTS, help="values of d for r_d")
  p.add_argument("--rd_queries", type=int, default=32, help="query segments averaged over for r_d")
  return p


def _variants(args):
  """(name, Model) for memory on, memory off (memory layers keep nothing: they read only their local window) and
  the baseline (memory on), if given."""
  out = [("memory_on", common.load(args)), ("memory_off", common.load(_with(args, no_memory=True)))]
  if args.baseline:
    out.append(("baseline", common.load(_with(args, checkpoint=args.baseline))))
  return out


def _with(args, **changes) -> argparse.Namespace:
  return argparse.Namespace(**{**vars(args), **changes})


def passkey_accuracy(model, options, vocab, lengths, seeds, progress=None) -> list[dict]:
  """Per target length: exact-match accuracy of the landmark prompts and their mean token count."""
  runner = common.make_runner_factory(model, options)(1)
  rows = []
  for tokens in lengths:
    cases = passkey.landmark_cases(vocab, [passkey.n_garbage_for_tokens(vocab, tokens)], seeds)
    scored = passkey.score_cases(runner, cases)
    rows.append({"tokens": int(np.mean([r["tokens"] for r in scored])), "target_tokens": tokens,
                 "accuracy": float(np.mean([r["correct"] for r in scored]))})
    if progress:
      progress(len(rows), f"passkey {tokens} tokens: {rows[-1]['accuracy']:.2f}")
  return rows


def loss_beyond_local(model, options, docs, length) -> float:
  """Mean loss of the tokens whose context is longer than the local context (last_context_length)."""
  lcl = model.config.last_context_length
  if length <= lcl:
    raise common.EvalError(f"--loss_length={length} must exceed the local context {lcl}")
  res = perplexity.evaluate_single(common.make_runner_factory(model, options), docs, length, len(docs),
                                   [0, lcl, length])
  return float(res["loss"][1])


def r_d(model, options, docs, ds, num_queries, seed) -> dict[str, float] | None:
  """r_d of the first memory layer, or None for a model without memory layers."""
  config = model.config
  if not config.mem_layers or model.no_memory:
    return None
  length = config.last_context_length
  contexts, queries, ids = distraction.segments(docs, length, 16)
  sets = distraction.context_sets(ids, max(ds), min(num_queries, len(contexts)), seed)
  res = distraction.measure(model.params, config, contexts, queries, sets, config.mem_layers[:1], ds, options.topk)
  return {str(d): float(r) for d, r in zip(ds, res[str(config.mem_layers[0])]["r"])}


def table(result: dict) -> str:
  names = [n for n in ("memory_on", "memory_off", "baseline") if n in result["variants"]]
  head = f"{'':34s}" + "".join(f"{n:>12s}" for n in names)
  lines = [head, "-" * len(head)]
  for row in result["passkey"]:
    lines.append(f"{'passkey accuracy, ' + str(row['tokens']) + ' tokens':34s}"
                 + "".join(f"{row[n]:12.2f}" for n in names))
  for corpus, loss in result["loss_beyond_local_by_corpus"].items():
    label = "passkey prompts" if corpus.startswith("landmark") else corpus
    lines.append(f"{'loss beyond local, ' + label:34s}" + "".join(f"{loss[n]:12.3f}" for n in names))
  r_rows = result["r_d_by_variant"]
  for d in result["contexts"]:
    cells = "".join(f"{r_rows[n][str(d)]:12.3f}" if r_rows.get(n) else f"{'-':>12s}" for n in names)
    lines.append(f"{'r_d, d = ' + str(d) + f' (1/d = {1 / d:.3f})':34s}" + cells)
  return "\n".join(lines)


def plot(result: dict, path: str) -> None:
  plt = common.pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(14, 4))
  names = [n for n in ("memory_on", "memory_off", "baseline") if n in result["variants"]]
  for n in names:
    axes[0].plot([r["tokens"] for r in result["passkey"]], [r[n] for r in result["passkey"]], marker="o", label=n)
  axes[0].set(xscale="log", xlabel="prompt tokens", ylabel="passkey accuracy", ylim=(-0.03, 1.03),
              title="passkey (authors' prompt)")
  axes[1].bar(names, [result["loss_beyond_local"][n] for n in names], color=["C0", "C1", "C2"][:len(names)])
  axes[1].set(ylabel="loss", title=f"loss beyond {result['local_context']} tokens, held-out {result['loss_corpus']}")
  ds = np.array(result["contexts"])
  axes[2].plot(ds, 1 / ds, ls=":", color="gray", label="1/d")
  for n in names:
    if result["r_d_by_variant"].get(n):
      axes[2].plot(ds, [result["r_d_by_variant"][n][str(d)] for d in ds], marker="o", label=n)
  axes[2].set_xscale("log", base=2)
  axes[2].set_yscale("log", base=2)
  axes[2].set(xlabel="d", ylabel="r_d", title="positive attention mass (first memory layer)")
  for ax in axes[[0, 2]]:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  common.save_figure(fig, path)


def run(args) -> dict:
  lengths = common.int_list("passkey_tokens", args.passkey_tokens)
  ds = common.int_list("contexts", args.contexts)
  loss_length = common.int_list("loss_length", args.loss_length)[0]
  for flag in ("passkey_seeds", "loss_docs", "rd_queries"):
    common.positive(flag, getattr(args, flag), allow_none=False)
  if min(ds) < 2:
    raise common.EvalError(f"--contexts: d must be >= 2, found {ds}")
  if args.mem_layers is not None or args.no_memory:
    raise common.EvalError("--mem_layers / --no_memory: summary compares memory on and off itself; leave them unset")
  options = common.memory_options(args)
  vocab = common.load_vocab(args)
  variants = _variants(args)
  common.check_vocab_fits(vocab, variants[0][1].config)
  lcl = variants[0][1].config.last_context_length
  corpora = [c for c in args.loss_corpora.split(",") if c]
  if not corpora:
    raise common.EvalError("--loss_corpora: expected at least one pipeline name")
  loss_docs = {}
  for corpus in corpora:
    found = common.load_documents(_with(args, corpus=corpus, split=args.text_split), vocab, loss_length)
    if len(found) < args.loss_docs:
      raise common.EvalError(f"--loss_corpora {corpus!r}: {len(found)} {args.text_split} documents of >= {loss_length} "
                             f"tokens, --loss_docs={args.loss_docs} asked for")
    loss_docs[corpus] = found[:args.loss_docs]
  docs = common.load_documents(_with(args, corpus=args.text_corpus, split=args.text_split), vocab, 2 * lcl)
  progress = common.Progress("summary", len(variants) * (len(lengths) + 2), args.quiet, every=0.0)
  passkey_rows = {}
  losses, rds = {}, {}
  done = 0
  for name, model in variants:
    passkey_rows[name] = passkey_accuracy(model, options, vocab, lengths, range(args.passkey_seeds))
    done += len(lengths)
    progress(done, f"{name}: passkey {[r['accuracy'] for r in passkey_rows[name]]}")
    for corpus in corpora:
      losses.setdefault(corpus, {})[name] = loss_beyond_local(model, options, loss_docs[corpus], loss_length)
    rds[name] = r_d(model, options, docs, ds, args.rd_queries, args.seed)
    done += 2
    progress(done, f"{name}: loss beyond local {[round(losses[c][name], 3) for c in corpora]}")
  names = [n for n, _ in variants]
  result = {
      "task": "summary", "label": os.path.basename(os.path.normpath(args.checkpoint)), "variants": names,
      "model": common.model_summary(variants[0][1], options), "vocab": common.vocab_record(args, vocab),
      "local_context": lcl,
      "passkey": [{"tokens": row["tokens"], "target_tokens": row["target_tokens"],
                   **{n: passkey_rows[n][i]["accuracy"] for n in names}} for i, row in enumerate(passkey_rows[names[0]])],
      "passkey_seeds": args.passkey_seeds, "loss_beyond_local": losses[corpora[0]],
      "loss_corpus": corpora[0], "loss_beyond_local_by_corpus": losses, "loss_length": loss_length,
      "text_corpus": args.text_corpus, "contexts": ds, "r_d": rds["memory_on"], "r_d_by_variant": rds,
  }
  common.write_json(args.out, result)
  plot(result, common.figure_path(args))
  print(table(result))
  return result


def main(argv=None) -> int:
  return common.run_main("summary", build_parser(), run, argv)


if __name__ == "__main__":
  sys.exit(main())
