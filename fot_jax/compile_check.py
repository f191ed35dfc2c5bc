"""Will it fit? Compile the real FoT train step for a TPU slice on this (CPU) host and report memory and cost.

  python -m fot_jax.compile_check --config=configs/experiments/longllama_3b_fot.py --topology=v5p-64 \\
      [--config.mesh.shape='(1,-1,1)' --config.mesh.remat=full ...] [--mfu=0.4] [--dump_hlo=/tmp/step.hlo] \\
      [--json=/tmp/report.json]

Builds the train step exactly as the trainer does (model size, global batch, micro-batches, crossbatch plan
shape for the largest d of the schedule, remat policy, mesh and sharding rules, donation) from abstract shapes
only: no parameter is materialised. libtpu (the `tpu` extra) compiles it for the named topology without a TPU.
Prints per-device memory against HBM, compiled vs analytic FLOPs, the collectives of the partitioned HLO (an
estimate per step: loop bodies weighted by trip counts read from the HLO's loop conditions, listed next to the
loop lengths the config implies, with the part made by the memory layers' crossbatch attention) and an estimated
step time: the larger of compute (analytic FLOPs at an assumed MFU) and communication (collective bytes over the
chip's ICI bandwidth, tpu_specs). --json writes the same report as JSON. Exit status: 0 fits, 3 does not fit
(naming the biggest buffers), 2 invalid config/topology.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from fot_jax.train import tpu_specs
from fot_jax.train.config import TrainConfig
from fot_jax.train.sharding import batch_sharding, replicated

PROG = "fot_jax.compile_check"
EXIT_DOES_NOT_FIT = 3


class DoesNotFit(RuntimeError):
  """The step needs more HBM per device than the chip has; the message names the biggest buffers."""


# ---- building the step from abstract shapes --------------------------------------------------------------------
@dataclasses.dataclass
class Built:
  model: Any  # ModelConfig
  mesh: Mesh
  jitted: Any  # jax.jit(train_step, shardings, donation)
  args: tuple  # abstract (state, batch, visible) with shardings
  d: int
  window: int  # W: the crossbatch window of the compiled plan (slots; offsets 1..W)
  tokens_per_step: int


def build(config: TrainConfig, devices) -> Built:
  """Checks config for len(devices) devices and returns the jitted step with abstract, sharded arguments."""
  from fot_jax.train.setup import jit_train_step, state_layout  # the trainer's own builders
  config.check_devices(len(devices))
  mesh = config.mesh.build(devices)
  optimizer, schedule = config.optim.build(config.num_steps)
  abstract, shardings = state_layout(config.model, optimizer, mesh)
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
  b, length = config.data.batch_size, config.data.seq_len
  bs = batch_sharding(mesh)
  batch = {"inputs": jax.ShapeDtypeStruct((b, length), jnp.int32, sharding=bs),
           "targets": jax.ShapeDtypeStruct((b, length), jnp.int32, sharding=bs),
           "loss_mask": jax.ShapeDtypeStruct((b, length), jnp.float32, sharding=bs),
           "input_mask": jax.ShapeDtypeStruct((b, length), jnp.bool_, sharding=bs)}
  choice = max(config.fot.choices(), key=lambda c: (c.d, c.window))  # the largest d needs the most memory
  plan = choice.build(config.data.micro_size, config.fot.k, config.fot.stepping)
  visible = jax.ShapeDtypeStruct(plan.visible.shape, jnp.bool_, sharding=replicated(mesh))
  jitted = jit_train_step(config, mesh, optimizer, schedule, shardings)
  return Built(config.model, mesh, jitted, (state, batch, visible), choice.d, plan.window, b * length)


def biggest_arguments(args, top: int = 5) -> list[tuple[str, int]]:
  """(path, bytes per device) of the largest argument shards."""
  out = []
  for path, a in jax.tree_util.tree_flatten_with_path(args)[0]:
    shape = a.sharding.shard_shape(a.shape) if isinstance(a.sharding, NamedSharding) else a.shape
    out.append((jax.tree_util.keystr(path), int(np.prod(shape)) * np.dtype(a.dtype).itemsize))
  return sorted(out, key=lambda x: -x[1])[:top]


def compile_step(built: Built):
  """Lowers and compiles under the mesh (Pallas kernels read it to shard themselves). OOM -> DoesNotFit."""
  with jax.set_mesh(built.mesh):
    lowered = built.jitted.lower(*built.args)
  try:
    return lowered.compile()
  except Exception as e:  # noqa: BLE001 - XLA raises JaxRuntimeError/XlaRuntimeError with RESOURCE_EXHAUSTED
    text = str(e)
    if "RESOURCE_EXHAUSTED" in text or "Ran out of memory" in text or "out of memory" in text.lower():
      raise DoesNotFit(_oom_message(text, built) + "\n" + _largest_tensors(lowered)) from None
    raise


_HLO_VALUE_RE = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(\w+)\[([\d,]*)\]\S*\s+([\w\-]+)\(.*?"
                           r"(?:op_name=\"([^\"]*)\")?")


def _largest_tensors(lowered, top: int = 6) -> str:
  """The largest values of the program before partitioning (global shapes): where activations blow up."""
  found: dict[tuple, tuple[int, str]] = {}
  for line in lowered.as_text(dialect="hlo").splitlines():
    m = _HLO_VALUE_RE.match(line)
    if not m or m.group(1) not in _DTYPE_BYTES or m.group(3) in ("parameter", "constant", "tuple"):
      continue
    key = (m.group(1), m.group(2))
    nbytes = int(np.prod([int(x) for x in m.group(2).split(",") if x])) * _DTYPE_BYTES[m.group(1)]
    op = re.search(r'op_name="([^"]*)"', line)
    found.setdefault(key, (nbytes, (op.group(1) if op else m.group(3))[-90:]))
  biggest = sorted(found.items(), key=lambda kv: -kv[1][0])[:top]
  lines = ["largest tensors of the step (global shapes, before sharding over the mesh):"]
  lines += [f"  {dt}[{dims}] {_gib(n)}: {op}" for (dt, dims), (n, op) in biggest]
  return "\n".join(lines)


def _oom_message(text: str, built: Built) -> str:
  lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
  head = next((ln for ln in lines if "memory" in ln.lower()), lines[0] if lines else text)
  # XLA lists the largest allocations ("Size: 1.2G ..." with the op and shape); keep those lines.
  allocs = [ln for ln in lines if re.match(r"^(\d+\.\s+)?Size: ", ln) or ln.startswith("Operator:")
            or ln.startswith("Shape:") or ln.startswith("XLA label:")]
  msg = [f"does not fit: the TPU compiler ran out of HBM: {head}"]
  if allocs:
    msg.append("largest allocations (XLA):")
    msg += ["  " + ln[:200] for ln in allocs[:24]]
  msg.append("largest arguments per device:")
  msg += [f"  {path}: {_gib(n)}" for path, n in biggest_arguments(built.args)]
  return "\n".join(msg)


# ---- reading the executable ------------------------------------------------------------------------------------
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
                "f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8, "c64": 8}
COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_OP_RE = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")
_SHAPE_RE = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")
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
  return [int(np.prod([int(x) for x in dims.split(",") if x])) * _DTYPE_BYTES[dt]
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


@dataclasses.dataclass
class Report:
  topology: str
  device_kind: str
  devices: int
  chips: float
  mesh: dict
  remat: str
  micro_batches: int
  d: int
  tokens_per_step: int
  params: int
  memory: dict  # bytes per device: arguments, outputs, aliased, temporaries, code, total
  hbm_bytes: int
  compiled_flops: float  # per device per step, from the executable's cost analysis
  analytic_flops: float  # per device per step, ModelConfig.flops_per_token
  collectives: dict
  crossbatch_bytes: float  # per step per device: the collectives inside the memory layers' crossbatch attention
  window: int  # W of the compiled crossbatch plan
  ici_link_bytes_per_s: float  # one direction of one ICI link (tpu_specs)
  ici_bytes_per_s: float  # a device's share of all its chip's links (tpu_specs.TpuSpec.ici_bytes_per_s)
  loops: list  # [Loop]: the while loops the per-step collective counts are weighted by
  implied_trips: dict  # trip count -> why: the loop lengths the config implies (cross-check of `loops`)
  peak_flops: float
  mfu: float
  compile_s: float

  @property
  def fits(self) -> bool:
    return self.memory["total"] <= self.hbm_bytes

  @property
  def compute_s(self) -> float:
    """Analytic FLOPs per device at the assumed MFU of the chip's peak."""
    return self.analytic_flops / (self.peak_flops * self.mfu)

  @property
  def collective_bytes(self) -> float:
    return float(sum(s["bytes_per_step"] for s in self.collectives.values()))

  @property
  def communication_s(self) -> float:
    """Collective bytes over ICI bandwidth: a collective-permute (neighbour exchange) over one link in one
    direction, every other collective over all the chip's links (rings along every torus axis)."""
    if not self.ici_link_bytes_per_s:
      return float("nan")
    permute = self.collectives["collective-permute"]["bytes_per_step"]
    return permute / self.ici_link_bytes_per_s + (self.collective_bytes - permute) / self.ici_bytes_per_s

  @property
  def step_time_s(self) -> float:
    """The larger of compute and communication (no overlap assumed beyond that)."""
    return max(self.compute_s, self.communication_s)

  @property
  def tokens_per_s_per_chip(self) -> float:
    return self.tokens_per_step / self.step_time_s / self.chips

  def to_json(self) -> dict:
    """The report as plain JSON values (bytes and seconds per device per step)."""
    return {
        "topology": self.topology, "device_kind": self.device_kind, "devices": self.devices, "chips": self.chips,
        "mesh": self.mesh, "remat": self.remat, "micro_batches": self.micro_batches, "d": self.d,
        "window": self.window, "tokens_per_step": self.tokens_per_step, "params": self.params,
        "fits": self.fits, "memory_per_device_bytes": self.memory["total"], "memory": self.memory,
        "hbm_bytes": self.hbm_bytes,
        "flops_per_device": {"compiled": self.compiled_flops, "analytic": self.analytic_flops},
        "collectives": {"total_bytes": self.collective_bytes, "crossbatch_bytes": self.crossbatch_bytes,
                        **{kind: s["bytes_per_step"] for kind, s in self.collectives.items()},
                        "counts_per_step": {kind: s["per_step"] for kind, s in self.collectives.items()}},
        "ici_bytes_per_s": {"link_one_way": self.ici_link_bytes_per_s, "device_all_links": self.ici_bytes_per_s},
        "step_time_s": {"compute": self.compute_s, "communication": self.communication_s},
        "mfu": self.mfu, "tokens_per_s_per_chip": self.tokens_per_s_per_chip, "compile_s": self.compile_s,
    }


def analyse(compiled, built: Built, config, topology: str, devices, mfu: float, compile_s: float) -> Report:
  spec = tpu_specs.spec_for_kind(devices[0].device_kind)
  mem = compiled.memory_analysis()
  memory = {"arguments": mem.argument_size_in_bytes, "outputs": mem.output_size_in_bytes,
            "aliased": mem.alias_size_in_bytes, "temporaries": mem.temp_size_in_bytes,
            "code": mem.generated_code_size_in_bytes}
  memory["total"] = (memory["arguments"] + memory["outputs"] - memory["aliased"] + memory["temporaries"]
                     + memory["code"])
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  n = len(devices)
  hlo = compiled.as_text()
  loops = while_loops(hlo)
  ops = collective_ops(hlo, loops)
  analytic = built.model.flops_per_token(config.data.seq_len, built.d) * built.tokens_per_step / n
  return Report(topology=topology, device_kind=devices[0].device_kind, devices=n, chips=spec.chips(n),
                mesh=dict(built.mesh.shape), remat=config.mesh.remat, micro_batches=config.data.micro_batches,
                d=built.d, tokens_per_step=built.tokens_per_step, params=built.model.num_params(), memory=memory,
                hbm_bytes=spec.hbm_bytes, compiled_flops=float(cost.get("flops", 0.0)), analytic_flops=analytic,
                collectives=collective_stats(hlo, loops), crossbatch_bytes=crossbatch_bytes(ops), window=built.window,
                ici_link_bytes_per_s=spec.ici_link_bytes_per_s, ici_bytes_per_s=spec.ici_bytes_per_s, loops=loops,
                implied_trips=implied_trip_counts(config, built.model, built.window), peak_flops=spec.peak_flops, mfu=mfu,
                compile_s=compile_s)


def _gib(n: float) -> str:
  return f"{n / 2 ** 30:.2f} GiB"


def format_report(r: Report) -> str:
  m = r.memory
  ratio = r.compiled_flops / r.analytic_flops if r.analytic_flops else float("nan")
  lines = [
      f"topology {r.topology}: {r.devices} x {r.device_kind} ({r.chips:g} chips), mesh {r.mesh}, "
      f"remat {r.remat}, micro-batches {r.micro_batches}, crossbatch d={r.d} (window W={r.window})",
      f"model {r.params / 1e9:.2f}B params; {r.tokens_per_step:,} tokens per step; compiled in {r.compile_s:.0f}s",
      f"memory per device: arguments {_gib(m['arguments'])}, outputs {_gib(m['outputs'])} (aliased "
      f"{_gib(m['aliased'])}), temporaries {_gib(m['temporaries'])}, code {_gib(m['code'])}",
      f"  total {_gib(m['total'])} of {_gib(r.hbm_bytes)} HBM ({100 * m['total'] / r.hbm_bytes:.0f}%): "
      + ("FITS" if r.fits else "DOES NOT FIT"),
      f"FLOPs per device per step: compiled {r.compiled_flops:.3e}, analytic {r.analytic_flops:.3e} "
      f"(ratio {ratio:.2f}; remat recompute counts in compiled, Pallas kernels do not)",
      "collectives (static count in HLO / executed per step / buffer bytes per step per device; estimate: loop "
      "bodies weighted by their trip counts below, sizes of the buffers moved, not link traffic):",
  ]
  for kind, s in r.collectives.items():
    if s["count"]:
      lines.append(f"  {kind:<19} {s['count']:>4} / {s['per_step']:>5} / {_gib(s['bytes_per_step'])}")
  if not any(s["count"] for s in r.collectives.values()):
    lines.append("  none")
  lines.append(f"  total {_gib(r.collective_bytes)}, of which crossbatch attention {_gib(r.crossbatch_bytes)}")
  lines.append(format_loops(r.loops, r.implied_trips))
  lines.append(f"estimated step time {r.step_time_s:.2f}s = max(compute {r.compute_s:.2f}s at {100 * r.mfu:.0f}% MFU "
               f"of {r.peak_flops / 1e12:.1f} TFLOP/s per device, communication {r.communication_s:.2f}s at "
               f"{r.ici_link_bytes_per_s / 1e9:.0f} GB/s per ICI link, {r.ici_bytes_per_s / 1e9:.0f} GB/s per "
               f"device): {r.tokens_per_s_per_chip:,.0f} tokens/s per chip "
               f"({'communication' if r.communication_s > r.compute_s else 'compute'}-bound)")
  return "\n".join(lines)


def implied_trip_counts(config, model, d: int) -> dict[int, str]:
  """Loop lengths the config implies, to cross-check the trip counts read from the HLO: the layer scans (one per
  run of ordinary layers between memory layers), the micro-batch scan, the chunked attention's block scans
  (local: L / chunk blocks; crossbatch: d * L / chunk)."""
  from fot_jax.model.config import layer_runs
  out: dict[int, str] = {}
  if config.mesh.scan_layers:
    for start, stop, _ in layer_runs(model):
      if stop - start > 1:
        out.setdefault(stop - start, "layer scan")
  if config.data.micro_batches > 1:
    out.setdefault(config.data.micro_batches, "micro-batches")
  if model.attention_impl == "chunked":
    n_sub = -(-config.data.seq_len // model.attention_chunk_size)
    out.setdefault(n_sub, "local attention blocks")
    if d:
      out.setdefault(d * n_sub, "crossbatch attention blocks")
  return out


def format_loops(loops: list, implied: dict[int, str] | None = None) -> str:
  """The while loops' trip counts grouped by the JAX op that made them (count x trips), how each was read, and
  which trip counts the config does not imply (marked '!': XLA's own loops, e.g. for a sharded gather, or a
  misread: check those before trusting the per-step collective numbers)."""
  groups: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
  for loop in loops:
    op = re.sub(r"^jit\([^)]*\)/", "", loop.op_name) or "?"
    groups[(op, loop.method)][loop.trips] += 1
  if not groups:
    return "while loops: none"
  parts = []
  for (op, method), trips in groups.items():
    shown = [("?" if t is None else str(t)) + ("!" if implied is not None and t not in implied else "")
             + (f" x{n}" if n > 1 else "") for t, n in trips.items()]
    parts.append(f"{op} [{method}]: {', '.join(shown)}")
  unknown = sum(loop.trips is None for loop in loops)
  note = f" ({unknown} with unknown trip count, counted once: per-step numbers are a lower bound)" if unknown else ""
  if implied is not None:
    known = ", ".join(f"{n} ({why})" for n, why in sorted(implied.items()))
    note += f"; the config implies {known or 'none'}"
  return f"while loops ({len(loops)}; trip counts){note}:\n" + "\n".join("  " + p for p in parts)


def check(config, topology: str, mfu: float = 0.4, dump_hlo: str | None = None,
          json_path: str | None = None, overwrite: bool = False) -> Report:
  """Builds, compiles and analyses; raises DoesNotFit (with the biggest buffers) when over HBM. dump_hlo: also
  write the compiled HLO text there, so the collective and loop parsing can be re-checked without recompiling.
  json_path: also write Report.to_json() there (also when the step does not fit). Existing files are refused
  unless overwrite."""
  for path, flag in ((dump_hlo, "--dump_hlo"), (json_path, "--json")):
    _check_writable(path, flag, overwrite)
  devices = tpu_specs.topology_devices(topology)
  built = build(config, devices)
  t0 = time.perf_counter()
  compiled = compile_step(built)
  if dump_hlo:
    with open(dump_hlo, "w") as f:
      f.write(compiled.as_text())
  report = analyse(compiled, built, config, topology, devices, mfu, time.perf_counter() - t0)
  if json_path:
    with open(json_path, "w") as f:
      json.dump(report.to_json(), f, indent=1)
  if not report.fits:
    raise DoesNotFit(format_report(report) + "\nlargest arguments per device:\n" + "\n".join(
        f"  {path}: {_gib(n)}" for path, n in biggest_arguments(built.args)))
  return report


def _check_writable(path: str | None, flag: str, overwrite: bool = False) -> None:
  """Fails before the (minutes long) compile when an output path cannot be written or would replace a file."""
  if not path:
    return
  if os.path.exists(path) and not overwrite:
    raise ValueError(f"{flag} {path} exists; pass --overwrite to replace it")
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
    raise ValueError(f"{flag}: the folder of {path!r} must exist and be writable")


# ---- entry point -----------------------------------------------------------------------------------------------
def main(argv) -> int:
  from absl import flags
  if len(argv) > 1:
    raise SystemExit(f"unexpected arguments: {argv[1:]}")
  config = TrainConfig.from_config_dict(flags.FLAGS["config"].value)
  try:
    report = check(config, flags.FLAGS["topology"].value, flags.FLAGS["mfu"].value,
                   flags.FLAGS["dump_hlo"].value, flags.FLAGS["json"].value, flags.FLAGS["overwrite"].value)
  except DoesNotFit as e:
    print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
    return EXIT_DOES_NOT_FIT
  print(format_report(report), flush=True)
  return 0


def run() -> None:
  """The command line (`python -m fot_jax.compile_check`, `fot-compile-check`): defines the flags, then main."""
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file("config", None, "Training config file (configs/...py[:variant]).")
  flags.DEFINE_string("topology", None, "TPU slice: libtpu name ('v5e:4x4', 'v4:2x4x8') or cloud name ('v5p-64').")
  flags.DEFINE_float("mfu", 0.4, "Assumed model FLOPs utilisation for the step-time estimate.")
  flags.DEFINE_string("dump_hlo", None, "Also write the compiled (partitioned) HLO text to this path.")
  flags.DEFINE_string("json", None, "Also write the report as JSON to this path.")
  flags.DEFINE_bool("overwrite", False, "Replace existing --json / --dump_hlo files.")
  flags.mark_flags_as_required(["config", "topology"])
  from fot_jax import cli, platforms
  from fot_jax.train import config_file
  platforms.use_cpu_without_accelerators()
  # ValueError: a bad config or topology; RuntimeError: libtpu missing (both name the flag).
  cli.run_absl(main, sys.argv, prog=PROG, also=(ValueError, RuntimeError), precheck=config_file.check_argv)


if __name__ == "__main__":
  run()
