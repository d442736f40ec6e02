#!/usr/bin/env bash
# Set up everything token-ledger needs on a fresh Debian/Ubuntu machine, idempotently:
# a Python virtual environment with the package and its dev tools, the npm tools (anvil,
# solc, OpenZeppelin) from package-lock.json, and the audit tools (ledger, hledger).
# Usage: bash scripts/setup.sh            (run from anywhere; works in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
say() { printf '[setup] %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.token-ledger-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing token-ledger and its dev tools into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi

if [ -f package-lock.json ]; then
  if command -v npm >/dev/null 2>&1; then
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
      say "installing npm tools (anvil, solc, OpenZeppelin) from package-lock.json"
      npm ci --no-audit --no-fund --loglevel=error
      touch node_modules
    fi
  else
    say "npm not found: the chain mirror (anvil) will be unavailable; install Node.js 20+"
  fi
fi

missing=()
command -v ledger >/dev/null 2>&1 || missing+=(ledger)
command -v hledger >/dev/null 2>&1 || missing+=(hledger)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing ${missing[*]} (audit tools); install them with: sudo apt-get install ${missing[*]}"
  fi
fi
say "ready"
