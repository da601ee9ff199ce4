#!/usr/bin/env bash
# The `cuda` feature's checks on a machine with a GPU, from binaries built on another machine:
#   cargo test -p sabot-kernels --features cuda --release --no-run
#   cargo bench -p sabot-kernels --features cuda --bench device --no-run
# then copy the test binaries and the bench binary into BIN (default .devbin) as unit-tests,
# device-tests, property-tests and device-bench. Writes logs under OUT (default the current
# folder). The machine needs the CUDA driver and NVRTC; this script finds NVRTC for the loader.
set -uo pipefail
BIN=${BIN:-.devbin}
OUT=${OUT:-.}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
nvrtc=$(find /usr/local /usr/lib /opt -name 'libnvrtc.so*' 2>/dev/null | sort | head -1)
echo "NVRTC: ${nvrtc:-not found}"
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc"):${LD_LIBRARY_PATH:-}"
status=0
for tests in unit-tests device-tests property-tests; do
    "$BIN/$tests" --nocapture --test-threads=4 >"$OUT/$tests.log" 2>&1 || status=1
    grep -E "test result|skipped|panicked|GPU:" "$OUT/$tests.log"
done
"$BIN/device-bench" --bench >"$OUT/device-bench.log" 2>&1 || status=1
grep -E "^GPU|skipped|time:|^[a-z_0-9]+/[a-z_0-9]+/" "$OUT/device-bench.log"
exit $status
