#!/usr/bin/env bash
# Set up Plait in ./.venv on a fresh machine, offline-friendly and without pulling a
# second torch: torch is installed first, then everything else under a constraints file
# that pins the torch already there. Override the torch spec with PLAIT_TORCH, e.g.
#   PLAIT_TORCH="torch --index-url https://download.pytorch.org/whl/cu124" bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  python -m pip install --quiet ${PLAIT_TORCH:-torch==2.13.0}
fi
python -c "import torch; print(f'torch=={torch.__version__}')" > constraints.txt
python -m pip install --quiet -c constraints.txt -e ".[dev,ship,caption,vlm]"
python -c "import torch, plait; print(f'plait {plait.__version__} ready (torch {torch.__version__})')"
