#!/usr/bin/env bash
# Re-pin requirements.lock from pyproject.toml and its docs extra (run after changing
# dependencies); the gpu extra stays out of the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env-common.sh
python=$(find_python)
uv=$(ensure_uv "$python")
"$uv" pip compile pyproject.toml --extra docs --override tools/overrides.txt --python "$python" \
  --universal --generate-hashes --no-header --quiet -o requirements.lock
echo "requirements.lock: $(grep -c '==' requirements.lock) pinned packages"
