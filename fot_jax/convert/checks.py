"""Checks that a weights file holds exactly the tensors its config describes: no missing, extra or misshaped one.

Every loader (HF folder, EasyLM file, orbax step) compares the names and shapes it found with the names and shapes
the config implies before reading any data, so a config that says 3 layers over weights that hold 4 is an error
instead of a silently truncated model.
"""

from __future__ import annotations

from typing import Iterable, Mapping

SHOWN = 3  # names listed per kind of problem; the rest are counted


class ConversionError(ValueError):
  """Weights or their config cannot be imported as they are; the message names the file and the tensors."""


def _listing(names: list[str]) -> str:
  shown = ", ".join(names[:SHOWN])
  return f"{shown} (+{len(names) - SHOWN} more)" if len(names) > SHOWN else shown


def tensor_problems(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                    optional: Iterable[str] = (), ignored: Iterable[str] = ()) -> list[str]:
  """Descriptions of missing, extra and misshaped tensors (empty when found matches expected).

  optional: expected names that may be absent; ignored: found names that are not parameters (buffers).
  """
  optional, ignored = set(optional), set(ignored)
  missing = [n for n in expected if n not in found and n not in optional]
  extra = [n for n in found if n not in expected and n not in ignored]
  misshaped = [f"{n} {tuple(found[n])} (expected {tuple(expected[n])})" for n in expected
               if n in found and tuple(found[n]) != tuple(expected[n])]
  problems = []
  for kind, names in (("missing", missing), ("unexpected", extra), ("misshaped", misshaped)):
    if names:
      problems.append(f"{len(names)} {kind}: {_listing(names)}")
  return problems


def check_tensors(source: str, config_source: str, found: Mapping[str, tuple[int, ...]],
                  expected: Mapping[str, tuple[int, ...]], optional: Iterable[str] = (),
                  ignored: Iterable[str] = ()) -> None:
  """Raises ConversionError naming `source` and the offending tensors when found differs from expected."""
  problems = tensor_problems(found, expected, optional, ignored)
  if problems:
    raise ConversionError(f"{source}: the tensors do not match {config_source}: {'; '.join(problems)}")
