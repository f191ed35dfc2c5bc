"""Device mesh and the ONE logical-axis rules table that maps parameter/activation axes onto it.

Mesh axes: data (pure data parallel), fsdp (data parallel with sharded params and optimizer state), tensor
(heads / MLP hidden). Batch rows are split over (data, fsdp); parameters' embed axis over fsdp.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (or tuple of mesh axes, or None = replicated).
LOGICAL_RULES: dict[str, Any] = {
    "batch": ("data", "fsdp"),
    "length": None,
    "embed": "fsdp",
    "vocab": "tensor",
    "q_heads": "tensor",
    "kv_heads": "tensor",
    "heads": "tensor",
    "mlp": "tensor",
    "layers": None,
    "norm": None,
    "head_dim": None,
}


def make_mesh(shape: Sequence[int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A (data, fsdp, tensor) mesh over exactly `devices`; one -1 takes the remaining devices. Auto axes (see
  DESIGN). A config's mesh.shape is checked against the devices by MeshConfig; this only refuses a misfit."""
  devices = list(jax.devices() if devices is None else devices)
  shape = list(shape)
  if shape.count(-1) == 1:
    shape[shape.index(-1)] = len(devices) // max(int(np.prod([s for s in shape if s != -1])), 1)
  if len(shape) != len(MESH_AXES) or any(s <= 0 for s in shape) or int(np.prod(shape)) != len(devices):
    raise ValueError(f"mesh shape {tuple(shape)} for axes {MESH_AXES} does not cover the {len(devices)} devices")
  try:
    device_array = mesh_utils.create_device_mesh(shape, devices=devices)
  except Exception:  # noqa: BLE001 - topology-aware placement is an optimisation; fall back to device order
    device_array = np.asarray(devices).reshape(shape)
  return Mesh(device_array, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def logical_to_spec(axes: Sequence[str | None] | None, rules: dict[str, Any] | None = None) -> P:
  """Logical axis names -> PartitionSpec; a mesh axis is used at most once per array."""
  rules = LOGICAL_RULES if rules is None else rules
  if axes is None:
    return P()
  used: set[str] = set()
  out = []
  for name in axes:
    target = rules.get(name) if name is not None else None
    names = (target,) if isinstance(target, str) else tuple(target or ())
    names = tuple(n for n in names if n not in used)
    used.update(names)
    out.append(names[0] if len(names) == 1 else (names or None))
  return P(*out)


def _divisible(shape, spec: P, mesh: Mesh) -> P:
  """Drops mesh axes from dimensions they do not divide (tiny models on big meshes stay valid)."""
  out = []
  for dim, entry in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    names = (entry,) if isinstance(entry, str) else tuple(entry or ())
    size = int(np.prod([mesh.shape[n] for n in names])) if names else 1
    out.append(entry if dim % size == 0 else None)
  return P(*out)


def tree_shardings(shapes: Any, axes: Any, mesh: Mesh, rules: dict[str, Any] | None = None) -> Any:
  """NamedShardings for a tree of arrays/ShapeDtypeStructs given a matching tree of logical axis tuples."""
  is_axes = lambda x: isinstance(x, tuple) and all(a is None or isinstance(a, str) for a in x)
  return jax.tree.map(lambda axes_, a: NamedSharding(mesh, _divisible(a.shape, logical_to_spec(axes_, rules), mesh)),
                      axes, shapes, is_leaf=is_axes)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
  """Batch-major arrays [B, ...]: rows over (data, fsdp)."""
  return NamedSharding(mesh, P(("data", "fsdp"), *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
