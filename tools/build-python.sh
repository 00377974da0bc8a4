#!/usr/bin/env bash
# Build CPython 3.13 from Debian trixie's source package into the ecgcohort cache.
#
# Debian 12 ships Python 3.11 only and DOLFINx's wheel needs >= 3.12. Debian's archive serves
# trixie's python3.13 source; apt fetches it through a private sources list (the machine's own
# apt configuration is never touched) and checks it against the signed Sources index; we check
# the upstream tarball's SHA-256 against the .dsc once more before building.
#
# Usage: tools/build-python.sh PREFIX      (prints the interpreter path on its last line)
set -euo pipefail

prefix=${1:?usage: build-python.sh PREFIX}
suite=${ECGCOHORT_PYTHON_SUITE:-trixie}
package=python3.13
jobs=$(nproc)

say() { printf '[build-python] %s\n' "$*" >&2; }

if [ -x "$prefix/bin/python3.13" ] && "$prefix/bin/python3.13" -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib' 2>/dev/null; then
  echo "$prefix/bin/python3.13"
  exit 0
fi

# The mirror the machine already uses for Debian, read from its own sources.
mirror_of_debian() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i !~ /security/) {print $i; exit}}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { say "no Debian mirror found in /etc/apt/sources.list(.d); set ECGCOHORT_DEBIAN_MIRROR"; exit 1; }
  echo "$uri"
}
mirror=${ECGCOHORT_DEBIAN_MIRROR:-$(mirror_of_debian)}

build_deps=(build-essential libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev libsqlite3-dev
            libreadline-dev libncurses-dev uuid-dev libgdbm-dev xz-utils)
missing=()
for dep in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "install ok installed" || missing+=("$dep")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing build dependencies: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    say "not root: install them yourself (apt-get install ${missing[*]}) or set ECGCOHORT_PYTHON to a Python >= 3.12"
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ecgcohort-python.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
cat > "$work/apt/sources.list" <<SOURCES
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main
SOURCES
apt_private=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
             -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
             -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
say "fetching the $package source package ($suite) through a private sources list"
apt-get "${apt_private[@]}" update -qq
(cd "$work/src" && apt-get "${apt_private[@]}" source --download-only -qq "$package")

dsc=$(ls "$work"/src/"${package}"_*.dsc)
orig=$(ls "$work"/src/"${package}"_*.orig.tar.xz)
expected=$(awk -v name="$(basename "$orig")" '/^Checksums-Sha256:/ {on = 1; next} /^[^ ]/ {on = 0} on && $3 == name {print $1}' "$dsc")
actual=$(sha256sum "$orig" | cut -d' ' -f1)
if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
  say "checksum mismatch for $(basename "$orig"): .dsc says '$expected', file is '$actual'"
  exit 1
fi
say "verified $(basename "$orig") sha256 $actual"

tar -xf "$orig" -C "$work/src"
srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -1)
say "building $(basename "$srcdir") with $jobs jobs into $prefix (about 3-4 minutes on 2 cores)"
staging="$prefix.partial"
rm -rf "$staging"
(cd "$srcdir" && ./configure -q --prefix="$prefix" --with-ensurepip=install >"$work/configure.log" 2>&1 \
   && make -s -j"$jobs" >"$work/make.log" 2>&1 \
   && make -s install DESTDIR="$staging" >"$work/install.log" 2>&1) || {
  say "build failed; last lines of the logs:"; tail -n 30 "$work"/*.log >&2; exit 1; }
# Installed under a staging root and moved into place only when complete, so an interrupted
# build never leaves an interpreter that looks usable.
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv "$staging$prefix" "$prefix"
rm -rf "$staging"
"$prefix/bin/python3.13" -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib' \
  || { say "the built interpreter lacks a standard module"; exit 1; }
echo "$prefix/bin/python3.13"
