#!/usr/bin/env bash
# Installs everything the tests need into .venv and node_modules, then runs them.
# Usage: bash scripts/test.sh [pytest args...]
# TUNING_TEST_STRICT=1 turns "skipped: PostgreSQL/Node.js/Chromium not available" into failures (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard's tests drive a headless Chromium (Debian's package), installed when missing and possible.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
# `npm ci` rejects the lock on npm 11 (optional per-platform buf binaries); --no-save installs from
# the lock without rewriting it.
npm install --no-save --no-audit --no-fund --loglevel=error

echo "== buf lint"
npx --no-install buf lint protos
echo "== generated code is fresh"
.venv/bin/python -m tuning_common.codegen --check
echo "== import layering (docs/ARCHITECTURE.md, \"Layers\")"
.venv/bin/lint-imports --no-cache
echo "== ruff"
.venv/bin/ruff check --quiet .
echo "== pytest"
.venv/bin/python -m pytest "$@"
