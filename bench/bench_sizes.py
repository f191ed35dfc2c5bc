"""Counts written the way the benches take them on the command line: 512, 64k, 1M, 1.5M (binary k and M)."""

from __future__ import annotations


def parse_size(text: str) -> int:
  """'64k' -> 65536, '1M' -> 1048576, '300' -> 300 (ValueError for anything else)."""
  text = text.strip().lower()
  scale = {"k": 1 << 10, "m": 1 << 20}.get(text[-1:], 1)
  return int(float(text.rstrip("km")) * scale)
