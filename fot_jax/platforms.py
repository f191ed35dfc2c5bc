"""On a machine with no TPU and no GPU, tell JAX to use the CPU backend rather than probe libtpu.

libtpu (the `tpu` extra) is installed for compile_check. When it is installed, JAX initialises it at start-up
even with no TPU attached, and libtpu prints `E0000 ... unexpected worker hostname` and "please set env var
TPU_..." warnings before every command. With no TPU or GPU device, CPU is JAX's only backend anyway, so setting
JAX_PLATFORMS=cpu changes nothing but that noise. compile_check still compiles for TPU: it loads libtpu
directly for its compile-only topologies, whatever JAX_PLATFORMS says.
"""

from __future__ import annotations

import glob
import os
import sys

# Device nodes of accelerators: TPU v2-v4 (accel), TPU v5e/v5p/v6e (vfio), NVIDIA, AMD (kfd), WSL GPUs (dxg).
ACCELERATOR_NODES = ("/dev/accel*", "/dev/vfio/[0-9]*", "/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")
# Set by users or TPU VM images that configure libtpu explicitly: then JAX's own choice stands.
TPU_SETTINGS = ("JAX_FORCE_TPU_INIT", "TPU_ACCELERATOR_TYPE", "TPU_WORKER_HOSTNAMES", "TPU_WORKER_ID", "TPU_NAME")


GOOGLE_PCI_VENDOR = "0x1ae0"  # TPU chips (also gVNIC on Google Cloud VMs: counted, erring towards "present")


def _google_pci_devices() -> int:
  count = 0
  for path in glob.glob("/sys/bus/pci/devices/*/vendor"):
    try:
      with open(path) as f:
        count += f.read().strip() == GOOGLE_PCI_VENDOR
    except OSError:
      continue
  return count


def accelerator_present() -> bool:
  """True if a TPU or GPU may be attached: an accelerator device node, or a Google device on the PCI bus."""
  return any(glob.glob(pattern) for pattern in ACCELERATOR_NODES) or _google_pci_devices() > 0


def use_cpu_without_accelerators() -> bool:
  """Sets JAX_PLATFORMS=cpu unless the user chose platforms or an accelerator may be present; True if it did."""
  if os.environ.get("JAX_PLATFORMS") or any(os.environ.get(name) for name in TPU_SETTINGS):
    return False
  jax = sys.modules.get("jax")
  if jax is not None and jax.config.jax_platforms is not None:
    return False
  if accelerator_present():
    return False
  os.environ["JAX_PLATFORMS"] = "cpu"
  if jax is not None:  # imported already: its config read the environment at import
    jax.config.update("jax_platforms", "cpu")
  return True
