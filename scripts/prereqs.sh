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

# System packages the Python packages call: Tesseract (OCR of scanned contracts) and poppler (PDF pages as
# images). Installed when this runs as root on Debian/Ubuntu (as CI does); otherwise say what is missing and
# what still works without it. Skipped with MSP_SKIP_SYSTEM_PACKAGES=1.
missing=()
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
if [ ${#missing[@]} -gt 0 ] && [ "${MSP_SKIP_SYSTEM_PACKAGES:-0}" != "1" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (Debian packages) ..."
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1; then
      echo "warning: could not install ${missing[*]}; scanned contracts will wait in the review queue (no OCR)." >&2
    fi
  else
    echo "note: ${missing[*]} not installed (Debian/Ubuntu: sudo apt-get install ${missing[*]})." >&2
    echo "      Everything runs without it, except OCR: scanned contracts wait in the review queue." >&2
  fi
fi

# Chromium (headless) opens the built dashboard in its test and takes the docs' screenshots. The dashboard
# itself builds and opens in any browser without it. Installed as root on Debian/Ubuntu, else a note.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && [ "${MSP_SKIP_SYSTEM_PACKAGES:-0}" != "1" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (Debian package) ..."
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1; then
      echo "warning: could not install chromium; the dashboard test (headless browser) will be skipped." >&2
    fi
  else
    echo "note: chromium not installed (Debian: sudo apt-get install chromium; Ubuntu: chromium-browser)." >&2
    echo "      The dashboard builds and opens without it; only its headless-browser test is skipped." >&2
  fi
fi
