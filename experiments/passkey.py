"""Claim (b): a model trained at a short context retrieves far beyond it (the authors' passkey test).

Local pretraining, then FoT fine-tuning with 512 tokens of differentiable context; the passkey at 1k-200k
tokens with dense memory, top-32 memory, memory off, and the stage-1 model. Figure: {runs}/passkey.png
(docs/RESULTS.md, section (b); published copy docs/figures/passkey/).
  fot-launch experiment --manifest=experiments/passkey.py --runs=runs/passkey
"""

CONFIG = "configs/experiments/passkey_fot.py"
PASSKEY = "passkey --tokens=1k,8k,32k,128k,200k --seeds=0-9"

RUNS = [
    f"passkey_local={CONFIG}:pretrain_local",
    f"passkey_ft<passkey_local={CONFIG}:ft",
]
EVALS = [
    f"passkey_local:stage1={PASSKEY}",
    f"passkey_ft:off={PASSKEY} --no_memory",
    f"passkey_ft:topk={PASSKEY} --topk=32",
    f"passkey_ft:dense={PASSKEY} --compare=top-32={{runs}}/passkey_ft.topk.json "
    f"--compare=stage-1={{runs}}/passkey_local.stage1.json --compare=memory-off={{runs}}/passkey_ft.off.json "
    f"--figure={{runs}}/passkey.png",
]
