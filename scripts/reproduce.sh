#!/usr/bin/env bash
# bash scripts/reproduce.sh NAME [flags]: the manifest experiments/NAME.py through the orchestrator, runs in $RUNS.
cd "$(dirname "$0")/.." && exec python -m fot_jax.launch.experiment --manifest="experiments/${1:?usage: bash scripts/reproduce.sh NAME (experiments/NAME.py)}.py" --runs="${RUNS:-runs/reproduce}" "${@:2}"
