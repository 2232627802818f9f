#!/usr/bin/env bash
# Issue 22's device run on a lent NVIDIA machine (docs/performance.md, "CUDA"), from the repository root
# there; $OUT is what comes back. Made here beforehand (git-ignored): .whl/site.tar.xz (PyAV, Ray, kornia:
# benchmarks/gpu_wheels.py, 39 MiB) and .gpu_carry (speed_gpu_table.py --extract: clips 3 MiB, BasicVSR's
# weights 25 MiB). With the checkout's 9 MiB they exceed one call's 64 MiB, so two calls, the second within
# the machine's 30 s warm window (/tmp/site and the first call's files stay there):
#
#   first   carry .whl/site.tar.xz and .gpu_carry's clips and small weights: unpack, environment, the CUDA
#           tests that need no BasicVSR weights, the table's other models -> gpu_table_images.json
#   second  carry .gpu_carry/weights/basicvsr: BasicVSR's rows, its tests, the pipeline run
#           -> gpu_table_basicvsr.json, gpu_table_pipeline.json
#
# Then, here: speed_gpu_table.py --merge <the three json> --out benchmarks/results/gpu_table.json.
# TEST_S, TABLE_S and PIPELINE_S bound each stage (seconds); every log lands in $OUT as it is written.
# A dry run of this script here: DEVICE=cpu SKIP_UNPACK=1 TABLE_ARGS="<tiny sizes>" PATH=.venv/bin:$PATH.
set -u
step=${1:-first}
OUT=${OUT:-out/gpu}
DEVICE=${DEVICE:-cuda}
TABLE_ARGS=${TABLE_ARGS:-}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=/tmp/site:$PWD VSR_CACHE_DIR=/tmp/vsr-cache
export VSR_CUDA_TESTS_DEVICE=$DEVICE
tests=(python3 -m pytest -v -rA --tb=short --timeout 100 -p no:cacheprovider tests/test_cuda.py)
table=(python3 benchmarks/speed_gpu_table.py --device "$DEVICE" --carry .gpu_carry --compile)

stage() {  # name, seconds, command...: run with a time limit, keep its log, show its summary lines
    local name=$1 limit=$2
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    grep -E "PASSED|FAILED|SKIPPED|ERROR|Error|passed|failed|^\{|wrote" "$OUT/$name.log" | cut -c1-400 \
        | tail -40
    echo "== $name: exit $rc"
}

if [ "$step" = first ]; then
    if [ -z "${SKIP_UNPACK:-}" ]; then
        if ! [ -f .whl/site.tar.xz ]; then
            echo "gpu_run: error: no .whl/site.tar.xz here (benchmarks/gpu_wheels.py, then carry it)"
            exit 3
        fi
        # Python's own lzma: no reliance on the image having xz (one stream, ~5 s)
        python3 -c "import tarfile
tarfile.open('.whl/site.tar.xz').extractall('/tmp/site', filter='fully_trusted')" || exit 3
    fi
    {
        date -u
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
        python3 -c "import sys, torch, av, ray, kornia, cv2, numpy; print(sys.version.split()[0],
torch.__version__, torch.version.cuda, av.__version__, ray.__version__, kornia.__version__, cv2.__version__,
numpy.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
        python3 -c "import torchvision; print('torchvision', torchvision.__version__)"
        nproc
        free -g | head -2
        df -h /dev/shm /tmp | tail -2
    } 2>&1 | tee "$OUT/env.txt"
    stage cuda_tests_first "${TEST_S:-120}" "${tests[@]}"
    # shellcheck disable=SC2086  # TABLE_ARGS: words
    stage table_first "${TABLE_S:-120}" "${table[@]}" --pipeline-frames 0 \
        --models espcn edvr-m edvr-s realesrgan realesr-animevideo \
        --out "$OUT/gpu_table_images.json" $TABLE_ARGS
elif [ "$step" = second ]; then
    if ! python3 -c "import av, ray, kornia" 2>/dev/null; then
        echo "gpu_run: error: PyAV/Ray/kornia are not in /tmp/site: the machine went cold after 'first'"
        exit 3
    fi
    if ! ls .gpu_carry/weights/basicvsr/*.pth >/dev/null 2>&1; then
        echo "gpu_run: error: carry .gpu_carry/weights/basicvsr"
        exit 3
    fi
    # the headline rows first, should the session's device time run out
    # shellcheck disable=SC2086
    stage table_second "${TABLE_S:-150}" "${table[@]}" --models basicvsr --pipeline-frames 0 \
        --out "$OUT/gpu_table_basicvsr.json" $TABLE_ARGS
    stage cuda_tests_second "${TEST_S:-100}" "${tests[@]}" -k "basicvsr and not compiled"
    # two pipeline runs, 4 chunks per forward pass, then 1 (the json is written after each)
    # shellcheck disable=SC2086
    stage pipeline_second "${PIPELINE_S:-170}" "${table[@]}" --models --pipeline-repeats 1 \
        --out "$OUT/gpu_table_pipeline.json" $TABLE_ARGS
else
    echo "gpu_run: error: say first or second"
    exit 2
fi
