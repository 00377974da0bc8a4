# Shared by tools/setup-env.sh and tools/lock.sh (sourced, not run).
# Everything built or downloaded lives in the cache, outside any checkout, and is reused:
#   $ECGCOHORT_CACHE/python/cpython-3.13   interpreter built from Debian's source (if needed)
#   $ECGCOHORT_CACHE/tools/uv-<version>    the uv installer
#   $ECGCOHORT_CACHE/uv                    uv's content-addressed store of unpacked wheels;
#                                          a venv is hard-linked from it in about a second
ECGCOHORT_CACHE=${ECGCOHORT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecgcohort}
UV_VERSION=0.13.8
export UV_CACHE_DIR=${UV_CACHE_DIR:-$ECGCOHORT_CACHE/uv}
export UV_NO_PROGRESS=1

say() { printf '[ecgcohort env] %s\n' "$*" >&2; }

python_is_usable() {
  "$1" -c 'import sys, ssl, sqlite3, ctypes, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null
}

# A Python >= 3.12: $ECGCOHORT_PYTHON, else python3.14/3.13/3.12 on PATH, else the one built
# into the cache from Debian trixie's python3.13 source (built now if missing).
find_python() {
  if [ -n "${ECGCOHORT_PYTHON:-}" ]; then
    python_is_usable "$ECGCOHORT_PYTHON" || { say "ECGCOHORT_PYTHON=$ECGCOHORT_PYTHON is not a working Python >= 3.12"; return 1; }
    command -v "$ECGCOHORT_PYTHON"; return 0
  fi
  local candidate
  for candidate in python3.14 python3.13 python3.12; do
    if command -v "$candidate" >/dev/null 2>&1 && python_is_usable "$candidate"; then
      "$candidate" -c 'import sys; print(sys.executable)'; return 0
    fi
  done
  local built="$ECGCOHORT_CACHE/python/cpython-3.13/bin/python3.13"
  if python_is_usable "$built"; then echo "$built"; return 0; fi
  say "no Python >= 3.12 on PATH: building CPython 3.13 from Debian's source into $ECGCOHORT_CACHE/python (once)"
  "$(dirname "${BASH_SOURCE[0]}")/build-python.sh" "$ECGCOHORT_CACHE/python/cpython-3.13" | tail -n 1
}

ensure_uv() {
  local python=$1 target="$ECGCOHORT_CACHE/tools/uv-$UV_VERSION"
  if [ ! -x "$target/bin/uv" ]; then
    say "installing uv $UV_VERSION into $target"
    rm -rf "$target.partial"
    "$python" -m pip install --quiet --disable-pip-version-check --target "$target.partial" "uv==$UV_VERSION" >&2
    rm -rf "$target" && mv "$target.partial" "$target"
  fi
  echo "$target/bin/uv"
}
