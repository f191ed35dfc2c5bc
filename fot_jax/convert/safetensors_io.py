"""Streamed safetensors I/O in plain numpy: a sharded writer that holds one tensor at a time, and a lazy reader.

The writer knows every tensor's name, shape and dtype up front (from the model config), so each shard's header is
written first and tensors are then produced one by one: a 7B export never holds a second copy of the model.
The format (https://huggingface.co/docs/safetensors): u64 little-endian header size, a JSON header
{name: {dtype, shape, data_offsets}}, then the raw little-endian bytes. Both sides use ml_dtypes for bfloat16.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Iterable, Sequence

import ml_dtypes
import numpy as np

from fot_jax.convert.checks import ConversionError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

_TO_ST = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(ml_dtypes.bfloat16): "BF16",
          np.dtype(np.float64): "F64", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32",
          np.dtype(np.int16): "I16", np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}
_FROM_ST = {v: k for k, v in _TO_ST.items()}

DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16),
          "float16": np.dtype(np.float16)}


def read_json(path: str):
  """A JSON file's content; a ConversionError naming the file when it is not valid JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ConversionError(f"{path}: not valid JSON ({e})") from e


def numpy_dtype(name: str) -> np.dtype:
  """'float32' | 'bfloat16' | 'float16' -> numpy dtype; ValueError naming the choices otherwise."""
  if name not in DTYPES:
    raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, found {name!r}")
  return DTYPES[name]


def parse_size(size: int | str) -> int:
  """'5GB', '200MB', '10KB' or an int -> bytes (decimal units, as transformers' max_shard_size)."""
  if isinstance(size, int):
    return size
  s = size.strip().upper()
  try:
    for unit, mult in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
      if s.endswith(unit):
        return int(float(s[:-len(unit)]) * mult)
    return int(s)
  except ValueError:
    raise ValueError(f"max_shard_size: expected a size like 5GB, 500MB or a byte count, found {size!r}") from None


def _nbytes(shape: Sequence[int], dtype: np.dtype) -> int:
  return int(math.prod(shape)) * np.dtype(dtype).itemsize


def plan_shards(specs: Sequence[tuple[str, tuple[int, ...], np.dtype]], max_shard_bytes: int) -> list[list[int]]:
  """Greedy split of tensors (in order) into shards of at most max_shard_bytes (a bigger tensor gets its own)."""
  shards: list[list[int]] = [[]]
  size = 0
  for i, (_, shape, dtype) in enumerate(specs):
    n = _nbytes(shape, dtype)
    if shards[-1] and size + n > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(i)
    size += n
  return shards


def _header(specs, metadata: dict[str, str] | None) -> bytes:
  header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
  offset = 0
  for name, shape, dtype in specs:
    n = _nbytes(shape, dtype)
    header[name] = {"dtype": _TO_ST[np.dtype(dtype)], "shape": list(shape), "data_offsets": [offset, offset + n]}
    offset += n
  raw = json.dumps(header, separators=(",", ":")).encode()
  raw += b" " * (-len(raw) % 8)  # the header is padded to 8 bytes so tensor data stays aligned
  return struct.pack("<Q", len(raw)) + raw


def write_sharded(out_dir: str, specs: Sequence[tuple[str, tuple[int, ...], np.dtype]],
                  tensors: Iterable[np.ndarray], max_shard_bytes: int,
                  metadata: dict[str, str] | None = None) -> list[str]:
  """Writes tensors (yielded in the order of specs) as safetensors shards; returns the file names written.

  One shard -> model.safetensors; several -> model-0000i-of-0000n.safetensors plus model.safetensors.index.json
  (weight_map and total_size, as transformers expects).
  """
  shards = plan_shards(specs, max_shard_bytes)
  n = len(shards)
  names = [SINGLE_NAME] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
  it = iter(tensors)
  weight_map = {}
  for fname, idx in zip(names, shards):
    shard_specs = [specs[i] for i in idx]
    with open(os.path.join(out_dir, fname), "wb") as f:
      f.write(_header(shard_specs, metadata))
      for name, shape, dtype in shard_specs:
        t = next(it)
        if tuple(t.shape) != tuple(shape) or np.dtype(t.dtype) != np.dtype(dtype):
          raise ValueError(f"internal: tensor {name} is {t.shape} {t.dtype}, planned {shape} {dtype}")
        f.write(np.ascontiguousarray(t).astype(t.dtype.newbyteorder("<"), copy=False).tobytes())
        weight_map[name] = fname
  if next(it, None) is not None:
    raise ValueError("internal: more tensors than planned")
  if n > 1:
    total = sum(_nbytes(shape, dtype) for _, shape, dtype in specs)
    with open(os.path.join(out_dir, INDEX_NAME), "w") as f:
      json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    names.append(INDEX_NAME)
  return names


class SafetensorsFolder:
  """Lazy, memory-mapped access to the tensors of a folder (single file or sharded with an index)."""

  def __init__(self, folder: str):
    self.folder = folder
    index = os.path.join(folder, INDEX_NAME)
    if os.path.exists(index):
      weight_map = read_json(index).get("weight_map")
      if not isinstance(weight_map, dict):
        raise ConversionError(f"{index}: no 'weight_map' object (not a safetensors index)")
      files = sorted(set(weight_map.values()))
    elif os.path.exists(os.path.join(folder, SINGLE_NAME)):
      files = [SINGLE_NAME]
    else:
      raise FileNotFoundError(f"{folder}: no {SINGLE_NAME} or {INDEX_NAME}")
    self._entries: dict[str, tuple[str, int, dict]] = {}
    for fname in files:
      path = os.path.join(folder, fname)
      if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: listed in {INDEX_NAME} but missing")
      size, header = read_header(path)
      for name, info in header.items():
        self._entries[name] = (path, 8 + size, info)

  def keys(self) -> list[str]:
    return list(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._entries[name][2]["shape"])

  def get(self, name: str) -> np.ndarray:
    """The tensor as a read-only memory map (copy before modifying)."""
    if name not in self._entries:
      raise KeyError(f"{self.folder}: tensor {name!r} not found")
    path, base, info = self._entries[name]
    dtype = _FROM_ST.get(info["dtype"])
    if dtype is None:
      raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
    start, stop = info["data_offsets"]
    shape = tuple(info["shape"])
    if stop == start:
      return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype.newbyteorder("<"), mode="r", offset=base + start, shape=shape)


def read_header(path: str) -> tuple[int, dict]:
  """(header size, {tensor name: info}) of a safetensors file, checked against the file's length so a truncated
  or corrupt file is an error naming it (not a failed memory map later)."""
  file_size = os.path.getsize(path)
  with open(path, "rb") as f:
    raw = f.read(8)
    if len(raw) < 8:
      raise ConversionError(f"{path}: truncated safetensors file ({file_size} bytes, no header)")
    (size,) = struct.unpack("<Q", raw)
    if 8 + size > file_size:
      raise ConversionError(f"{path}: truncated or not a safetensors file (header of {size} bytes, file of "
                            f"{file_size})")
    try:
      header = json.loads(f.read(size))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ConversionError(f"{path}: corrupt safetensors header ({e})") from e
  if not isinstance(header, dict):
    raise ConversionError(f"{path}: corrupt safetensors header (not a JSON object)")
  header.pop("__metadata__", None)
  try:
    data_end = max((int(info["data_offsets"][1]) for info in header.values()), default=0)
  except (KeyError, TypeError, IndexError, ValueError) as e:
    raise ConversionError(f"{path}: corrupt safetensors header (bad data_offsets: {e})") from e
  if 8 + size + data_end > file_size:
    raise ConversionError(f"{path}: truncated safetensors file ({file_size} bytes, its header needs "
                          f"{8 + size + data_end})")
  return size, header
