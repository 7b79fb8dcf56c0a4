#!/usr/bin/env bash
# Set up (or refresh) grokterm's virtual environment in .venv. Idempotent and fast
# when already done. An existing torch is kept: the venv sees system packages, so a
# GPU box's CUDA build is used; where no torch is importable, the CPU build is
# installed (a plain `torch` requirement would pull several GB of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
TORCH_VERSION=${GROKTERM_TORCH:-2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}"
fi
if ! .venv/bin/python -c "import grokterm, pytest, ruff" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.grokterm-installed ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch .venv/.grokterm-installed
fi
