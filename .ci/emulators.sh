#!/usr/bin/env bash
# Pre-installs the Azurite blob emulator into the npm cache folder used by the emulator tests
# (tests/Slate.Properties/Emulators.fs installs it on demand too, but a fresh install takes about a
# minute, which is better spent before the test run). moto_server (S3) is expected on PATH.
# Keep AZURITE_VERSION in step with Emulators.azuriteVersion.
set -uo pipefail
AZURITE_VERSION=3.37.0
cache="${SLATE_NPM_CACHE:-$HOME/.cache/slate-npm}/azurite"
if [ -x "$cache/node_modules/.bin/azurite-blob" ]; then
  exit 0
fi
mkdir -p "$cache"
if ! npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"; then
  echo "emulators.sh: npm install azurite failed (the Azure store tests will report it)" >&2
fi
command -v moto_server >/dev/null || echo "emulators.sh: moto_server is not on PATH (the S3 store tests will report it)" >&2
exit 0
