"""Evaluation reports of the lecture's notebooks: confusion matrix, classification report,
misclassified examples and training curves.

Labels are NumPy class vectors ``(N,)`` or one-hot / probability matrices ``(N, classes)``,
which are argmax'ed along axis 1. The plots need matplotlib (``pip install "fastconv[plot]"``)
and draw on an Agg canvas, so they run headless and leave pyplot's state alone.

>>> import numpy as np
>>> confusion_matrix([0, 1, 1], np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]))
array([[1, 0],
       [1, 1]])
"""
import os
import warnings

import numpy as np

_HEADERS = ("precision", "recall", "f1-score", "support")


def _class_indices(y, name="y"):
    """Class vector ``(N,)`` int64 from class indices or an ``(N, classes)`` score matrix.

    A single score column ``(N, 1)`` is refused: its argmax would always be class 0.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1).astype(np.int64)
    if y.ndim != 1:
        raise ValueError(f"{name} must be class indices (N,) or scores (N, classes) with "
                         f"classes > 1, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got dtype {y.dtype}")
    if y.size and (np.any(y != np.round(y)) or y.min() < 0):
        raise ValueError(f"{name} must hold non-negative integer class indices")
    return y.astype(np.int64)


def _label_pair(y_true, y_pred):
    t, p = _class_indices(y_true, "y_true"), _class_indices(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} labels but y_pred has {len(p)}")
    if len(t) == 0:
        raise ValueError("y_true and y_pred are empty")
    return t, p


def _confusion(t, p, num_classes):
    top = int(max(t.max(), p.max()))
    num_classes = top + 1 if num_classes is None else num_classes
    if top >= num_classes:
        raise ValueError(f"label {top} does not fit num_classes={num_classes}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts ``(num_classes, num_classes)``: rows are true classes, columns predicted ones.

    ``num_classes`` defaults to the largest label + 1.
    """
    return _confusion(*_label_pair(y_true, y_pred), num_classes)


def _divide(num, den):
    """``num / den`` with 0.0 where ``den`` is 0 (sklearn's default zero_division)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _scores(matrix, classes):
    """Per-class precision, recall, f1 and support rows, and the summary rows."""
    tp = np.diag(matrix)[classes]
    true_sum, pred_sum = matrix.sum(axis=1)[classes], matrix.sum(axis=0)[classes]
    per_class = np.stack([_divide(tp, pred_sum), _divide(tp, true_sum),
                          _divide(2 * tp, true_sum + pred_sum), true_sum])
    total = int(matrix.sum())
    accuracy = float(np.trace(matrix)) / total
    macro = [float(np.mean(v)) for v in per_class[:3]] + [total]
    weighted = [float(np.average(v, weights=true_sum)) for v in per_class[:3]] + [total]
    return per_class.T, accuracy, total, macro, weighted


def classification_report(y_true, y_pred, target_names=None, digits=2, output_dict=False):
    """sklearn's ``classification_report`` (same layout, numbers and dict keys).

    Without ``target_names`` the rows are the classes that occur in either vector, as in
    sklearn; with them the rows are classes ``0 .. len(target_names) - 1``. Zero divisions
    give 0.0, without warnings.
    """
    t, p = _label_pair(y_true, y_pred)
    if target_names is None:
        classes = np.unique(np.concatenate([t, p]))
        names = [str(c) for c in classes]
        matrix = _confusion(t, p, None)
    else:
        names = [str(n) for n in target_names]
        classes = np.arange(len(names))
        matrix = _confusion(t, p, len(names))
    rows, accuracy, total, macro, weighted = _scores(matrix, classes)
    if output_dict:
        report = {n: dict(zip(_HEADERS, map(float, row))) for n, row in zip(names, rows)}
        report["accuracy"] = accuracy
        report["macro avg"] = dict(zip(_HEADERS, map(float, macro)))
        report["weighted avg"] = dict(zip(_HEADERS, map(float, weighted)))
        return report
    return _format_report(names, rows, accuracy, total, macro, weighted, digits)


def _format_report(names, rows, accuracy, total, macro, weighted, digits):
    width = max(max(len(n) for n in names), len("weighted avg"), digits)
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    lines = ["{:>{width}s} ".format("", width=width) + "".join(f" {h:>9}" for h in _HEADERS),
             "\n\n"]
    lines += [row_fmt.format(n, *row[:3], int(row[3]), width=width, digits=digits)
              for n, row in zip(names, rows)]
    lines.append("\n")
    lines.append("{:>{width}s} ".format("accuracy", width=width) + " " * 20
                 + f" {accuracy:>9.{digits}f} {total:>9}\n")
    lines.append(row_fmt.format("macro avg", *macro, width=width, digits=digits))
    lines.append(row_fmt.format("weighted avg", *weighted, width=width, digits=digits))
    return "".join(lines)


def misclassified(y_true, y_pred):
    """Indices (int64) of the samples whose predicted class differs from the true one."""
    t, p = _label_pair(y_true, y_pred)
    return np.flatnonzero(t != p).astype(np.int64)


def _figure(width, height):
    """A pyplot-free matplotlib Figure on an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError('plotting needs matplotlib: pip install "fastconv[plot]"') from err
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = os.fspath(path)
    fig.savefig(path, format="png", dpi=100)
    return path


def _tick_labels(labels, n):
    if labels is None:
        return [str(i) for i in range(n)]
    if len(labels) < n:
        raise ValueError(f"labels has {len(labels)} names but there are {n} classes")
    return [str(label) for label in labels]


def plot_confusion_matrix(matrix, path, labels=None, title="Confusion Matrix"):
    """Heatmap of ``matrix`` (true class on y, predicted on x) with the counts written in."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square, got shape {matrix.shape}")
    n = matrix.shape[0]
    names = _tick_labels(labels, n)[:n]
    size = max(4.0, 0.6 * n + 2)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = matrix.max() / 2
    spec = "d" if np.issubdtype(matrix.dtype, np.integer) else ".2g"
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, format(value, spec), ha="center", va="center", fontsize=8,
                color="white" if value > threshold else "black")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names,
           xlabel="Predicted label", ylabel="True label", title=title)
    if max(len(name) for name in names) > 3:
        ax.tick_params(axis="x", labelrotation=45)
        for tick in ax.get_xticklabels():
            tick.set(ha="right", rotation_mode="anchor")
    return _save(fig, path)


def _display_images(images):
    """Images as float ``(N, H, W)`` (gray) or ``(N, H, W, 3)`` (RGB) in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] not in (1, 3) and images.shape[1] in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError("images must be (N, H, W), NHWC or NCHW with 1 or 3 channels, "
                         f"got shape {images.shape}")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return np.clip(images.astype(np.float64) / scale, 0.0, 1.0)


def plot_misclassified(images, y_true, y_pred, path, labels=None, max_images=50, columns=10):
    """Grid of the first ``max_images`` misclassified images, each titled "true:pred"."""
    t, p = _label_pair(y_true, y_pred)
    images = _display_images(images)
    if len(images) != len(t):
        raise ValueError(f"images has {len(images)} samples but the labels have {len(t)}")
    names = _tick_labels(labels, int(max(t.max(), p.max())) + 1)
    wrong = np.flatnonzero(t != p)[:max_images]
    cols = max(1, min(columns, len(wrong)))
    rows = max(1, -(-len(wrong) // cols))
    fig = _figure(1.3 * cols, 1.45 * rows)
    if len(wrong) == 0:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for k, index in enumerate(wrong):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(images[index], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{names[t[index]]}:{names[p[index]]}", fontsize=9)
        ax.axis("off")
    return _save(fig, path)


def _plot_curves(ax, hist, keys, name):
    """Draw train/validation curves of the first present key in ``keys`` on ``ax``."""
    key = next((k for k in keys if k in hist), None)
    ax.set(title=f"Model {name}", xlabel="Epoch", ylabel=name.capitalize())
    if key is None:
        ax.text(0.5, 0.5, f"no {name} recorded", ha="center", va="center",
                transform=ax.transAxes)
        return
    for series, legend in ((key, "train"), ("val_" + key, "validation")):
        if series in hist:
            values = np.asarray(hist[series], dtype=np.float64)
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=legend)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="best")


def plot_history(history, path):
    """Loss and accuracy per epoch (from 1), train vs validation, side by side.

    ``history`` is a ``History`` (with a ``.history`` dict) or a dict of per-epoch lists;
    accuracy keys may be 'acc' or 'accuracy', validation keys are optional.
    """
    hist = dict(getattr(history, "history", history))
    fig = _figure(12, 4.5)
    loss_ax, acc_ax = fig.subplots(1, 2)
    _plot_curves(loss_ax, hist, ("loss",), "loss")
    _plot_curves(acc_ax, hist, ("accuracy", "acc"), "accuracy")
    return _save(fig, path)


def write_report(path_dir, y_true, y_pred, images=None, labels=None, history=None):
    """Write the full evaluation report into ``path_dir`` and return a summary dict.

    Files: confusion_matrix.csv/.png, classification_report.txt, misclassified.txt, and
    misclassified.png (with ``images``), curves.png (with ``history``). Without matplotlib the
    plots are skipped with one warning.
    """
    t, p = _label_pair(y_true, y_pred)
    os.makedirs(path_dir, exist_ok=True)
    files = {name: os.path.join(path_dir, name) for name in
             ("confusion_matrix.csv", "classification_report.txt", "misclassified.txt")}
    matrix = _confusion(t, p, len(labels) if labels is not None else None)
    wrong = np.flatnonzero(t != p)
    np.savetxt(files["confusion_matrix.csv"], matrix, fmt="%d", delimiter=",")
    with open(files["classification_report.txt"], "w") as f:
        f.write(classification_report(t, p, target_names=labels))
    np.savetxt(files["misclassified.txt"], wrong, fmt="%d")
    files.update(_write_plots(path_dir, matrix, t, p, images, labels, history))
    return {"accuracy": float(np.mean(t == p)), "num_misclassified": int(len(wrong)),
            "files": files}


def _write_plots(path_dir, matrix, t, p, images, labels, history):
    plots = [("confusion_matrix.png", lambda out: plot_confusion_matrix(matrix, out, labels))]
    if images is not None:
        plots.append(("misclassified.png", lambda out: plot_misclassified(images, t, p, out,
                                                                          labels)))
    if history is not None:
        plots.append(("curves.png", lambda out: plot_history(history, out)))
    try:
        return {name: draw(os.path.join(path_dir, name)) for name, draw in plots}
    except ImportError as err:
        warnings.warn(f"{err}; skipping the plots", RuntimeWarning, stacklevel=3)
        return {}
