"""The lecture's MNIST notebook (examples/mnist_notebook.py: only its imports changed) runs
end to end on fastconv, here on a subset of MNIST so that it takes seconds."""
import os
import subprocess
import sys

import pytest

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "mnist_notebook.py")

RUN_ON_SUBSET = f"""
import runpy
from fastconv.datasets import mnist
full = mnist.load_data
def subset(path=None):
    (a, b), (c, d) = full(path)
    return (a[:1024], b[:1024]), (c[:200], d[:200])
mnist.load_data = subset
runpy.run_path({NOTEBOOK!r}, run_name="__main__")
"""


def test_lecture_mnist_notebook_runs_with_only_its_imports_changed(tmp_path):
    for module in ("seaborn", "pandas", "sklearn"):
        pytest.importorskip(module, reason=f"the notebook imports {module} (pip install "
                                           f"'.[test]')")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", RUN_ON_SUBSET], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "x_train shape: (1024, 28, 28, 1)" in text
    assert "Total params: 2,782,090" in text
    assert "Epoch 3/3" in text and "Test accuracy:" in text
    assert "weighted avg" in text and "Number of misclassified examples:" in text
