"""Build the Cython kernels under kernels/cython/ as extension modules of fastconv.kernels.cython.

OpenMP (-fopenmp) is used when the compiler accepts it; otherwise the kernels build serial and
fastconv says so once at import. -march=native only when FASTCONV_NATIVE=1.
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = sorted(p.stem for p in Path("kernels/cython").glob("*.pyx"))


def _accepts(compiler, flag):
    """True if the C compiler compiles and links a trivial OpenMP program with `flag`."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "probe.c")
        src.write_text("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        try:
            objs = compiler.compile([str(src)], output_dir=tmp, extra_postargs=[flag])
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=[flag])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        openmp = _accepts(self.compiler, "-fopenmp")
        if not openmp:
            print("fastconv: the compiler lacks OpenMP; building serial kernels", file=sys.stderr)
        flags = ["-O3"] + (["-march=native"] if os.environ.get("FASTCONV_NATIVE") == "1" else [])
        for ext in self.extensions:
            ext.extra_compile_args += flags + (["-fopenmp"] if openmp else [])
            ext.extra_link_args += ["-fopenmp"] if openmp else []
            ext.define_macros.append(("FASTCONV_OPENMP", int(openmp)))
        super().build_extensions()


extensions = [
    Extension(
        f"fastconv.kernels.cython.{name}",
        [f"kernels/cython/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3, "boundscheck": False, "wraparound": False,
            "cdivision": True, "initializedcheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
