"""Reads a compiled (partitioned) HLO module's text: its while loops with their trip counts, and its collectives
with buffer bytes and executions per step (loop bodies weighted by trip counts). Used by fot_jax.compile_check.
"""

from __future__ import annotations

import collections
import dataclasses
import re

import numpy as np

DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
                "f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8, "c64": 8}
COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_OP_RE = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")
_SHAPE_RE = re.compile(r"\b(" + "|".join(DTYPE_BYTES) + r")\[([\d,]*)\]")
_COMP_RE = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s+\(.*\)\s*->.*\{\s*$")
_CALL_RE = re.compile(r"\b(calls|body|condition|to_apply|branch_computations)=\{?%?([\w.\-]+(?:,\s*%[\w.\-]+)*)")
_DEF_RE = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_WHILE_RE = re.compile(r"\bwhile\(%?([\w.\-]+)\).*?\bcondition=%?([\w.\-]+),\s*body=%?([\w.\-]+)")
_KNOWN_TRIPS_RE = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
_COMPARE_RE = re.compile(r"\bcompare\(%?([\w.\-]+),\s*%?([\w.\-]+)\),\s*direction=(\w+)")
_GTE_RE = re.compile(r"\bget-tuple-element\(%?[\w.\-]+\),\s*index=(\d+)")
_SCALAR_CONST_RE = re.compile(r"^[su]32\[\]\S*\s+constant\((-?\d+)\)")
_PASS_THROUGH_RE = re.compile(r"^[su]32\[\]\S*\s+(?:copy|bitcast|convert)\(%?([\w.\-]+)\)")
_OP_NAME_RE = re.compile(r'op_name="([^"]*)"')


def _shape_bytes(text: str) -> list[int]:
  return [int(np.prod([int(x) for x in dims.split(",") if x])) * DTYPE_BYTES[dt]
          for dt, dims in _SHAPE_RE.findall(text)]


def _split_computations(hlo: str) -> dict[str, list[str]]:
  comps: dict[str, list[str]] = {}
  current = None
  for line in hlo.splitlines():
    m = _COMP_RE.match(line)
    if m:
      current = m.group(1)
      comps[current] = []
    elif current is not None:
      comps[current].append(line)
  return comps


def _defs(lines: list[str]) -> dict[str, str]:
  out = {}
  for line in lines:
    m = _DEF_RE.match(line)
    if m:
      out[m.group(1)] = m.group(2)
  return out


def _scalar_constant(name: str, defs: dict[str, str]) -> int | None:
  """Value of an s32/u32 scalar constant, following copy/bitcast/convert (XLA copies loop inits)."""
  for _ in range(8):
    rhs = defs.get(name.lstrip("%"))
    if rhs is None:
      return None
    m = _SCALAR_CONST_RE.match(rhs)
    if m:
      return int(m.group(1))
    m = _PASS_THROUGH_RE.match(rhs)
    if not m:
      return None
    name = m.group(1)
  return None


@dataclasses.dataclass
class Loop:
  """A while loop of the executable and how many times its body runs per execution of its parent."""
  body: str
  trips: int | None  # None: not derivable from the HLO (counted once)
  method: str  # "known_trip_count" | "condition" | "condition, start assumed 0" | "unknown"
  op_name: str  # the JAX op that produced it (metadata), e.g. .../while for a lax.scan


def _trip_count(line: str, operand: str, cond: list[str] | None, parent_defs: dict[str, str]):
  """Trip count of one while op: XLA's known_trip_count when the backend config carries it; else read from
  the loop condition `ROOT compare(get-tuple-element(p, index=i), N), direction=LT` (the form lax.scan and
  fori_loop lower to, counter step 1) minus the counter's start, traced through the init tuple to its constant."""
  m = _KNOWN_TRIPS_RE.search(line)
  if m:
    return int(m.group(1)), "known_trip_count"
  if cond is None:
    return None, "unknown"
  defs = _defs(cond)
  root = next((ln for ln in cond if ln.lstrip().startswith("ROOT")), "")
  m = _COMPARE_RE.search(root)
  if not m:
    return None, "unknown"
  lhs, rhs, direction = m.groups()
  bound, counter = _scalar_constant(rhs, defs), lhs
  if bound is None:  # N > i is i < N
    bound, counter = _scalar_constant(lhs, defs), rhs
    direction = {"GT": "LT", "GE": "LE"}.get(direction, "?")
  if bound is None or direction not in ("LT", "LE"):
    return None, "unknown"
  bound += direction == "LE"
  gte = _GTE_RE.search(defs.get(counter, ""))
  start = None
  if gte:
    init = parent_defs.get(operand, "")
    tm = re.search(r"\btuple\((.*?)\)(?:,|$)", re.sub(r"/\*.*?\*/", "", init))
    if tm:
      elements = [e.strip() for e in tm.group(1).split(",")]
      if int(gte.group(1)) < len(elements):
        start = _scalar_constant(elements[int(gte.group(1))], parent_defs)
  if start is None:  # JAX's loop counters start at 0
    return max(bound, 0), "condition, start assumed 0"
  return max(bound - start, 0), "condition"


def while_loops(hlo: str) -> list[Loop]:
  """The while loops of an HLO module with their trip counts (see _trip_count)."""
  comps = _split_computations(hlo)
  loops = []
  for lines in comps.values():
    parent_defs = None
    for line in lines:
      m = _WHILE_RE.search(line)
      if not m:
        continue
      parent_defs = parent_defs if parent_defs is not None else _defs(lines)
      trips, method = _trip_count(line, m.group(1), comps.get(m.group(2)), parent_defs)
      op = _OP_NAME_RE.search(line)
      loops.append(Loop(m.group(3), trips, method, op.group(1) if op else ""))
  return loops


def _collective_bytes(kind: str, is_start: bool, shape_text: str) -> int:
  """Bytes per device of one collective: the full (unsplit) buffer it moves: all-gather's result, reduce-scatter's
  and all-reduce's operand (= all-reduce's result), all-to-all's and collective-permute's operand. Async
  '-start' ops return tuples: all-gather-start (operands..., results...), collective-permute-start (operand,
  result, u32 contexts), all-reduce-start the results."""
  sizes = _shape_bytes(shape_text)
  if not sizes:
    return 0
  if not is_start:
    return sum(sizes)
  if kind == "all-gather":
    return sum(sizes[len(sizes) // 2:])
  if kind == "collective-permute":
    return sizes[0]
  return sum(sizes)


@dataclasses.dataclass
class CollectiveOp:
  """One collective of the partitioned HLO: kind, buffer bytes per execution per device, executions per step,
  result shapes, and the JAX op that made it (metadata op_name, e.g. .../crossbatch/.../ppermute)."""
  kind: str
  bytes: int
  per_step: int
  shapes: list  # [(dtype, (dims...))] of the op's result
  op_name: str

  @property
  def crossbatch(self) -> bool:
    """Made inside a memory layer's crossbatch attention (its named scope), forward or backward."""
    return "crossbatch" in self.op_name


def collective_ops(hlo: str, loops: list[Loop] | None = None) -> list[CollectiveOp]:
  """Every collective of an HLO module with its executions per step (loop bodies weighted by trip counts)."""
  comps = _split_computations(hlo)
  trips = {loop.body: loop.trips if loop.trips is not None else 1
           for loop in (loops if loops is not None else while_loops(hlo))}
  # Call graph: callee -> (caller, runs of the callee per run of the caller).
  callers: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
  for name, lines in comps.items():
    for line in lines:
      for kind, targets in _CALL_RE.findall(line):
        for target in re.split(r",\s*", targets):
          target = target.lstrip("%")
          callers[target].append((name, trips.get(target, 1) if kind == "body" else 1))

  memo: dict[str, int] = {}

  def multiplier(name: str, depth: int = 0) -> int:
    if name not in callers or depth > 64:
      return 1
    if name not in memo:
      memo[name] = sum(w * multiplier(parent, depth + 1) for parent, w in callers[name])
    return memo[name]

  ops = []
  for name, lines in comps.items():
    mult = multiplier(name)
    for line in lines:
      m = _OP_RE.match(line)
      if not m:
        continue
      kind = m.group(2)
      if kind == "all-reduce" and name.startswith("all-reduce-scatter"):
        kind = "reduce-scatter"
      op = _OP_NAME_RE.search(line)
      shapes = [(dt, tuple(int(x) for x in dims.split(",") if x)) for dt, dims in _SHAPE_RE.findall(m.group(1))]
      ops.append(CollectiveOp(kind, _collective_bytes(kind, bool(m.group(3)), m.group(1)), mult, shapes,
                              op.group(1) if op else ""))
  return ops


def collective_stats(hlo: str, loops: list[Loop] | None = None) -> dict[str, dict[str, float]]:
  """Per collective kind: static count in the HLO, and count and bytes executed per step per device.

  An op inside a while body counts once per iteration: the trip counts come from while_loops (XLA's
  known_trip_count, else the loop condition's bound; a loop whose trip count cannot be read counts once and is
  reported). Nested loops and called computations multiply. TPU lowers most reduce-scatters to an
  'all-reduce-scatter' fusion (an all-reduce of the full buffer, then each device keeps its slice): those are
  counted as reduce-scatter. Bytes: see _collective_bytes (buffer sizes, not link traffic: a ring all-gather or
  reduce-scatter sends about (n-1)/n of them per device, a ring all-reduce about 2 (n-1)/n)."""
  stats = {k: {"count": 0, "per_step": 0, "bytes_per_step": 0.0} for k in COLLECTIVES}
  for op in collective_ops(hlo, loops):
    s = stats[op.kind]
    s["count"] += 1
    s["per_step"] += op.per_step
    s["bytes_per_step"] += op.per_step * op.bytes
  return stats


def crossbatch_bytes(ops: list[CollectiveOp]) -> float:
  """Buffer bytes per step per device of the collectives made inside the memory layers' crossbatch attention."""
  return float(sum(op.per_step * op.bytes for op in ops if op.crossbatch))
