"""The one way a config section is declared and checked: frozen dataclass fields with a check each.

A section is a frozen dataclass whose fields carry a check (`setting(default, check)`); `Section.parse` builds
it from a ConfigDict section, refusing unknown keys, and every failure is a ConfigError
"config.<section>.<field>: expected ..., found ...". Adding a field to a section is one `setting(...)` line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from fot_jax.train.errors import ConfigError

Check = Callable[[Any], Any]  # value -> normalised value; raises Invalid(expected) when the value is unusable


class Invalid(ValueError):
  """A value is unusable; the message says what was expected (the field path is added by the caller)."""


def fail(field: str, expected: str, found: Any):
  """Raises the config error of one field: 'config.<field>: expected <expected>, found <found>'."""
  raise ConfigError(f"config.{field}: expected {expected}, found {found!r}")


def setting(default: Any, check: Check):
  """A section field with its default (immutable) and its check, declared in one line."""
  return dataclasses.field(default=default, metadata={"check": check})


# ---- checks ----------------------------------------------------------------------------------------------------
def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def positive_int(value) -> int:
  if not (_is_int(value) and value > 0):
    raise Invalid("a positive integer")
  return int(value)


def non_negative_int(value) -> int:
  if not (_is_int(value) and value >= 0):
    raise Invalid("a non-negative integer")
  return int(value)


def positive_float(value) -> float:
  if not (isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
          and value > 0):
    raise Invalid("a positive number")
  return float(value)


def non_negative_float(value) -> float:
  if not (isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
          and value >= 0):
    raise Invalid("a non-negative number")
  return float(value)


def boolean(value) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise Invalid("True or False")
  return bool(value)


def text(value) -> str:
  if not isinstance(value, str):
    raise Invalid("a string")
  return value


def non_empty_text(value) -> str:
  if not isinstance(value, str) or not value:
    raise Invalid("a non-empty string")
  return value


def one_of(choices: Iterable[str]) -> Check:
  """A check accepting exactly the names in `choices` (the builders' own table, so values are written once)."""
  names = tuple(choices)

  def check(value):
    if value not in names:
      raise Invalid(f"one of {names}")
    return value
  return check


def tuple_of(item: Check, description: str) -> Check:
  """A check for a tuple (or list) whose items all pass `item`; `description` says what was expected."""
  def check(value):
    if not isinstance(value, (tuple, list)):
      raise Invalid(description)
    try:
      return tuple(item(v) for v in value)
    except Invalid:
      raise Invalid(description) from None
  return check


# ---- sections --------------------------------------------------------------------------------------------------
class Section:
  """Base of the typed config sections (frozen dataclasses): parsing from a ConfigDict and field checks."""

  NAME = ""  # the section's path in the config file, e.g. "optim"

  def __post_init__(self):
    for f in dataclasses.fields(self):
      check = f.metadata.get("check")
      if check is not None:
        value = getattr(self, f.name)
        try:
          object.__setattr__(self, f.name, check(value))
        except Invalid as e:
          fail(self.path(f.name), str(e), value)
    self.check()

  def check(self) -> None:
    """Checks between the section's own fields (after each field's check); raises ConfigError."""

  def path(self, field: str) -> str:
    return f"{self.NAME}.{field}" if self.NAME else field

  @classmethod
  def parse(cls, values: Mapping[str, Any] | Any, **extra):
    """The section from a ConfigDict (or dict): unknown keys are refused, missing ones take the default."""
    values = dict(values.to_dict() if hasattr(values, "to_dict") else values)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      fail(f"{cls.NAME}.{unknown[0]}" if cls.NAME else unknown[0], f"a field of config.{cls.NAME} "
           f"({', '.join(sorted(known - set(extra)))})", values[unknown[0]])
    return cls(**values, **extra)

  def to_dict(self) -> dict[str, Any]:
    return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value):
  if isinstance(value, Section) or hasattr(value, "to_dict"):
    return value.to_dict()
  if isinstance(value, tuple):
    return [_plain(v) for v in value]
  return value
