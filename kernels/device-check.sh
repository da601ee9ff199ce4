#!/usr/bin/env bash
# The `cuda` feature's checks on a machine with a GPU, from x86-64 binaries built on another
# machine and copied into BIN (default .devbin):
#   cargo test -p sabot-kernels --features cuda --release --no-run   -> unit-tests, device-tests,
#                                                                       property-tests
#   cargo bench -p sabot-kernels --features cuda --bench device --no-run   -> device-bench
#   cargo test -p sabot-tests --release --no-run                       -> e2e-tests (optional)
#   cargo build -p sabot --features cuda --release                     -> sabot (optional)
# Runs the kernels' tests, the device benchmark (BENCH_FILTER picks its cases, default all),
# then, where those binaries are there, the GPU join test and TPC-H at SF (default 1) against
# DataFusion with the GPU off and on (SABOT_GPU_MIN_PROBE_ROWS, if set, passes through), every
# answer checked against ANSWERS (default
# .devdata/answers-sf1) at SF 1. Writes logs under OUT (default the current folder). The machine
# needs the CUDA driver and NVRTC; this script finds NVRTC for the loader.
set -uo pipefail
BIN=${BIN:-.devbin}
OUT=${OUT:-.}
SF=${SF:-1}
ANSWERS=${ANSWERS:-.devdata/answers-sf1}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
nvrtc=$(find /usr/local /usr/lib /opt -name 'libnvrtc.so*' 2>/dev/null | sort | head -1)
echo "NVRTC: ${nvrtc:-not found}"
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc"):${LD_LIBRARY_PATH:-}"
status=0
for tests in unit-tests device-tests property-tests; do
    "$BIN/$tests" --nocapture --test-threads=4 >"$OUT/$tests.log" 2>&1 || status=1
    grep -E "test result|skipped|panicked|GPU:" "$OUT/$tests.log"
done
"$BIN/device-bench" --bench ${BENCH_FILTER:-} >"$OUT/device-bench.log" 2>&1 || status=1
grep -E "^GPU|skipped|time:|^[a-z_0-9]+/[a-z_0-9]+/" "$OUT/device-bench.log"
if [ -x "$BIN/e2e-tests" ]; then
    "$BIN/e2e-tests" gpu_joins --nocapture >"$OUT/e2e-gpu.log" 2>&1 || status=1
    grep -E "test result|skipped|panicked|GPU:" "$OUT/e2e-gpu.log"
fi
if [ -x "$BIN/sabot" ]; then
    answers=()
    [ "$SF" = 1 ] && [ -d "$ANSWERS" ] && answers=(--answers "$ANSWERS")
    for gpu in off on; do
        SABOT_GPU=$gpu "$BIN/sabot" --data-dir /tmp/sabot-data bench tpch --sf "$SF" \
            --engine sabot,datafusion --iterations "${ITERATIONS:-3}" "${answers[@]}" \
            >"$OUT/tpch-sf$SF-gpu-$gpu.log" 2>&1 || status=1
        grep -E "^(Q[0-9]|total|TPC-H|GPU:)|differ|rror" "$OUT/tpch-sf$SF-gpu-$gpu.log"
    done
fi
exit $status
