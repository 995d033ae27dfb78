#!/usr/bin/env bash
# Checks what `make demo` and `make test` need that pip cannot install: Python 3.11+ and Java 17+.
set -euo pipefail
py="${1:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "error: $py not found. Install Python 3.11 or newer (or run: make PYTHON=/path/to/python3.11 ...)." >&2
  exit 1
fi
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: $("$py" --version 2>&1) is too old: Python 3.11 or newer is required (make PYTHON=...)." >&2
  exit 1
fi
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "error: $py lacks the venv/ensurepip modules (Debian/Ubuntu: apt-get install python3-venv)." >&2
  exit 1
fi
if ! command -v java >/dev/null 2>&1; then
  echo "error: java not found. Spark needs Java 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)." >&2
  exit 1
fi
major=$(java -version 2>&1 | awk -F'"' '/version/ {print $2}' | awk -F. '{ if ($1 == "1") print $2; else print $1 }')
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  echo "error: Java ${major:-?} found; Spark 4 needs Java 17 or newer." >&2
  exit 1
fi
