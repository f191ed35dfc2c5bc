"""Loads a config file[:variant] with `--config.a.b=value` overrides, naming the file, variant or key at fault.

The trainer, compile_check and the launchers all load configs through ml_collections' flag parser, whose own
errors are a traceback (`AttributeError: 'dd'`, `config_config`). Loading through here first turns each into
one line: a missing file names its path, an unknown variant the file's message (its valid variants), an unknown
key the nearest valid one, an unparsable value the key.
"""

from __future__ import annotations

import difflib
import os
from typing import Any, Iterable, Mapping, Sequence

from absl import flags
from ml_collections import config_flags


class ConfigFileError(ValueError):
  """The config file is missing or cannot build a config for the requested variant."""


class OverrideError(ConfigFileError):
  """An override names a key the config lacks, or a value the key's type cannot take."""


def format_value(value: Any) -> str:
  """The string `--config.key=<string>` needs for a Python value (as ml_collections parses it back)."""
  if isinstance(value, bool):
    return "True" if value else "False"
  if isinstance(value, (list, tuple)):
    return "(" + ",".join(format_value(v) if not isinstance(v, str) else repr(v) for v in value) + \
        ("," if len(value) == 1 else "") + ")"
  if isinstance(value, float):
    return repr(value)
  return str(value)


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
  """['--config.a.b=value', ...] in the mapping's order (values already strings are passed through)."""
  return [f"--config.{key}={value if isinstance(value, str) else format_value(value)}"
          for key, value in overrides.items()]


def all_keys(config, prefix: str = "") -> list[str]:
  """Every dotted leaf and sub-config key of a ConfigDict."""
  keys = []
  for name in config.keys():
    key = f"{prefix}{name}"
    keys.append(key)
    child = config[name]
    if hasattr(child, "keys") and hasattr(child, "to_dict"):
      keys.extend(all_keys(child, key + "."))
  return keys


def check_keys(config, keys: Iterable[str]) -> None:
  """Raises OverrideError naming the first key the config lacks, with the nearest valid key."""
  valid = all_keys(config)
  leaves = set(valid)
  for key in keys:
    if key in leaves:
      continue
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise OverrideError(f"config override key {key!r} does not exist in the config{hint}")


def _last_line(error: Exception) -> str:
  """The final line of a wrapped error (ml_collections embeds the config file's whole traceback)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[-1] if lines else type(error).__name__


def load_config(config_path: str, overrides: Mapping[str, Any] | None = None):
  """The config `python -m fot_jax.train --config=config_path --config.k=v ...` would build.

  config_path may carry a variant (`configs/experiments/tiny_fot.py:quick`). Raises ConfigFileError for a
  missing file or a variant the file rejects, OverrideError for an unknown key or an unparsable value.
  """
  overrides = dict(overrides or {})
  file_path, _, variant = config_path.partition(":")
  if not os.path.isfile(file_path):
    raise ConfigFileError(f"--config: no config file at {file_path!r}")
  try:
    base = _parse([f"--config={config_path}"])
  except flags.Error as e:
    what = f"variant {variant!r}" if variant else "the default variant"
    raise ConfigFileError(f"--config {config_path}: {file_path} cannot build {what}: {_last_line(e)}") from None
  check_keys(base, overrides)
  if not overrides:
    return base
  try:
    return _parse([f"--config={config_path}", *override_flags(overrides)])
  except (flags.Error, ValueError, TypeError, KeyError, AttributeError) as e:
    raise OverrideError(f"config overrides {dict(overrides)} for {config_path}: {_last_line(e)}") from None


def split_overrides(args: Sequence[str], name: str = "config") -> tuple[dict[str, str], list[str]]:
  """({key: value} of the `--config.key=value` (or `--config.key value`) flags in args, the other args)."""
  overrides, others = {}, []
  rest = list(args)
  while rest:
    arg = rest.pop(0)
    flag, sep, value = arg.partition("=")
    if not flag.startswith(f"--{name}.") or len(flag) == len(name) + 3:
      others.append(arg)
      continue
    if not sep:
      if not rest:
        raise OverrideError(f"{flag}: expected a value ({flag}=VALUE)")
      value = rest.pop(0)
    overrides[flag[len(name) + 3:]] = value
  return overrides, others


def _parse(args: list[str]):
  """Parses args with a private FlagValues (the process's absl FLAGS are left alone)."""
  argv = ["launch", *args]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True, sys_argv=argv)
  values(argv)
  return values.config
