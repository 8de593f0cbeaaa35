#!/usr/bin/env bash
# Builds fmnist53 with the default sizes, checks the 53 files and the
# manifest, and requires the build to take under a minute.
set -euo pipefail
: "${SOTU_BIN:?}"
tmp=$(mktemp -d /tmp/sotu-cli-fmnist53-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s%N)
"$SOTU_BIN" data fmnist --preset fmnist53 --out "$tmp/f53"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "fmnist53 build: ${ms} ms"
[ "$(ls "$tmp"/f53/t*.h5 | wc -l)" = 53 ] || { echo "FAIL: expected 53 task files" >&2; exit 1; }
"$SOTU_BIN" inspect "$tmp/f53/manifest.yaml" | grep -Eq "total +53000 +26500$" || { echo "FAIL: manifest totals" >&2; exit 1; }
"$SOTU_BIN" inspect "$tmp/f53/t52.h5" >/dev/null
[ "$ms" -lt 60000 ] || { echo "FAIL: build took ${ms} ms (limit 60 s)" >&2; exit 1; }
