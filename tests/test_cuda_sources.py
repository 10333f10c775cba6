"""Every kernels/cuda/*.cu compiles standalone to PTX with nvcc, warnings as errors (no GPU needed).

CuPy compiles these sources at run time with NVRTC, which has no include path: each file must be
self-contained and export its kernels as `<file>_<function>_f32` / `_f64` pairs.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CUDA_DIR = Path(__file__).resolve().parents[1] / "kernels" / "cuda"
SOURCES = sorted(CUDA_DIR.glob("*.cu"))
ARCHS = ["sm_90", "sm_80"]


def test_every_op_has_a_source():
    assert {p.stem for p in SOURCES} >= {"conv_direct", "im2col", "depthwise", "pool", "epilogue"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_source_is_self_contained(source):
    assert not re.search(r"^\s*#\s*include", source.read_text(), re.M), \
        f"{source.name} has an #include: NVRTC (CuPy) compiles it without include paths"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_compiles_to_ptx(source, arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found on PATH: cannot compile the CUDA sources")
    ptx = tmp_path / (source.stem + ".ptx")
    result = subprocess.run([nvcc, "-ptx", f"-arch={arch}", "-Werror", "all-warnings", "-o",
                             str(ptx), str(source)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    entries = re.findall(r"\.visible \.entry (\w+)\(", ptx.read_text())
    assert entries, f"{source.name} exports no kernel"
    for name in entries:
        assert re.fullmatch(rf"{source.stem}_\w+_f(32|64)", name), name
    assert sorted(e[:-3] for e in entries if e.endswith("f32")) == \
        sorted(e[:-3] for e in entries if e.endswith("f64")), entries
