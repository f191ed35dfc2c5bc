"""The documents point at things that exist, and only inside the repository: every Markdown link and every
repository path the docs name resolves, and nothing refers readers to files the repository does not hold."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted(glob.glob(os.path.join(ROOT, "*.md")) + glob.glob(os.path.join(ROOT, "docs", "*.md")) +
              glob.glob(os.path.join(ROOT, "experiments", "*.md")))
TOP_FOLDERS = ("docs", "experiments", "configs", "scripts", "tests", "fot_jax", "bench", "launch")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./*{},-]*[\w/*}])" % "|".join(TOP_FOLDERS))
OUTSIDE = re.compile(r"\.\./shared|FOT_SPEC|spec section", re.IGNORECASE)


def _rel(path):
  return os.path.relpath(path, ROOT)


def _expand(pattern):
  """`a{1,2}b` -> [`a1b`, `a2b`] (the shell's braces, one level)."""
  m = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
  if not m:
    return [pattern]
  return [p for part in m.group(1).split(",") for p in _expand(pattern[:m.start()] + part + pattern[m.end():])]


def _exists(path):
  return any(glob.glob(os.path.join(ROOT, p)) or glob.glob(os.path.join(ROOT, p) + "*") for p in _expand(path))


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_link_resolves(doc):
  text = open(doc).read()
  missing = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:|#", t)
             and not os.path.exists(os.path.join(os.path.dirname(doc), t.split("#")[0]))]
  assert not missing, f"{_rel(doc)} links to missing files: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_repository_path_named_exists(doc):
  text = open(doc).read()
  named = [p for p in PATH.findall(text) if "..." not in p and not re.search(r"\b[A-Z]{2,}\b", p)]  # no placeholders
  missing = sorted({p for p in named if not _exists(p.rstrip("/"))})
  assert not missing, f"{_rel(doc)} names paths that do not exist: {missing}"


def test_nothing_points_outside_the_repository():
  found = []
  for folder in ("docs", "fot_jax", "launch", "configs", "experiments", "scripts", "bench"):
    for path in glob.glob(os.path.join(ROOT, folder, "**", "*"), recursive=True):
      if path.endswith((".md", ".py", ".sh")) and os.path.isfile(path):
        found += [f"{_rel(path)}:{n}" for n, line in enumerate(open(path), 1) if OUTSIDE.search(line)]
  found += [f"README.md:{n}" for n, line in enumerate(open(os.path.join(ROOT, "README.md")), 1)
            if OUTSIDE.search(line)]
  assert not found, f"references to documents outside the repository: {found}"
