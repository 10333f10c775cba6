"""The Cython/OpenMP kernels. Imported before any of them loads libgomp, this caps how long
OpenMP's idle threads spin for the next region (``GOMP_SPINCOUNT``, unless the user has set it
or ``OMP_WAIT_POLICY``): libgomp's default, 300,000 pauses (milliseconds), had them spinning
through the BLAS workers' phases that follow the kernels, a core lost per phase on 2 cores
(training steps 10-17 % slower: bench/NOTES.md, step 25)."""
import os

if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"
