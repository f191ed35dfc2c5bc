"""`python -m fot_jax.eval.claims_report --results=DIR --seeds=0,1,2`: claims (a), (c), (d) across seeds, one table.

Reads the result files the code manifest (`fot-launch experiment --manifest=experiments/code.py`) writes for each
seed s: `code_s<s>_<variant>.<tag>.json`, the distraction, multi-doc and single-doc perplexity (memory on and
off) of the local, d1 and negatives models. Prints one row per seed and writes a three-panel figure:
  (a) r_d of the memory layer at d contexts (focus = r_d * d; 1.0 is chance);
  (c) multi-doc loss of a target document against distractor tokens in memory, d1 vs negatives;
  (d) single-doc loss beyond the local context, memory on vs off.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from fot_jax import cli
from fot_jax.eval import common

VARIANTS = ("local", "d1", "negatives")


class ReportError(ValueError):
  """A result file is missing or is not the expected task."""


def _load(results: str, name: str, task: str) -> dict:
  try:
    return common.read_result(os.path.join(results, name + ".json"), task)
  except common.EvalError as e:
    raise ReportError(f"{e} (run the experiments/code.py manifest with this seed first)") from None


def beyond_local(single: dict, local: int) -> float:
  """Token-weighted mean loss of the buckets whose tokens lie past the first `local` positions."""
  pairs = [(loss, n) for edge, loss, n in zip(single["context_lengths"], single["loss"], single["tokens"])
           if edge > local and n]
  return float(sum(loss * n for loss, n in pairs) / sum(n for _, n in pairs))


def seed_row(results: str, seed: int, d: int = 64) -> dict:
  """The numbers of one seed: r_d at d per variant, multi-doc loss growth, single-doc loss beyond local."""
  run = f"code_s{seed}"
  row = {"seed": seed}
  for v in VARIANTS:
    r = _load(results, f"{run}_{v}.distraction", "distraction")
    layer = next(iter(r["layers"].values()))
    row[f"r_{v}"] = float(layer["r"][r["contexts"].index(d)])
    row["contexts"], row[f"r_curve_{v}"] = r["contexts"], layer["r"]
    row["local"] = int(r["context_length"])
  for v in ("d1", "negatives"):
    multi = _load(results, f"{run}_{v}.ppl_multi", "perplexity")
    row[f"multi_{v}"] = multi["loss"]
    row["distractor_tokens"] = multi["memory_tokens"]
    on = _load(results, f"{run}_{v}.ppl_single", "perplexity")
    off = _load(results, f"{run}_{v}.ppl_single_off", "perplexity")
    row[f"single_{v}_on"], row[f"single_{v}_off"] = beyond_local(on, row["local"]), beyond_local(off, row["local"])
    row[f"single_curve_{v}"] = (on["context_lengths"], on["loss"], off["loss"])
  return row


def table(rows: list[dict], d: int = 64) -> str:
  """Markdown: one line per seed."""
  lines = [f"| seed | r_d at d={d}: local / d1 / negatives (1/d = {1 / d:.3f}) | multi-doc loss, 0 -> "
           f"{rows[0]['distractor_tokens'][-1] / 1024:.0f}k distractor tokens: d1; negatives | single-doc loss "
           "beyond local, memory on / off: d1; negatives |", "|---|---|---|---|"]
  for r in rows:
    grow = "; ".join(f"{r[f'multi_{v}'][0]:.3f} -> {r[f'multi_{v}'][-1]:.3f} "
                     f"(+{100 * (r[f'multi_{v}'][-1] / r[f'multi_{v}'][0] - 1):.1f}%)" for v in ("d1", "negatives"))
    single = "; ".join(f"{r[f'single_{v}_on']:.3f} / {r[f'single_{v}_off']:.3f}" for v in ("d1", "negatives"))
    lines.append(f"| {r['seed']} | {r['r_local']:.3f} / {r['r_d1']:.3f} / {r['r_negatives']:.3f} | {grow} | "
                 f"{single} |")
  return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  colors = {"local": "tab:gray", "d1": "tab:blue", "negatives": "tab:red"}
  for i, r in enumerate(rows):
    first = i == 0
    for v in VARIANTS:
      axes[0].plot(r["contexts"], np.array(r[f"r_curve_{v}"]) * np.array(r["contexts"]), marker="o",
                   color=colors[v], alpha=0.7, label=v if first else None)
      if v != "local":
        axes[1].plot(np.array(r["distractor_tokens"]) / 1024, r[f"multi_{v}"], marker="o", color=colors[v],
                     alpha=0.7, label=v if first else None)
    edges, on, off = r["single_curve_negatives"]
    axes[2].plot(edges, on, marker="o", color="tab:red", alpha=0.7, label="negatives, memory on" if first else None)
    axes[2].plot(edges, off, marker="o", color="black", alpha=0.5, linestyle="--",
                 label="negatives, memory off" if first else None)
  axes[0].axhline(1.0, color="black", linewidth=0.8, linestyle=":")
  axes[0].set_xscale("log", base=2)
  axes[0].set_xticks(rows[0]["contexts"], [str(d) for d in rows[0]["contexts"]])
  axes[0].set(xlabel="contexts d", ylabel="focus r_d * d (1 = chance)", title="(a) focus on own context")
  axes[1].set(xlabel="distractor tokens in memory (k)", ylabel="target loss", title="(c) multi-doc loss")
  axes[2].axvline(rows[0]["local"], color="black", linewidth=0.8, linestyle=":")
  axes[2].set_xscale("log", base=2)
  axes[2].set(xlabel="context length (tokens)", ylabel="loss", title="(d) single-doc loss")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(f"held-out stdlib code, seeds {[r['seed'] for r in rows]} (one line per seed)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m fot_jax.eval.claims_report", description=__doc__.splitlines()[0])
  p.add_argument("--results", required=True, help="the folder of the result files (the experiment's --runs)")
  p.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
  p.add_argument("--figure", default=None, help="where to write the figure (PNG)")
  cli.add_debug_flag(p)
  args = p.parse_args(argv)
  return cli.run(lambda: _report(args), prog="fot_jax.eval.claims_report", debug=args.debug, also=(ValueError, OSError))


def _report(args: argparse.Namespace) -> None:
  seeds = [int(s) for s in args.seeds.split(",")]
  rows = [seed_row(args.results, s) for s in seeds]
  print(table(rows))
  if args.figure:
    plot(rows, args.figure)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
  sys.exit(main())
