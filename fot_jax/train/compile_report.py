"""The compile check's report: memory per device against HBM, compiled vs analytic FLOPs, collectives and loop
trip counts read from the HLO, and the estimated step time (fot_jax.compile_check builds and compiles the step).
"""

from __future__ import annotations

import collections
import dataclasses
import re

from fot_jax.train import tpu_specs
from fot_jax.train.hlo_analysis import collective_ops, collective_stats, crossbatch_bytes, while_loops

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


def analyse(compiled, built,  config, topology: str, devices, mfu: float, compile_s: float) -> Report:
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


def gib(n: float) -> str:
  return f"{n / 2 ** 30:.2f} GiB"


def format_report(r: Report) -> str:
  m = r.memory
  ratio = r.compiled_flops / r.analytic_flops if r.analytic_flops else float("nan")
  lines = [
      f"topology {r.topology}: {r.devices} x {r.device_kind} ({r.chips:g} chips), mesh {r.mesh}, "
      f"remat {r.remat}, micro-batches {r.micro_batches}, crossbatch d={r.d} (window W={r.window})",
      f"model {r.params / 1e9:.2f}B params; {r.tokens_per_step:,} tokens per step; compiled in {r.compile_s:.0f}s",
      f"memory per device: arguments {gib(m['arguments'])}, outputs {gib(m['outputs'])} (aliased "
      f"{gib(m['aliased'])}), temporaries {gib(m['temporaries'])}, code {gib(m['code'])}",
      f"  total {gib(m['total'])} of {gib(r.hbm_bytes)} HBM ({100 * m['total'] / r.hbm_bytes:.0f}%): "
      + ("FITS" if r.fits else "DOES NOT FIT"),
      f"FLOPs per device per step: compiled {r.compiled_flops:.3e}, analytic {r.analytic_flops:.3e} "
      f"(ratio {ratio:.2f}; remat recompute counts in compiled, Pallas kernels do not)",
      "collectives (static count in HLO / executed per step / buffer bytes per step per device; estimate: loop "
      "bodies weighted by their trip counts below, sizes of the buffers moved, not link traffic):",
  ]
  for kind, s in r.collectives.items():
    if s["count"]:
      lines.append(f"  {kind:<19} {s['count']:>4} / {s['per_step']:>5} / {gib(s['bytes_per_step'])}")
  if not any(s["count"] for s in r.collectives.values()):
    lines.append("  none")
  lines.append(f"  total {gib(r.collective_bytes)}, of which crossbatch attention {gib(r.crossbatch_bytes)}")
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
  (local: L / chunk blocks; crossbatch: d * L / chunk), as the attention backend reports them."""
  from fot_jax.model import backends
  from fot_jax.model.config import layer_runs
  out: dict[int, str] = {}
  if config.mesh.scan_layers:
    for start, stop, _ in layer_runs(model):
      if stop - start > 1:
        out.setdefault(stop - start, "layer scan")
  if config.data.micro_batches > 1:
    out.setdefault(config.data.micro_batches, "micro-batches")
  block_loops = backends.get(model.attention_impl).block_loops
  for trips, why in (block_loops(config.data.seq_len, model.attention_chunk_size, d) if block_loops else {}).items():
    out.setdefault(trips, why)
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
