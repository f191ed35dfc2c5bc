"""The code a launch ships: the git commit, refusing a dirty tree unless asked, and a tarball of exactly it.

Shipping a commit (not a working directory) is what makes "every worker runs the same code" checkable: each
worker records the commit it unpacked, and the launcher compares those against this one before training.
"""

from __future__ import annotations

import glob
import os
import subprocess
import tempfile


class GitError(RuntimeError):
  """A git query failed or the tree is not in the state the launcher needs."""


def _git(repo: str, *args: str, strip: bool = True) -> str:
  proc = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
  if proc.returncode != 0:
    raise GitError(f"git {' '.join(args)} in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
  return proc.stdout.strip() if strip else proc.stdout


def repo_root(path: str = ".") -> str:
  return _git(path, "rev-parse", "--show-toplevel")


def dirty_files(repo: str) -> list[str]:
  """Tracked files with uncommitted changes (untracked files are never shipped, so they do not count)."""
  out = _git(repo, "status", "--porcelain", "--untracked-files=no", strip=False)
  return [line[3:] for line in out.splitlines() if line.strip()]


def code_commit(repo: str, allow_dirty: bool = False) -> str:
  """The commit to ship: HEAD on a clean tree; with allow_dirty and local edits, a stash commit of the working
  tree's tracked files (`git stash create`, which touches neither the tree nor the stash list)."""
  head = _git(repo, "rev-parse", "HEAD")
  dirty = dirty_files(repo)
  if not dirty:
    return head
  if not allow_dirty:
    shown = ", ".join(dirty[:8]) + (f" (+{len(dirty) - 8} more)" if len(dirty) > 8 else "")
    raise GitError(f"refusing to launch from a dirty git tree ({len(dirty)} modified tracked files: {shown}); "
                   f"commit them, or pass --allow_dirty to ship the working tree as an unnamed commit")
  return _git(repo, "stash", "create") or head


def archive(repo: str, commit: str, out_path: str) -> str:
  """A .tar.gz of the tree at commit, with a COMMIT file added (what workers report back)."""
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  tar = out_path[:-3] if out_path.endswith(".gz") else out_path
  _git(repo, "archive", "--format=tar", "-o", tar, commit)
  with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "COMMIT"), "w") as f:
      f.write(commit + "\n")
    subprocess.run(["tar", "-rf", tar, "-C", tmp, "COMMIT"], check=True)
  if tar != out_path:
    subprocess.run(["gzip", "-f", tar], check=True)
  return out_path


def untracked(repo: str, path: str) -> list[str]:
  """The files at path (relative to the repository root; a glob or a directory allowed) that git does not
  track, i.e. that a shipped commit lacks; [path] itself when git tracks nothing there."""
  tracked = set(_git(repo, "ls-files", "-z", "--", path, strip=False).split("\0")) - {""}
  if not tracked:
    return [path]
  if os.path.isdir(os.path.join(repo, path)):
    return []
  return sorted(m for m in (os.path.relpath(p, repo) for p in glob.glob(os.path.join(repo, path))) if m not in tracked)
