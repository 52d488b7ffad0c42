#!/usr/bin/env bash
# Build the pool panel (this folder's TypeScript) into ../../workbench/labextension, the
# prebuilt lab extension that ships in the wheel (so `pip install` needs no Node.js).
#
#   extensions/labextension/build.sh           rebuild (npm ci, tsc, unit tests, webpack)
#   extensions/labextension/build.sh --check   rebuild, and fail if the committed build was
#                                              made from other sources (stale)
#
# Needs Node.js >= 18 and npm, and a Python with jupyterlab (PYTHON, default ../../.venv/bin/python).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-$here/../../.venv/bin/python}
case "$PY" in /*) ;; *) PY="$PWD/$PY" ;; esac   # relative to where it was called from
cd "$here"
OUT=../../workbench/labextension

sources_hash() {
    find package.json package-lock.json tsconfig.json src style schema -type f -print0 \
        | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64
}

committed=$(cat "$OUT/source-hash.txt" 2>/dev/null || echo none)
current=$(sources_hash)
core=$("$PY" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')

npm ci --no-audit --no-fund --loglevel=error
npx tsc
npx vitest run
rm -rf "$OUT"
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .
echo "$current" > "$OUT/source-hash.txt"

if [ "${1:-}" = "--check" ] && [ "$committed" != "$current" ]; then
    echo "workbench/labextension is stale: it was built from other sources than" >&2
    echo "extensions/labextension now holds. Run extensions/labextension/build.sh and commit." >&2
    exit 1
fi
echo "built $OUT from sources $current"
