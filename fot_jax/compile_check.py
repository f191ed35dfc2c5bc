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
from fot_jax.train.compile_report import Report, analyse, format_report, gib
from fot_jax.train.hlo_analysis import DTYPE_BYTES
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
    if not m or m.group(1) not in DTYPE_BYTES or m.group(3) in ("parameter", "constant", "tuple"):
      continue
    key = (m.group(1), m.group(2))
    nbytes = int(np.prod([int(x) for x in m.group(2).split(",") if x])) * DTYPE_BYTES[m.group(1)]
    op = re.search(r'op_name="([^"]*)"', line)
    found.setdefault(key, (nbytes, (op.group(1) if op else m.group(3))[-90:]))
  biggest = sorted(found.items(), key=lambda kv: -kv[1][0])[:top]
  lines = ["largest tensors of the step (global shapes, before sharding over the mesh):"]
  lines += [f"  {dt}[{dims}] {gib(n)}: {op}" for (dt, dims), (n, op) in biggest]
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
  msg += [f"  {path}: {gib(n)}" for path, n in biggest_arguments(built.args)]
  return "\n".join(msg)


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
        f"  {path}: {gib(n)}" for path, n in biggest_arguments(built.args)))
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
def build_parser():
  import argparse
  from fot_jax import cli
  p = argparse.ArgumentParser(prog="python -m fot_jax.compile_check", description=__doc__.split("\n\n")[0])
  cli.add_config_flag(p)
  p.add_argument("--topology", required=True,
                 help="TPU slice: libtpu name ('v5e:4x4', 'v4:2x4x8') or cloud name ('v5p-64')")
  p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation for the step-time estimate")
  p.add_argument("--dump_hlo", default=None, help="also write the compiled (partitioned) HLO text to this path")
  p.add_argument("--json", default=None, help="also write the report as JSON to this path")
  p.add_argument("--overwrite", action="store_true", help="replace existing --json / --dump_hlo files")
  cli.add_debug_flag(p)
  return p


def check_and_print(args) -> int:
  """Loads the config, checks it against the topology and prints the report; EXIT_DOES_NOT_FIT when over HBM."""
  from fot_jax.train import config_file
  config = TrainConfig.from_config_dict(config_file.load_config(args.config, args.config_overrides))
  try:
    result = check(config, args.topology, args.mfu, args.dump_hlo, args.json, args.overwrite)
  except DoesNotFit as e:
    print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
    return EXIT_DOES_NOT_FIT
  print(format_report(result), flush=True)
  return 0


def main(argv=None) -> int:
  from fot_jax import cli
  args = cli.parse_config_args(build_parser(), argv)
  # ValueError: a bad config or topology; RuntimeError: libtpu missing (both name the flag).
  return cli.run(lambda: check_and_print(args), prog=PROG, debug=args.debug, also=(ValueError, RuntimeError))


def run() -> None:
  """The command line (`python -m fot_jax.compile_check`, `fot-compile-check`)."""
  from fot_jax import platforms
  platforms.use_cpu_without_accelerators()
  sys.exit(main())


if __name__ == "__main__":
  run()
