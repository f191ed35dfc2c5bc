"""`python -m fot_jax.eval.focus_gate RESULT.json --layer=1 --d=8,64 --min_focus=1.3`: does a layer focus?

Reads a `python -m fot_jax.evaluate distraction` result and checks that the layer's focus r_d * d (1.0 = no
better than chance among d contexts) is at least `min_focus` at every listed d. Exit 0 when it is, 1 when it is
not (one line saying where it fell short), 2 for a bad file or flag. Used to gate local pretraining before FoT
fine-tuning: a model whose memory layer already matches content locally carries that skill over to memory.
"""

from __future__ import annotations

import argparse
import json
import sys

from fot_jax import cli


class GateError(ValueError):
  """The result file or the flags do not allow the check (missing layer or d, wrong task)."""


def focus(result: dict, layer: int, d: int) -> float:
  """r_d * d of `layer` at `d` contexts in a distraction result."""
  if result.get("task") != "distraction":
    raise GateError(f"expected a distraction result, found task {result.get('task')!r}")
  layers = result.get("layers", {})
  if str(layer) not in layers:
    raise GateError(f"layer {layer} not measured; the result has layers {sorted(layers, key=int)}")
  contexts = list(result.get("contexts", []))
  if d not in contexts:
    raise GateError(f"d={d} not measured; the result has contexts {contexts}")
  return float(layers[str(layer)]["r"][contexts.index(d)]) * d


def shortfalls(result: dict, layer: int, ds: list[int], min_focus: float) -> list[tuple[int, float]]:
  """The (d, focus) pairs below `min_focus`: empty when the layer passes."""
  values = [(d, focus(result, layer, d)) for d in ds]
  return [(d, f) for d, f in values if f < min_focus]


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m fot_jax.eval.focus_gate", description=__doc__.splitlines()[0])
  p.add_argument("result", help="a distraction result JSON")
  p.add_argument("--layer", type=int, required=True, help="memory layer to check")
  p.add_argument("--d", default="8,64", help="numbers of contexts to check, comma-separated")
  p.add_argument("--min_focus", type=float, default=1.3, help="least r_d * d required at every listed d")
  cli.add_debug_flag(p)
  return p


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  return cli.run(lambda: _gate(args), prog="fot_jax.eval.focus_gate", debug=args.debug, also=(GateError,))


def _gate(args: argparse.Namespace) -> int:
  """0 when r_d clears the bar at every listed d, 1 when not; a bad flag or result file is a user error."""
  try:
    ds = [int(x) for x in args.d.split(",")]
  except ValueError:
    raise GateError(f"--d: expected comma-separated integers, found {args.d!r}") from None
  try:
    with open(args.result) as f:
      result = json.load(f)
    short = shortfalls(result, args.layer, ds, args.min_focus)
  except (OSError, json.JSONDecodeError, GateError) as e:
    raise GateError(f"{args.result}: {e}") from None
  where = f"{args.result}: layer {args.layer}"
  if short:
    found = ", ".join(f"{f:.2f}/d at d={d}" for d, f in short)
    print(f"focus_gate: FAIL {where}: r_d is {found}; required >= {args.min_focus}/d")
    return 1
  print(f"focus_gate: pass {where}: r_d >= {args.min_focus}/d at d={ds}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
