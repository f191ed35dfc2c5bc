"""Running external commands for the launchers: argv lists only, a dry-run mode, and a readable echo.

Every command is an argv list (never a shell string built from user input); where a command must travel as one
string (`gcloud ... ssh --command=...`), it is built with shlex.join from argv lists, so each argument arrives
as exactly one word on the far side.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from typing import Sequence, TextIO


@dataclasses.dataclass
class Result:
  argv: list[str]
  returncode: int
  stdout: str = ""


class Runner:
  """Runs argv lists; with dry_run, prints each command (one shell-quoted line) and runs nothing.

  `echo=True` prints each command before running it, so a log shows exactly what was done.
  """

  def __init__(self, dry_run: bool = False, echo: bool = True, out: TextIO | None = None):
    self.dry_run = dry_run
    self.echo = echo
    self.out = out or sys.stdout
    self.history: list[list[str]] = []

  def show(self, argv: Sequence[str], note: str = "") -> None:
    prefix = "[dry-run] " if self.dry_run else "+ "
    print(prefix + shlex.join(argv) + (f"    # {note}" if note else ""), file=self.out, flush=True)

  def run(self, argv: Sequence[str], *, capture: bool | str = False, check: bool = True, note: str = "",
          dry_run_stdout: str = "") -> Result:
    """Runs argv. capture=False: output streams through; True: stdout is captured (stderr streams);
    "tee": stdout and stderr stream through *and* are captured. check: raise CommandError on a non-zero exit."""
    argv = [str(a) for a in argv]
    self.history.append(argv)
    if self.echo or self.dry_run:
      self.show(argv, note)
    if self.dry_run:
      return Result(argv, 0, dry_run_stdout)
    try:
      if capture == "tee":
        result = self._tee(argv)
      else:
        proc = subprocess.run(argv, stdout=subprocess.PIPE if capture else None, stderr=None, text=True)
        result = Result(argv, proc.returncode, proc.stdout or "")
    except FileNotFoundError as e:
      raise CommandError(argv, 127, f"{argv[0]!r} not found on PATH ({e})") from None
    if check and result.returncode != 0:
      raise CommandError(argv, result.returncode, result.stdout)
    return result

  def _tee(self, argv: list[str]) -> Result:
    lines = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
      for line in proc.stdout:
        lines.append(line)
        print(line, end="", file=self.out, flush=True)
    return Result(argv, proc.returncode, "".join(lines))


class CommandError(RuntimeError):
  def __init__(self, argv: Sequence[str], returncode: int, output: str = ""):
    self.argv, self.returncode, self.output = list(argv), returncode, output
    super().__init__(f"command failed with exit code {returncode}: {shlex.join(argv)}")


def remote_script(*commands: Sequence[str] | str, cd: str | None = None) -> str:
  """One bash line joining commands with '&&'. argv lists are shlex-quoted; plain strings are trusted
  fragments written in this package (never user input)."""
  parts = [shlex.join([str(a) for a in c]) if not isinstance(c, str) else c for c in commands]
  if cd:
    parts.insert(0, f"cd {shlex.quote(cd)}")
  return " && ".join(parts)
