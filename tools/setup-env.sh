#!/usr/bin/env bash
# Create or refresh .venv from requirements.lock; a no-op (well under a second) when the
# lock, pyproject.toml and the interpreter are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env-common.sh

venv=.venv
stamp=$venv/.ecgcohort-env
python=$(find_python)
key=$( { sha256sum requirements.lock pyproject.toml tools/setup-env.sh; "$python" -VV; echo "$python"; } | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi

start=$(date +%s)
uv=$(ensure_uv "$python")
say "environment $key: $($python -V) at $python"
rm -f "$stamp"
if [ ! -x "$venv/bin/python" ] || [ "$("$venv/bin/python" -c 'import sys; print(sys._base_executable)' 2>/dev/null)" != "$python" ]; then
  "$uv" venv --quiet --allow-existing --python "$python" "$venv"
fi
# sync installs exactly the lock (with its hashes) and removes anything else. Bytecode is
# compiled once here: where PYTHONDONTWRITEBYTECODE is set, every job would otherwise
# recompile each module it imports (2-4 s per Snakemake job).
"$uv" pip sync --quiet --compile-bytecode --python "$venv/bin/python" requirements.lock
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps --editable .
"$venv/bin/python" - <<'PY'
import mpi4py.MPI  # dolfinx's extension needs libmpi.so.12 from the mpich wheel, loaded first
import dolfinx, gmsh, snakemake, torch, zarr, ecgcohort  # noqa: F401
PY
echo "$key" > "$stamp"
say "ready in $(( $(date +%s) - start )) s: source $venv/bin/activate"
