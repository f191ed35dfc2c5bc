"""Checks and conversions of the evaluation flags' values: positive ints, number lists, and the memory flags
(--topk, --approx_topk, --ivf_*, --mem_shards) turned into MemoryOptions. Errors name the flag."""

from __future__ import annotations


class EvalError(ValueError):
  """A user error (bad flag, missing file); the message names the flag."""


def positive(name: str, value: int | None, allow_none: bool = True) -> None:
  if value is None and allow_none:
    return
  if value is None or value <= 0:
    raise EvalError(f"--{name}: expected a positive integer, found {value}")


def int_list(name: str, text: str, minimum: int = 1, kilo: int = 1024) -> list[int]:
  """'1024,4096,32k' -> [1024, 4096, 32768]; k and m suffixes are powers of two (as in '32k tokens'), or of
  `kilo` (1000 for character counts: '30k' -> 30000)."""
  out = []
  for part in str(text).split(","):
    part = part.strip().lower()
    if not part:
      continue
    mult = {"k": kilo, "m": kilo * kilo}.get(part[-1], 1)
    digits = part[:-1] if mult > 1 else part
    try:
      value = int(digits) * mult
    except ValueError as e:
      raise EvalError(f"--{name}: expected comma-separated integers (k/m suffixes allowed), found {text!r}") from e
    if value < minimum:
      raise EvalError(f"--{name}: values must be {'positive' if minimum == 1 else f'>= {minimum}'}, found {value}")
    out.append(value)
  if not out:
    raise EvalError(f"--{name}: expected at least one value, found {text!r}")
  return out


def float_list(name: str, text: str, lo: float = 0.0, hi: float = 1.0) -> list[float]:
  try:
    values = [float(v) for v in str(text).split(",") if v.strip()]
  except ValueError as e:
    raise EvalError(f"--{name}: expected comma-separated numbers, found {text!r}") from e
  if not values or any(not lo <= v <= hi for v in values):
    raise EvalError(f"--{name}: expected numbers in [{lo}, {hi}], found {text!r}")
  return values


def memory_options(args):
  from fot_jax.model.inference import MemoryOptions
  positive("topk", args.topk)
  if args.approx_topk and args.topk is None:
    raise EvalError("--approx_topk needs --topk")
  return MemoryOptions(topk=args.topk, approx=bool(args.approx_topk), **memory_index(args),
                       **memory_mesh(getattr(args, "mem_shards", 1)))


def memory_index(args) -> dict:
  """--ivf_nlist/--ivf_nprobe/--ivf_balance -> MemoryOptions fields (no index without them)."""
  nlist, nprobe = getattr(args, "ivf_nlist", None), getattr(args, "ivf_nprobe", None)
  balance = getattr(args, "ivf_balance", None)
  if nlist is None:
    for name, value in (("ivf_nprobe", nprobe), ("ivf_balance", balance)):
      if value is not None:
        raise EvalError(f"--{name}={value} needs --ivf_nlist (the IVF index)")
    return {}
  positive("ivf_nlist", nlist)
  if args.topk is None:
    raise EvalError(f"--ivf_nlist={nlist}: the IVF index serves top-k memory; add --topk (found dense memory)")
  if args.approx_topk:
    raise EvalError("--ivf_nlist: the IVF index replaces --approx_topk; use one of them")
  if nprobe is None:
    raise EvalError(f"--ivf_nlist={nlist} needs --ivf_nprobe (lists each query probes, 1..{nlist})")
  positive("ivf_nprobe", nprobe)
  if nprobe > nlist:
    raise EvalError(f"--ivf_nprobe={nprobe}: expected at most --ivf_nlist={nlist} lists")
  if balance is not None and not balance >= 1:
    raise EvalError(f"--ivf_balance={balance}: expected a list cap of at least 1 (times the mean list length)")
  return {"index": "ivf", "nlist": nlist, "nprobe": nprobe, "balance": balance}


def memory_mesh(shards: int) -> dict:
  """--mem_shards -> MemoryOptions fields: a 1-D mesh over the first `shards` devices, axis "memory"."""
  positive("mem_shards", shards, allow_none=False)
  if shards == 1:
    return {}
  import jax
  devices = jax.devices()
  if len(devices) % shards:
    raise EvalError(f"--mem_shards={shards}: expected a divisor of the {len(devices)} devices "
                    f"({jax.default_backend()}), found {shards}")
  mesh = jax.make_mesh((shards,), ("memory",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices[:shards])
  return {"mesh": mesh, "mem_axis": "memory"}
