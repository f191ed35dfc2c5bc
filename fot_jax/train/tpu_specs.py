"""TPU generations (HBM and peak FLOP/s per JAX device) and compile-only TPU topologies for a CPU host.

`topology_devices("v5e:4x4")` gives the device descriptions of a TPU slice from libtpu (the `tpu` extra), with
no TPU attached: enough to build a Mesh and compile for it. Cloud accelerator names ("v5p-64", "v4-128",
"v5e-256", "v3-128") are accepted too and mapped onto libtpu's chip-grid names.

A JAX device is a chip on v4/v5p (megacore: the chip's two TensorCores act as one device) and on v5e/v6e (one
core per chip), but a single TensorCore on v2/v3 (two devices per chip). Numbers below are per JAX device;
peaks are the vendors' dense bf16 numbers; inter-chip interconnect (ICI) bandwidths are per link (sources below).
"""

from __future__ import annotations

import dataclasses
import os
import re

GiB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class TpuSpec:
  generation: str  # libtpu's topology prefix: v2, v3, v4, v5e, v5p, v6e
  hbm_bytes: int  # per JAX device
  peak_flops: float  # dense bf16 FLOP/s per JAX device
  devices_per_chip: int  # 2 on v2/v3 (one device per TensorCore), else 1
  cores_per_name_unit: int  # cloud names count TensorCores: v5p-64 is 32 chips, v5e-256 is 256 chips
  ici_link_bytes_per_s: float = 0.0  # one direction of one inter-chip link
  ici_links: int = 0  # links per chip (3D torus: 6, 2D torus: 4)

  def chips(self, devices: int) -> float:
    return devices / self.devices_per_chip

  @property
  def ici_bytes_per_s(self) -> float:
    """What one JAX device can receive over all its chip's links at once (its share of the chip's links)."""
    return self.ici_link_bytes_per_s * self.ici_links / self.devices_per_chip


# ICI numbers (one direction of one link; links per chip) and their sources. Cloud TPU documents the per-chip
# bidirectional ICI bandwidth for v5p (1200 GB/s, 3D torus: 6 links -> 100 GB/s one way per link) and v5e
# (400 GB/s, 4 ICI ports -> 50 GB/s); for v4 and v6e the per-link figures are those of "How to Scale Your
# Model" (jax-ml.github.io/scaling-book, part 2: 45 GB/s for v4 with 6 links, 90 GB/s for v6e with 4 links); for
# v2 and v3 the TPU v2/v3 paper's link rates (Jouppi et al., CACM 2020: 496 and 656 Gbit/s, 4 links per chip).
# The estimates built on them are approximations: real collectives reach a fraction of these peaks.
SPECS: dict[str, TpuSpec] = {
    "v2": TpuSpec("v2", 8 * GiB, 22.5e12, 2, 2, 62e9, 4),
    "v3": TpuSpec("v3", 16 * GiB, 61.5e12, 2, 2, 82e9, 4),
    "v4": TpuSpec("v4", 32 * GiB, 275e12, 1, 2, 45e9, 6),
    "v5e": TpuSpec("v5e", 16 * GiB, 197e12, 1, 1, 50e9, 4),
    "v5p": TpuSpec("v5p", 95 * GiB, 459e12, 1, 2, 100e9, 6),
    "v6e": TpuSpec("v6e", 32 * GiB, 918e12, 1, 1, 90e9, 4),
}

# device_kind reported by libtpu -> generation.
KINDS = {"tpu v2": "v2", "tpu v3": "v3", "tpu v4": "v4", "tpu v5 lite": "v5e", "tpu v5e": "v5e", "tpu v5p": "v5p",
         "tpu v5": "v5p", "tpu v6 lite": "v6e", "tpu v6e": "v6e"}

# Cloud accelerator name -> libtpu chip grid, for the slices the docs use; other sizes: pass "gen:AxB[xC]".
CLOUD_NAMES = {
    "v3-8": "v3:2x2", "v3-32": "v3:4x4", "v3-128": "v3:8x8", "v3-256": "v3:8x16",
    "v4-8": "v4:2x2x1", "v4-32": "v4:2x2x4", "v4-64": "v4:2x4x4", "v4-128": "v4:2x4x8", "v4-256": "v4:4x4x8",
    "v5p-8": "v5p:2x2x1", "v5p-32": "v5p:2x2x4", "v5p-64": "v5p:2x4x4", "v5p-128": "v5p:4x4x4",
    "v5e-4": "v5e:2x2", "v5e-8": "v5e:2x4", "v5e-16": "v5e:4x4", "v5e-64": "v5e:8x8", "v5e-256": "v5e:16x16",
    "v6e-4": "v6e:2x2", "v6e-16": "v6e:4x4", "v6e-64": "v6e:8x8", "v6e-256": "v6e:16x16",
}


def spec_for_kind(device_kind: str) -> TpuSpec:
  kind = device_kind.lower()
  for name in sorted(KINDS, key=len, reverse=True):
    if kind.startswith(name):
      return SPECS[KINDS[name]]
  raise ValueError(f"no HBM/peak numbers known for TPU device kind {device_kind!r}; known: {sorted(KINDS)}")


def resolve_topology(name: str) -> str:
  """'v5p-64' -> 'v5p:2x4x4'; 'v5e:4x4' unchanged. Raises ValueError with the accepted forms."""
  name = name.strip().lower()
  if name in CLOUD_NAMES:
    return CLOUD_NAMES[name]
  if re.fullmatch(r"v(2|3|4|5e|5p|6e):\d+(x\d+){1,2}", name):
    return name
  raise ValueError(f"--topology: expected a libtpu topology like 'v5e:4x4' or 'v4:2x4x8', or one of "
                   f"{sorted(CLOUD_NAMES)}; found {name!r}")


def topology_devices(name: str) -> list:
  """Compile-only device descriptions of a TPU slice (needs libtpu: pip install -e '.[tpu]')."""
  topology = resolve_topology(name)
  try:
    import libtpu  # noqa: F401 - only to give a clear error when the extra is missing
  except ImportError as e:
    raise RuntimeError("compiling for TPU needs libtpu: pip install -e '.[tpu]' (jax[tpu] at the pinned jax "
                       "version)") from e
  # Compile-only use never touches a chip: let several processes (parallel tests, other users) load libtpu.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from jax.experimental import topologies
  kwargs = {}
  if topology.startswith("v4") or topology.startswith("v5p"):
    kwargs["chip_config_name"] = "megacore"  # one device per chip, as TPU VMs run them
  try:
    desc = topologies.get_topology_desc(platform="tpu", topology_name=topology, **kwargs)
  except Exception as e:  # noqa: BLE001 - libtpu raises several runtime error types
    raise ValueError(f"--topology {name!r} ({topology}): libtpu does not know this slice ({e})") from e
  return list(desc.devices)



def devices_of_accelerator(accelerator_type: str) -> int | None:
  """JAX devices of a Cloud TPU accelerator type ('v4-32' -> 16, 'v5litepod-16' -> 16, 'v3-8' -> 8); None if
  the name is not of that form. v2-v5p names count TensorCores, v5e/v6e names count chips."""
  match = re.fullmatch(r"(v2|v3|v4|v5p|v5e|v5litepod|v6e)-(\d+)", accelerator_type.strip().lower())
  if not match:
    return None
  spec = SPECS["v5e" if match.group(1) == "v5litepod" else match.group(1)]
  chips = int(match.group(2)) // spec.cores_per_name_unit
  return chips * spec.devices_per_chip
