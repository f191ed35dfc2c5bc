"""The error policy of every command: a user error prints `PROG: error: ...` as one line and exits 2.

Anything else is a bug and keeps its traceback; `--debug` keeps the traceback for user errors too. User errors
are the project's own error classes (and their subclasses), named by import path so that checking an error
never imports JAX; a command may add the built-in types its own code raises for bad input. Every command parses
its flags with argparse (a usage error also exits 2); the config-file commands add `--config FILE[:VARIANT]` and
its `--config.KEY=VALUE` overrides here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable, Sequence

EXIT_USER_ERROR = 2
USER_ERRORS = (
    "fot_jax.train.errors.ConfigError",
    "fot_jax.train.errors.TrainingError",
    "fot_jax.train.config_file.ConfigFileError",
    "fot_jax.eval.flag_values.EvalError",
    "fot_jax.convert.checks.ConversionError",
    "fot_jax.launch.tpu_target.LaunchError",
    "fot_jax.launch.gitinfo.GitError",
)
# Built-in types that the file-reading commands (evaluate, export, convert) raise for bad flags and inputs.
INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError, KeyError)
DEBUG_HELP = "show the full traceback of an error instead of one line"


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def dispatch(argv: list[str], commands: dict[str, str], usage: str, what: str) -> int:
  """`PROG COMMAND [flags]`: runs main(flags) of the module commands[COMMAND]; --help lists the commands (exit 0),
  a missing or unknown command is a usage error (exit 2)."""
  import importlib
  if argv and argv[0] in ("-h", "--help"):
    print(f"usage: {usage}\n\n{what.lower()}s (each takes --help):")
    print("\n".join(f"  {name}" for name in commands))
    return 0
  if not argv or argv[0] not in commands:
    found = argv[0] if argv else None
    print(f"usage: {usage}; {what} one of {sorted(commands)} (found {found!r})", file=sys.stderr)
    return EXIT_USER_ERROR
  return importlib.import_module(commands[argv[0]]).main(argv[1:])


def is_user_error(error: BaseException, also: Iterable[type] = ()) -> bool:
  """True for the project's user-error classes, their subclasses, and instances of `also`."""
  if isinstance(error, tuple(also)):
    return True
  return any(_import_path(cls) in USER_ERRORS for cls in type(error).__mro__)


def _import_path(cls: type) -> str:
  """module.Class, with the module's import name where it runs as __main__ (`python -m fot_jax.launch.tpu`)."""
  module = cls.__module__
  if module == "__main__":
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    module = getattr(spec, "name", None) or module
  return f"{module}.{cls.__qualname__}"


def one_line(error: BaseException) -> str:
  """The error's message on one line (wrapped library messages can span several)."""
  text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
  return text or type(error).__name__


def run(body: Callable[[], int | None], *, prog: str, debug: bool = False, also: Iterable[type] = ()) -> int:
  """body()'s exit status (None -> 0); a user error -> one line on stderr and EXIT_USER_ERROR."""
  try:
    return body() or 0
  except Exception as e:  # noqa: BLE001 - re-raised unless it is a user error
    if debug or not is_user_error(e, also):
      raise
    print(f"{prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def add_config_flag(parser: argparse.ArgumentParser) -> None:
  """--config FILE[:VARIANT], with `--config.KEY=VALUE` overrides that parse_config_args collects."""
  parser.add_argument("--config", required=True, metavar="FILE[:VARIANT]",
                      help="training config file (configs/...py[:variant]); change any value with "
                           "--config.KEY=VALUE (repeatable, e.g. --config.optim.learning_rate=1e-3)")


def parse_config_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
  """parser's flags, plus args.config_overrides: {KEY: VALUE} of the `--config.KEY=VALUE` flags (values are parsed
  against the config's own types by fot_jax.train.config_file.load_config). Other unknown flags: usage error."""
  from fot_jax.train.config_file import OverrideError, split_overrides
  args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
  try:
    args.config_overrides, unknown = split_overrides(rest)
  except OverrideError as e:
    parser.error(str(e))
  if unknown:
    parser.error(f"unrecognized arguments: {' '.join(unknown)}")
  return args
