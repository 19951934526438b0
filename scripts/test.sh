#!/usr/bin/env bash
# Install, then run the test suite: the default selection (everything but `slow`), then a small
# real slice of the slow end-to-end tests: the offline teacher on a handful of passages, and the
# quickstart notebook executed with nbclient.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
ruff check . && ruff format --check .   # lint and format (pyproject.toml [tool.ruff])
python -m pytest -q "$@"
python -m pytest -q -m slow -k "small or notebook" "$@"
