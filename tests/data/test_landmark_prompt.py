"""synthetic.landmark_prompt is the authors' passkey generator byte for byte (LongLLaMA
examples/utils/landmark_prompt.py, a seeded Landmark Attention llama/run_test.py).

Three kinds of checks: literal goldens (key, length, sha256; for small n_garbage the whole text, written out by
hand from the definition); an independent re-derivation from np.random.RandomState draws and the string rules
over a range of (n_garbage, seed); numpy's global generator is left as it was found, and bad n_garbage values
raise a ValueError that says why.
"""

import hashlib

import numpy as np
import pytest

from fot_jax.data import synthetic
from fot_jax.eval import passkey

INSTRUCTION = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
               "I will quiz you about the important information there.")  # 148 characters
BLOCK = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."  # 89
QUESTION = "What is the pass key? The pass key is"  # 37
FILLER_CHARS = 5000 * 89 + 4999  # 5000 blocks joined by single spaces


def reference(n_garbage: int, seed: int) -> tuple[str, str]:
  """The definition, written independently: a RandomState draws prefix = randint(0, n) then key =
  randint(1, 50000) (what np.random.seed + np.random.randint do on the global RandomState); filler
  character i is (BLOCK + " ")[i % 90], cut from the start for both the prefix and the suffix."""
  rs = np.random.RandomState(seed)
  prefix = rs.randint(0, n_garbage)
  key = rs.randint(1, 50000)

  def cut(m):
    return ((BLOCK + " ") * (m // 90 + 1))[:m]

  info = "The pass key is %d. Remember it. %d is the pass key." % (key, key)
  return INSTRUCTION + "\n" + cut(prefix) + "\n" + info + "\n" + cut(n_garbage - prefix) + "\n" + QUESTION, str(key)


def sha(text: str) -> str:
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_authors_example_golden():
  """examples/passkey.py runs passkey_retrieval_test(30000, 555)."""
  text, key = synthetic.landmark_prompt(30000, 555)
  assert key == "15338" and len(text) == 30247
  assert sha(text) == "09dd22ab998f48e9a8f719bcca1c6ab37e1003da26b9038eb567fcf2013d86eb"
  # By hand: RandomState(555).randint(0, 30000) = 4782 = 53 * 90 + 12, so the prefix is 53 blocks with their
  # spaces and then "The grass is" (12 characters); the suffix 25218 = 280 * 90 + 18 ends in "The grass is green".
  lines = text.split("\n")
  assert len(lines) == 5 and lines[0] == INSTRUCTION and lines[4] == QUESTION
  assert len(lines[1]) == 4782 and lines[1].endswith("There and back again. The grass is")
  assert lines[2] == "The pass key is 15338. Remember it. 15338 is the pass key."
  assert len(lines[3]) == 25218 and lines[3].endswith("There and back again. The grass is green")
  at = text.index("\nThe pass key")  # 12 + 1 + 58 + 1 + 20 characters around it:
  assert text[at - 12:at + 80] == (
      "The grass is\nThe pass key is 15338. Remember it. 15338 is the pass key.\nThe grass is green. ")
  # length = 148 + 37 + 4 newlines + n_garbage + (48 + 2 * key digits)
  assert len(text) == 148 + 37 + 4 + 30000 + 48 + 2 * 5


@pytest.mark.parametrize("n_garbage,seed,key,length,digest,prefix", [
    (1, 0, "2733", 246, "3d028c5ae4beed1469d87f21955b7ee4d4c27857d446ad97a8525a834ef8f3f8", 0),
    (10, 0, "45892", 257, "2008e9741afa595e70acd2645eb98447e94bcf3980c23a607b07d6d632ef19e3", 5),
    (20, 1, "33004", 267, "e17a147c6939dee99e8cb38f9814587500b4aa2833826c7581ddbcbd21666683", 5),
    (60000, 555, "15338", 60247, "0218476a748237aa74bb7264bfd184c4ea04f195d85f670fdd1d2837dc49e194", 4782),
    (FILLER_CHARS, 0, "42614", 450246, "4c2e3829941b9b29ce0455dbf5fd43a02651c74974a5972d7c867923e267f59c", 305711),
])
def test_literal_goldens(n_garbage, seed, key, length, digest, prefix):
  text, k = synthetic.landmark_prompt(n_garbage, seed)
  assert (k, len(text), sha(text), len(text.split("\n")[1])) == (key, length, digest, prefix)


def test_small_prompts_written_out():
  """(10, 0): randint(0, 10) = 5, so 5 characters of filler on each side ("The g"); key 45892.
  (20, 1): prefix 5 ("The g"), suffix 15 ("The grass is gr"); key 33004. (1, 0): randint(0, 1) is always 0, so
  an empty prefix line and a suffix "T"; key 2733 (4 digits: 2 characters shorter than a 5-digit key)."""
  assert synthetic.landmark_prompt(10, 0) == (
      INSTRUCTION + "\nThe g\nThe pass key is 45892. Remember it. 45892 is the pass key.\nThe g\n" + QUESTION, "45892")
  assert synthetic.landmark_prompt(20, 1) == (
      INSTRUCTION + "\nThe g\nThe pass key is 33004. Remember it. 33004 is the pass key.\nThe grass is gr\n"
      + QUESTION, "33004")
  assert synthetic.landmark_prompt(1, 0) == (
      INSTRUCTION + "\n\nThe pass key is 2733. Remember it. 2733 is the pass key.\nT\n" + QUESTION, "2733")


@pytest.mark.parametrize("n_garbage", [1, 2, 3, 88, 89, 90, 91, 179, 180, 1000, 4097, 30000, 123457, FILLER_CHARS])
@pytest.mark.parametrize("seed", [0, 1, 2, 7, 555, 65535, 2**31, 2**32 - 1])
def test_matches_the_definition(n_garbage, seed):
  assert synthetic.landmark_prompt(n_garbage, seed) == reference(n_garbage, seed)


def test_matches_the_definition_on_random_pairs():
  rng = np.random.default_rng(0)  # not the global generator: that one is what landmark_prompt must not disturb
  for n_garbage, seed in zip(rng.integers(1, FILLER_CHARS + 1, 40), rng.integers(0, 2**32, 40)):
    text, key = synthetic.landmark_prompt(int(n_garbage), int(seed))
    assert (text, key) == reference(int(n_garbage), int(seed))
    assert len(text) == 148 + 37 + 4 + n_garbage + 48 + 2 * len(key)


def test_filler_constant_and_reexport():
  assert passkey.landmark_prompt is synthetic.landmark_prompt
  assert passkey.landmark_filler_chars() == FILLER_CHARS == 449999
  assert " ".join(synthetic.PASSKEY_FILLER) == BLOCK
  assert (synthetic.PASSKEY_INSTRUCTION, synthetic.PASSKEY_QUESTION) == (INSTRUCTION, QUESTION)


def _same_state(a, b) -> bool:
  return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


def test_global_rng_state_is_restored():
  np.random.seed(1234)
  expected = np.random.random(5)
  np.random.seed(1234)
  before = np.random.get_state()
  synthetic.landmark_prompt(30000, 555)
  synthetic.landmark_prompt(7, 3)
  assert _same_state(np.random.get_state(), before)
  np.testing.assert_array_equal(np.random.random(5), expected)  # the caller's seeded stream goes on unchanged
  # mid-stream, with a cached Gaussian (the state tuple's last two fields)
  np.random.seed(99)
  np.random.standard_normal()
  before = np.random.get_state()
  synthetic.landmark_prompt(100, 1)
  assert _same_state(np.random.get_state(), before)
  # the prompt does not depend on the caller's state
  np.random.seed(5)
  a = synthetic.landmark_prompt(500, 42)
  np.random.seed(6)
  assert synthetic.landmark_prompt(500, 42) == a


@pytest.mark.parametrize("n_garbage,match", [(0, "n_garbage must be >= 1"), (-3, "n_garbage must be >= 1"),
                                             (FILLER_CHARS + 1, "exceeds the filler's 449999 characters"),
                                             (10**6, "exceeds the filler's 449999 characters")])
def test_bad_n_garbage_is_a_clear_value_error(n_garbage, match):
  np.random.seed(3)
  before = np.random.get_state()
  with pytest.raises(ValueError, match=match):
    synthetic.landmark_prompt(n_garbage, 0)
  assert _same_state(np.random.get_state(), before)
