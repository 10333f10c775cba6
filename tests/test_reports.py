"""fastconv.reports: metrics checked against scikit-learn and by hand, plots as real PNGs."""
import sys
import warnings

import numpy as np
import pytest

from fastconv import reports

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Hand-made: class 2 is never predicted (precision 0/0 -> 0.0).
HAND_TRUE = [0, 0, 1, 1, 2, 2]
HAND_PRED = [0, 1, 1, 1, 0, 0]
HAND_REPORT = """\
              precision    recall  f1-score   support

           0       0.33      0.50      0.40         2
           1       0.67      1.00      0.80         2
           2       0.00      0.00      0.00         2

    accuracy                           0.50         6
   macro avg       0.33      0.50      0.40         6
weighted avg       0.33      0.50      0.40         6
"""


def random_labels(seed, num_classes=5, n=80, drop=None):
    """Random true/pred labels; class ``drop`` is never predicted; at least one hit."""
    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, num_classes, n), rng.integers(0, num_classes, n)
    hit = 0
    if drop is not None:
        p[p == drop] = (drop + 1) % num_classes
        hit = np.flatnonzero(t != drop)[0]
    p[hit] = t[hit]
    return t, p


def no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def sk_metrics():
    return pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")


@pytest.fixture
def plt_image():
    return pytest.importorskip("matplotlib.image", reason="matplotlib not installed")


def assert_png(path, plt_image, shape=None):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    pixels = plt_image.imread(path)
    assert pixels.shape[0] > 0 and pixels.shape[1] > 0
    assert pixels.std() > 0, "blank image"
    return pixels


@pytest.mark.parametrize("seed", range(4))
def test_confusion_matrix_matches_sklearn(seed, sk_metrics):
    t, p = random_labels(seed, num_classes=7, n=300)
    assert set(t) | set(p) == set(range(7))
    ours = reports.confusion_matrix(t, p)
    assert ours.dtype == np.int64 and ours.shape == (7, 7)
    np.testing.assert_array_equal(ours, sk_metrics.confusion_matrix(t, p))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("digits", [2, 4])
@pytest.mark.parametrize("named", [False, True])
@pytest.mark.parametrize("output_dict", [False, True])
def test_classification_report_matches_sklearn(seed, digits, named, output_dict, sk_metrics):
    num_classes = 6
    t, p = random_labels(seed, num_classes=num_classes, drop=seed % num_classes)
    assert seed not in p
    kwargs = {}
    if named:
        kwargs = {"target_names": [f"digit-{i}" for i in range(num_classes + 1)]}
    ours = no_warnings(reports.classification_report, t, p, digits=digits,
                       output_dict=output_dict, **kwargs)
    if named:  # one extra class that never occurs: a row with support 0
        kwargs["labels"] = np.arange(num_classes + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the zero divisions
        expected = sk_metrics.classification_report(t, p, digits=digits,
                                                    output_dict=output_dict, **kwargs)
    assert ours == expected


def test_hand_made_example():
    matrix = reports.confusion_matrix(HAND_TRUE, HAND_PRED)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [2, 0, 0]])
    assert no_warnings(reports.classification_report, HAND_TRUE, HAND_PRED) == HAND_REPORT
    report = reports.classification_report(HAND_TRUE, HAND_PRED, output_dict=True)
    assert report["2"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 2.0}
    assert report["1"]["f1-score"] == pytest.approx(0.8)
    assert report["accuracy"] == 0.5
    assert list(report)[-3:] == ["accuracy", "macro avg", "weighted avg"]
    np.testing.assert_array_equal(reports.misclassified(HAND_TRUE, HAND_PRED), [1, 4, 5])


def test_num_classes_pads_the_matrix():
    matrix = reports.confusion_matrix([0, 1], [1, 1], num_classes=4)
    assert matrix.shape == (4, 4) and matrix.sum() == 2 and matrix[0, 1] == 1
    with pytest.raises(ValueError, match="num_classes"):
        reports.confusion_matrix([0, 5], [0, 1], num_classes=4)


def test_one_hot_and_probabilities_equal_class_indices():
    t, p = random_labels(7, num_classes=4, n=50)
    one_hot = np.eye(4)[t]
    rng = np.random.default_rng(0)
    probs = np.eye(4)[p] + rng.uniform(0, 0.4, (50, 4))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(reports.confusion_matrix(one_hot, probs),
                                  reports.confusion_matrix(t, p))
    assert reports.classification_report(one_hot, probs) == reports.classification_report(t, p)
    np.testing.assert_array_equal(reports.misclassified(one_hot, probs),
                                  reports.misclassified(t, p))
    np.testing.assert_array_equal(reports.misclassified(t.astype(float), p), np.flatnonzero(t != p))


def test_misclassified_indices():
    got = reports.misclassified([3, 1, 4, 1, 5, 9], [3, 1, 4, 2, 5, 0])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [3, 5])
    assert reports.misclassified([1, 2], [1, 2]).size == 0


@pytest.mark.parametrize("fn", [reports.confusion_matrix, reports.classification_report,
                                reports.misclassified])
def test_bad_labels(fn):
    with pytest.raises(ValueError, match=r"3 labels.* 2"):
        fn([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        fn([0, -1], [0, 1])
    with pytest.raises(ValueError, match="integer"):
        fn([0, 1.5], [0, 1])
    with pytest.raises(ValueError, match="shape"):
        fn(np.zeros((2, 1)), [0, 1])
    with pytest.raises(TypeError, match="dtype"):
        fn(["a", "b"], [0, 1])


def test_plot_confusion_matrix(tmp_path, plt_image):
    matrix = reports.confusion_matrix(*random_labels(1, num_classes=10, n=500))
    out = reports.plot_confusion_matrix(matrix, tmp_path / "cm.png",
                                        labels=[f"class {i}" for i in range(10)])
    assert out == str(tmp_path / "cm.png")
    assert_png(out, plt_image)


@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NCHW1", "NHWC3", "NCHW3"])
def test_plot_misclassified_layouts(layout, tmp_path, plt_image):
    rng = np.random.default_rng(0)
    t, p = random_labels(2, num_classes=3, n=12)
    gray = rng.random((12, 8, 8))
    images = {"NHW": gray, "NHWC1": gray[..., None], "NCHW1": gray[:, None],
              "NHWC3": (np.stack([gray, gray * 0, gray * 0], -1) * 255).astype(np.uint8),
              "NCHW3": np.stack([gray, gray * 0, gray * 0], 1)}[layout]
    pixels = assert_png(reports.plot_misclassified(images, t, p, tmp_path / "m.png",
                                                   max_images=6, columns=3), plt_image)
    colored = np.abs(pixels[..., 0] - pixels[..., 1]).max() > 0.5
    assert colored == layout.endswith("3")


def test_plot_misclassified_rejects_bad_images(tmp_path):
    with pytest.raises(ValueError, match="channels"):
        reports.plot_misclassified(np.zeros((2, 5, 8, 8)), [0, 1], [1, 0], tmp_path / "m.png")
    with pytest.raises(ValueError, match="3 samples"):
        reports.plot_misclassified(np.zeros((3, 8, 8)), [0, 1], [1, 0], tmp_path / "m.png")


class History:
    def __init__(self, history):
        self.history = history


@pytest.mark.parametrize("history", [
    History({"loss": [0.9, 0.5, 0.3], "val_loss": [0.8, 0.6, 0.5],
             "acc": [0.6, 0.8, 0.9], "val_acc": [0.7, 0.75, 0.8]}),
    {"loss": [0.9, 0.5], "accuracy": [0.6, 0.8], "val_accuracy": [0.5, 0.7]},
    {"loss": [0.9, 0.5, 0.4]},
], ids=["History-acc", "dict-accuracy", "loss-only"])
def test_plot_history(history, tmp_path, plt_image):
    pixels = assert_png(reports.plot_history(history, tmp_path / "curves.png"), plt_image)
    assert pixels.shape[1] > pixels.shape[0]  # two panels side by side


def test_write_report(tmp_path, plt_image):
    t, p = random_labels(3, num_classes=3, n=30)
    images = np.random.default_rng(0).random((30, 6, 6, 1)).astype(np.float32)
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "acc": [0.5, 0.7]}
    summary = reports.write_report(tmp_path / "report", t, np.eye(3)[p], images=images,
                                   labels=["a", "b", "c"], history=history)
    assert summary["accuracy"] == pytest.approx(np.mean(t == p))
    assert summary["num_misclassified"] == int(np.sum(t != p))
    names = {"confusion_matrix.png", "confusion_matrix.csv", "classification_report.txt",
             "misclassified.txt", "misclassified.png", "curves.png"}
    assert set(summary["files"]) == names
    assert {f.name for f in (tmp_path / "report").iterdir()} == names
    for name in ("confusion_matrix.png", "misclassified.png", "curves.png"):
        assert_png(summary["files"][name], plt_image)
    np.testing.assert_array_equal(
        np.loadtxt(summary["files"]["confusion_matrix.csv"], delimiter=",", dtype=int),
        reports.confusion_matrix(t, p))
    np.testing.assert_array_equal(
        np.loadtxt(summary["files"]["misclassified.txt"], dtype=int, ndmin=1),
        np.flatnonzero(t != p))
    text = (tmp_path / "report" / "classification_report.txt").read_text()
    assert text == reports.classification_report(t, p, target_names=["a", "b", "c"])


def test_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r'pip install "fastconv\[plot\]"'):
        reports.plot_history({"loss": [1.0]}, tmp_path / "c.png")
    with pytest.warns(RuntimeWarning, match=r"fastconv\[plot\]") as record:
        summary = reports.write_report(tmp_path, HAND_TRUE, HAND_PRED,
                                       images=np.zeros((6, 4, 4)), history={"loss": [1.0]})
    assert len(record) == 1
    assert set(summary["files"]) == {"confusion_matrix.csv", "classification_report.txt",
                                     "misclassified.txt"}
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(summary["files"])
