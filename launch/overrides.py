"""Config overrides for launched jobs: load a config file, check dotted keys, format `--config.a.b=value` flags.

Launchers run training in other processes (or on other machines), where a typo in an override key would only
surface after start-up, compilation, or a TPU allocation. So every override is checked here first, against the
same ml_collections config the trainer will load, and the error names the key and the nearest valid one.
Values are parsed by ml_collections' own flag parser (the one `python -m fot_jax.train` uses), so a value that
the trainer would reject is rejected here too.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any, Iterable, Mapping

from absl import flags
from ml_collections import config_flags


class OverrideError(ValueError):
  """An override names a key the config lacks, or a value the key's type cannot take."""


def _ensure_repo_on_path(config_path: str) -> None:
  """Config files import `configs.base`: make the repository that holds config_path importable."""
  path = os.path.abspath(config_path.split(":", 1)[0])
  parts = path.split(os.sep)
  if "configs" in parts:
    root = os.sep.join(parts[:len(parts) - 1 - parts[::-1].index("configs")]) or os.sep
    if root not in sys.path:
      sys.path.insert(0, root)


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


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
  """'a.b=value' strings (the launchers' --set flags) -> {key: value-string}; the value may contain '='."""
  out: dict[str, str] = {}
  for item in items:
    key, sep, value = item.partition("=")
    key = key.strip()
    if key.startswith("--config."):
      key = key[len("--config."):]
    elif key.startswith("config."):
      key = key[len("config."):]
    if not sep or not key:
      raise OverrideError(f"override {item!r}: expected KEY=VALUE, e.g. optim.learning_rate=1e-3")
    out[key] = value
  return out


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


def load_config(config_path: str, overrides: Mapping[str, Any] | None = None):
  """The config `python -m fot_jax.train --config=config_path --config.k=v ...` would build.

  config_path may carry a variant (`configs/experiments/tiny_fot.py:quick`). Raises OverrideError for an
  unknown key or an unparsable value, FileNotFoundError for a missing config file.
  """
  overrides = dict(overrides or {})
  file_path = config_path.split(":", 1)[0]
  if not os.path.isfile(file_path):
    raise FileNotFoundError(f"--config: no config file at {file_path!r}")
  _ensure_repo_on_path(config_path)
  base = _parse([f"--config={config_path}"])
  check_keys(base, overrides)
  if not overrides:
    return base
  try:
    return _parse([f"--config={config_path}", *override_flags(overrides)])
  except (flags.Error, ValueError, TypeError, KeyError, AttributeError) as e:
    raise OverrideError(f"config overrides {dict(overrides)} for {config_path}: {e}") from None


def _parse(args: list[str]):
  """Parses args with a private FlagValues (the process's absl FLAGS are left alone)."""
  argv = ["launch", *args]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True, sys_argv=argv)
  values(argv)
  return values.config
