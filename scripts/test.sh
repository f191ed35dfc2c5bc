#!/usr/bin/env bash
# The default test run (the README's test command): everything but @pytest.mark.slow.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pytest -q -m "not slow" tests "$@"
