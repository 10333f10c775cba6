"""``fastconv train``: the report folder, and a run killed mid-training that resumes without
losing its finished epochs."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastconv import cli

QUICK = ["--limit", "1024", "--test-limit", "256", "--batch-size", "256", "--verbose", "2"]


def _epochs_logged(out):
    with open(os.path.join(out, "log.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_train_writes_the_report(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "mnist", "--epochs", "2", "--out", out] + QUICK) == 0
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed and out in printed
    for name in ("metrics.json", "model.npz", "log.csv", "curves.png", "confusion_matrix.png",
                 "confusion_matrix.csv", "classification_report.txt", "misclassified.png",
                 "misclassified.txt", "checkpoint.npz"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["train_samples"] == 1024 and metrics["test_samples"] == 256
    assert len(metrics["history"]["val_acc"]) == 2
    matrix = np.loadtxt(os.path.join(out, "confusion_matrix.csv"), delimiter=",")
    assert matrix.sum() == 256
    assert np.trace(matrix) / 256 == pytest.approx(metrics["test_accuracy"])


def test_a_killed_run_resumes_after_its_last_finished_epoch(tmp_path):
    out = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "fastconv.cli", "train", "mnist", "--epochs", "4",
           "--out", out] + QUICK
    # run in tmp_path so that the installed package is imported, not the source tree
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    checkpoint = os.path.join(out, "checkpoint.npz")
    deadline = time.time() + 300
    while not os.path.exists(checkpoint) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended first: {proc.stderr.read()[-2000:]}"
    done = _epochs_logged(out)
    assert done and done == list(range(len(done))) and len(done) < 4
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600,
                             cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Epoch {len(done) + 1}/4" in resumed.stdout and "Epoch 1/4" not in resumed.stdout
    assert _epochs_logged(out) == [0, 1, 2, 3]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert len(metrics["history"]["loss"]) == 4


def test_ctrl_c_tells_how_to_resume(tmp_path, monkeypatch, capsys):
    import fastconv.training_run as run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(run, "train", interrupted)
    assert cli.main(["train", "mnist", "--out", str(tmp_path)]) == 130
    assert "--resume" in capsys.readouterr().err


def test_train_cifar10_from_the_data_folder(tmp_path, capsys):
    data = os.environ.get("FASTCONV_DATA")
    if not data or not os.path.isdir(os.path.join(data, "cifar10")):
        pytest.skip("CIFAR-10 is not shipped: set FASTCONV_DATA to a folder with cifar10/")
    out = str(tmp_path / "cifar")
    assert cli.main(["train", "cifar10", "--epochs", "1", "--limit", "512", "--test-limit", "128",
                     "--batch-size", "128", "--out", out, "--verbose", "0"]) == 0
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["train_samples"] == 512 and metrics["test_samples"] == 128
    report = open(os.path.join(out, "classification_report.txt")).read()
    assert "airplane" in report and "truck" in report
