"""Config overrides for launched jobs: parse the launchers' `--set KEY=VALUE` flags; load and check configs.

Launchers run training in other processes (or on other machines), where a typo in an override key would only
surface after start-up, compilation, or a TPU allocation. So every override is checked first, against the same
ml_collections config the trainer will load (fot_jax.train.config_file, which the trainer uses too), and the
error names the key and the nearest valid one. Values are checked too: the overridden config is converted into
the trainer's typed TrainConfig, whose ConfigError names the field and what it expected.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from fot_jax.train.config_file import (  # noqa: F401 - the launchers' config API
    ConfigFileError, OverrideError, all_keys, check_keys, format_value, load_config, override_flags)


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


def load_checked_config(config: str, overrides: Mapping[str, Any] | None = None):
  """load_config, then the trainer's own conversion to TrainConfig, so a bad value fails here naming its field."""
  loaded = load_config(config, overrides)
  from fot_jax.train.config import TrainConfig
  TrainConfig.from_config_dict(loaded)
  return loaded
