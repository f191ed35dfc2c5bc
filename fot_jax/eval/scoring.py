"""Scoring through a runner: log-probabilities and greedy predictions window by window, memory-only feeding,
and teacher-forced answer matching. Only one window's logits exist at a time, so long inputs stay cheap."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Runner(Protocol):
  """What an evaluation needs from a model with memory; MemoryInference satisfies it.

  The evaluators drive windows themselves (`stream_scores`) so that a 256k-token input never materialises
  [N, vocab] logits: windows(N) gives the spans of
  docs/BEHAVIOUR.md section 3, flush() evicts the local cache into memory, step()
  runs one span after the cache.
  """

  def windows(self, length: int) -> list[tuple[int, int]]: ...

  def flush(self) -> None: ...

  def step(self, tokens, valid=None) -> Any: ...  # [B, T] -> logits [B, T, V]

  def reset(self) -> None: ...  # empty cache and memory (single-doc)

  @property
  def memory_size(self) -> int: ...


def _score_span(logits, targets):
  """logits [B, T, V], targets [B, T] -> (log p(target) [B, T], argmax [B, T])."""
  import jax
  import jax.numpy as jnp
  logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp, jnp.asarray(targets, jnp.int32)[..., None], axis=-1)[..., 0]
  return picked, jnp.argmax(logp, axis=-1).astype(jnp.int32)


_score_span_jit = None


def stream_scores(runner: Runner, tokens) -> tuple[np.ndarray, np.ndarray]:
  """Runs tokens [B, N] through the runner exactly as MemoryInference.encode does (the windows of
  docs/BEHAVIOUR.md section 3, memory kept from earlier calls) and returns (logprobs, predictions), both [B, N-1]:
  logprobs[:, t] = log p(tokens[:, t+1] | ..t) and predictions[:, t] = the greedy guess for token t+1.
  Only one window's logits exist at a time.
  """
  global _score_span_jit
  if _score_span_jit is None:
    import jax
    _score_span_jit = jax.jit(_score_span)
  tokens = np.asarray(tokens, np.int32)
  b, n = tokens.shape
  if n < 2:
    raise ValueError(f"tokens: need at least 2 tokens to score, found {n}")
  targets = np.concatenate([tokens[:, 1:], np.zeros((b, 1), np.int32)], axis=1)  # last position: no target
  logprobs, preds = [], []
  for start, stop in runner.windows(n):
    runner.flush()
    logits = runner.step(tokens[:, start:stop])
    lp, pr = _score_span_jit(logits, targets[:, start:stop])
    logprobs.append(np.asarray(lp))
    preds.append(np.asarray(pr))
  return np.concatenate(logprobs, 1)[:, :-1], np.concatenate(preds, 1)[:, :-1]


def end_scores(runner: Runner, tokens, first_needed: int) -> tuple[np.ndarray, np.ndarray]:
  """stream_scores when only predictions from position first_needed on are read (e.g. an answer at the end).

  When those positions all lie in the final window and the runner can feed (MemoryInference.feed), the front
  only goes into memory (no logits, no read of the top memory layer): the same numbers at a fraction of the cost
  of a long prompt. Positions before the final window are then NaN (logprobs) and -1 (predictions).
  """
  tokens = np.asarray(tokens, np.int32)
  b, n = tokens.shape
  start = runner.windows(n)[-1][0]
  if not hasattr(runner, "feed") or first_needed < start or start == 0:
    return stream_scores(runner, tokens)
  runner.feed(tokens[:, :start])
  logprobs, preds = stream_scores(runner, tokens[:, start:])
  pad = lambda a, value: np.concatenate([np.full((b, start), value, a.dtype), a], axis=1)  # noqa: E731
  return pad(logprobs, np.nan), pad(preds, -1)


def stream_feed(runner: Runner, tokens) -> None:
  """Runs tokens [B, N] into the runner's memory like stream_scores, without scoring (distractor documents)."""
  tokens = np.asarray(tokens, np.int32)
  for start, stop in runner.windows(tokens.shape[1]):
    runner.flush()
    runner.step(tokens[:, start:stop])


def answer_match(predictions, tokens, answer_mask) -> tuple[np.ndarray, np.ndarray]:
  """Teacher-forced scoring of answers: (exact [B] bool: every answer token predicted, token_hits [B, N] bool).

  predictions [B, N-1] from stream_scores; answer_mask [B, N] marks the answer tokens (never token 0).
  """
  tokens = np.asarray(tokens)
  answer_mask = np.asarray(answer_mask, bool)
  if answer_mask[:, 0].any():
    raise ValueError("answer_mask: the first token cannot be scored (nothing predicts it)")
  hits = np.zeros(tokens.shape, bool)
  hits[:, 1:] = np.asarray(predictions) == tokens[:, 1:]
  exact = (hits | ~answer_mask).all(axis=1)
  return exact, hits & answer_mask


def batched_answer_hits(runner_factory, tokens, answer_masks, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """answer_match over rows of tokens [N, L] in batches of batch_size, memory reset for every batch (single-doc):
  (exact [N] bool, token_hits [N, L] bool). The last batch is padded with copies of its last row, unscored."""
  tokens, answer_masks = np.asarray(tokens), np.asarray(answer_masks, bool)
  runner = runner_factory(min(batch_size, len(tokens)))
  exact, hits = [], []
  for start in range(0, len(tokens), batch_size):
    t, m = tokens[start:start + batch_size], answer_masks[start:start + batch_size]
    n = len(t)
    if n < runner.batch:
      t = np.concatenate([t, np.repeat(t[-1:], runner.batch - n, 0)])
      m = np.concatenate([m, np.repeat(m[-1:], runner.batch - n, 0)])
    runner.reset()
    _, preds = stream_scores(runner, t)
    ex, h = answer_match(preds, t, m)
    exact.append(ex[:n])
    hits.append(h[:n])
  return np.concatenate(exact), np.concatenate(hits)
