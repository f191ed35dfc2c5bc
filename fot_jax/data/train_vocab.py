"""Trains the deterministic SentencePiece model of an offline corpus: `python -m fot_jax.data.train_vocab`.

Idempotent: an existing model is kept unless --force. Prints the model path.
"""

from __future__ import annotations

import argparse
import sys

from fot_jax import cli
from fot_jax.data import vocab


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m fot_jax.data.train_vocab", description=__doc__.splitlines()[0])
  p.add_argument("--corpus", default="stdlib", help="offline corpus: stdlib or shakespeare")
  p.add_argument("--vocab_size", type=int, default=2000)
  p.add_argument("--data_dir", default=None, help="fot_jax data dir (default $FOT_JAX_DATA_DIR or ~/.cache/fot_jax)")
  p.add_argument("--max_sentences", type=int, default=60_000)
  p.add_argument("--force", action="store_true", help="retrain even if the model exists")
  cli.add_debug_flag(p)
  args = p.parse_args(argv)
  return cli.run(lambda: print(vocab.ensure_trained(args.corpus, args.vocab_size, args.data_dir, args.max_sentences,
                                                    force=args.force)),
                 prog="fot_jax.data.train_vocab", debug=args.debug, also=cli.INPUT_ERRORS)


if __name__ == "__main__":
  sys.exit(main())
