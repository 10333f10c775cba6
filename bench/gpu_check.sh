#!/bin/bash
# One call on a lent GPU machine, from the repository root, logs into $OUT: build the Cython
# kernels for its Python, run every cupy/gpu/cuda test, then bench/gpu.py against cuDNN.
# Usage: bash bench/gpu_check.sh [TEST_S] [BENCH_S]   (time limits in seconds; 0 skips the bench)
TEST_S=${1:-240}; BENCH_S=${2:-120}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MPLBACKEND=Agg
start=$(date +%s)
rm -f kernels/cython/*.cpython-312-*.so && ln -sfn ../kernels fastconv/kernels
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  git log -1 --format='commit %h %s' 2>/dev/null
  python3 -c "import sys, cupy, torch, numpy, Cython; print(sys.version.split()[0], 'cupy', cupy.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__, 'cython', Cython.__version__)"; } 2>&1 | tee $OUT/gpu-tests.log
python3 setup.py -q build_ext --inplace -j 16 > $OUT/build.log 2>&1 || { tail -40 $OUT/build.log; exit 1; }
echo "built after $(( $(date +%s) - start )) s" | tee -a $OUT/gpu-tests.log
python3 -c "import fastconv; print(fastconv.available_backends())" 2>&1 | tee -a $OUT/gpu-tests.log
timeout $TEST_S python3 -m pytest -q -p no:cacheprovider -o addopts= -rs -n 8 tests -k "cupy or gpu or cuda" >> $OUT/gpu-tests.log 2>&1
echo "tests exit $? after $(( $(date +%s) - start )) s" | tee -a $OUT/gpu-tests.log
grep -E "^(FAILED|ERROR)|passed|failed|SKIPPED" $OUT/gpu-tests.log | tail -25
if [ "$BENCH_S" -gt 0 ]; then
  timeout $BENCH_S python3 bench/gpu.py --out $OUT --budget-s $(( BENCH_S - 25 )) > $OUT/bench.log 2>&1
  tail -40 $OUT/bench.log
fi
echo "all done after $(( $(date +%s) - start )) s"
