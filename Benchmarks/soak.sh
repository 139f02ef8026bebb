#!/usr/bin/env bash
# The full soak: the Hummingbird service of Examples/Soak for 10 minutes of wrk load bare and
# 10 minutes with every profile on (alternating segments, one run), then the report, raw tables and
# a plot in docs/soak/ (or $SOAK_OUTPUT). Override SOAK_SECONDS, SOAK_SEGMENT, SOAK_CONNECTIONS.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq wrk
fi
scratch=.build-release
for product in pprof-bench pprof-soak-server pprof-soak-plain; do
    swift build -c release --product "$product" --scratch-path "$scratch"
done
export SOAK_OUTPUT="${SOAK_OUTPUT:-docs/soak}"
"$scratch/release/pprof-bench" soak | tee "$SOAK_OUTPUT.log.tmp"
mkdir -p "$SOAK_OUTPUT"
mv "$SOAK_OUTPUT.log.tmp" "$SOAK_OUTPUT/output.txt"
