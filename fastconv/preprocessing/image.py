"""Keras' ``ImageDataGenerator`` (Keras 2.x arguments and semantics), vectorised over batches.

A batch is augmented by one set of NumPy operations, not a loop over images: a 3x3 matrix per
image (Keras' rotation @ shift @ shear @ zoom about the image centre, then the flips), the
sampling point of every output pixel of every image, and a bilinear gather with the fill mode
applied to those points. As in Keras, a matrix maps an *output* pixel ``(row, col, 1)`` to the
*input* point sampled (``scipy.ndimage.affine_transform`` with ``order=1``; 'wrap' is scipy's
'grid-wrap'), so a positive ``theta`` of 90 degrees gives ``np.rot90(image, -1)`` and a zoom
factor above 1 shrinks the content.

>>> import numpy as np
>>> from fastconv.preprocessing.image import ImageDataGenerator
>>> datagen = ImageDataGenerator(rotation_range=10, width_shift_range=0.1, horizontal_flip=True)
>>> x, y = np.zeros((100, 32, 32, 3), np.uint8), np.arange(100)
>>> batches = datagen.flow(x, y, batch_size=32, seed=0)
>>> len(batches), next(batches)[0].shape
(4, (32, 32, 32, 3))
"""
import numbers
import threading
import warnings

import numpy as np

from fastconv import backend
from fastconv._shapes import check_data_format

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
_FIT_CHUNK = 1024  # images per step of fit(): bounds its temporary memory
_CHUNK_PIXELS = 1 << 15  # output pixels per step of affine_batch: temporaries stay in cache


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_range(name, value):
    if not _is_number(value) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return value


def _check_shift(name, value):
    """A float (uniform in ±value), an int (Keras: a choice from ``range(value)`` with a random
    sign) or a list of choices (with a random sign); a fraction of the size when all are < 1."""
    if _is_number(value):
        value = _check_range(name, value)
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    try:
        choices = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        choices = np.empty(0)
    if choices.ndim != 1 or choices.size == 0 or not np.all(np.isfinite(choices) & (choices >= 0)):
        raise ValueError(f"{name} must be a non-negative number or a non-empty list of "
                         f"non-negative numbers, got {value!r}")
    return tuple(choices.tolist())


def _check_pair(name, value, low_ok):
    """``(low, high)`` with ``low <= high`` and ``low_ok(low)``."""
    try:
        low, high = value
    except (TypeError, ValueError):
        low = high = None
    if not (_is_number(low) and _is_number(high) and low_ok(low) and low <= high):
        raise ValueError(f"{name} must be a pair [low, high] of numbers with "
                         f"{'0 < low' if name == 'zoom_range' else '0 <= low'} <= high, "
                         f"got {value!r}")
    return [float(low), float(high)]


def _check_zoom(value):
    if _is_number(value):
        value = _check_range("zoom_range", value)
        if value >= 1:
            raise ValueError(f"zoom_range as a number z gives factors [1 - z, 1 + z] and must "
                             f"be < 1, got {value!r}")
        return [1.0 - value, 1.0 + value]
    return _check_pair("zoom_range", value, lambda low: low > 0)


def _draw_shift(rng, spec, n, size):
    """Keras' shift draw for ``n`` images, in pixels (``spec`` as ``_check_shift`` returns)."""
    if spec == 0:
        return np.zeros(n)
    if isinstance(spec, float):
        shift = rng.uniform(-spec, spec, n)
    else:
        choices = np.arange(spec) if isinstance(spec, int) else np.asarray(spec)
        shift = rng.choice(choices, n) * rng.choice([-1.0, 1.0], n)
    return shift * size if np.max(spec) < 1 else shift


def _batch_matrix(n, entries):
    """``n`` identity 3x3 matrices with ``entries[(i, j)]`` (per-image values) set."""
    m = np.zeros((n, 3, 3))
    m[:, (0, 1, 2), (0, 1, 2)] = 1.0
    for (i, j), value in entries.items():
        m[:, i, j] = value
    return m


def transform_matrices(params, height, width):
    """Per-image matrices mapping output ``(row, col, 1)`` to the input point sampled.

    ``params``: Keras' transform parameters, each an array over the batch (theta and shear in
    degrees, tx a row shift and ty a column shift in pixels, zx/zy the row/column zoom). Keras
    composes rotation @ shift @ shear @ zoom about the centre; the flips come after it.
    """
    theta, shear = np.deg2rad(params["theta"]), np.deg2rad(params["shear"])
    n = len(theta)
    cos, sin = np.cos(theta), np.sin(theta)
    affine = (_batch_matrix(n, {(0, 0): cos, (0, 1): -sin, (1, 0): sin, (1, 1): cos})
              @ _batch_matrix(n, {(0, 2): params["tx"], (1, 2): params["ty"]})
              @ _batch_matrix(n, {(0, 1): -np.sin(shear), (1, 1): np.cos(shear)})
              @ _batch_matrix(n, {(0, 0): params["zx"], (1, 1): params["zy"]}))
    o_row, o_col = height / 2 - 0.5, width / 2 - 0.5
    centred = (_batch_matrix(1, {(0, 2): o_row, (1, 2): o_col}) @ affine
               @ _batch_matrix(1, {(0, 2): -o_row, (1, 2): -o_col}))
    flip_v, flip_h = np.asarray(params["flip_vertical"]), np.asarray(params["flip_horizontal"])
    flips = _batch_matrix(n, {(0, 0): np.where(flip_v, -1.0, 1.0),
                              (0, 2): np.where(flip_v, height - 1.0, 0.0),
                              (1, 1): np.where(flip_h, -1.0, 1.0),
                              (1, 2): np.where(flip_h, width - 1.0, 0.0)})
    return centred @ flips


def _coordinates(row, height, width, dtype):
    """``a*i + b*j + c`` at every pixel ``(i, j)`` of image k, ``row[k] = (a, b, c)``: (n, h, w)."""
    down = (row[:, 0, None] * np.arange(height) + row[:, 2, None]).astype(dtype)
    across = (row[:, 1, None] * np.arange(width)).astype(dtype)
    return down[:, :, None] + across[:, None, :]


def _cell(coord, size, fill_mode):
    """Top-left cell (in the grid padded by one on each side) and fraction of each point.

    The fill mode folds points back inside: 'reflect' is half-sample symmetric (period 2*size),
    'wrap' periodic, 'nearest' and 'constant' clip ('constant' is masked afterwards).
    """
    if fill_mode == "wrap":
        padded = np.mod(coord, size)
        padded += 1
    elif fill_mode == "reflect":
        padded = np.mod(coord + 0.5, 2 * size)
        padded -= size
        np.abs(padded, out=padded)
        np.subtract(size + 0.5, padded, out=padded)
    else:
        padded = np.clip(coord, 0, size - 1)
        padded += 1
    cell = np.floor(padded)
    if fill_mode == "wrap":
        np.minimum(cell, size, out=cell)  # mod() of a tiny negative point can round to size
    padded -= cell
    return cell, padded


def _lerp(a, b, t, out=None):
    """``a + t*(b - a)``, overwriting ``b``; exactly ``a`` where ``t`` is 0."""
    b -= a
    b *= t
    return np.add(b, a, out=out)


def _pad(x, wrap):
    """``x`` (n, h, w, c) with a border of one pixel: the edge, or the opposite edge (wrap).

    np.pad(mode='edge' / 'wrap') does the same, slower on small chunks.
    """
    n, height, width, channels = x.shape
    out = np.empty((n, height + 2, width + 2, channels), x.dtype)
    out[:, 1:-1, 1:-1] = x
    out[:, 0, 1:-1] = x[:, -1 if wrap else 0]
    out[:, -1, 1:-1] = x[:, 0 if wrap else -1]
    out[:, :, 0] = out[:, :, width if wrap else 1]
    out[:, :, -1] = out[:, :, 1 if wrap else width]
    return out


def _affine_chunk(x, matrices, fill_mode, cval, out):
    """``affine_batch`` for a few images, written to ``out``."""
    n, height, width, channels = x.shape
    padded = _pad(x, fill_mode == "wrap")
    # float32 holds every flat index of a padded image below 2**24 pixels exactly
    exact = np.float32 if (height + 2) * (width + 2) < 2 ** 24 else np.float64
    dtype = np.promote_types(x.dtype, exact)
    rows = _coordinates(matrices[:, 0], height, width, dtype)
    cols = _coordinates(matrices[:, 1], height, width, dtype)
    row_cell, row_frac = _cell(rows, height, fill_mode)
    col_cell, col_frac = _cell(cols, width, fill_mode)
    stride = width + 2
    row_cell *= stride
    row_cell += col_cell
    corner = row_cell.astype(np.intp)
    corner += (np.arange(n) * (height + 2) * stride)[:, None, None]
    flat = padded.reshape(-1, channels) if channels > 1 else padded.reshape(-1)
    if channels > 1:
        row_frac, col_frac = row_frac[..., None], col_frac[..., None]

    def pixels(offset):
        return np.take(flat[offset:], corner, axis=0)

    top = _lerp(pixels(0), pixels(1), col_frac)
    _lerp(top, _lerp(pixels(stride), pixels(stride + 1), col_frac), row_frac,
          out=out.reshape(top.shape))
    if fill_mode == "constant":
        out[(rows < 0) | (rows > height - 1) | (cols < 0) | (cols > width - 1)] = cval


def affine_batch(x, matrices, fill_mode="nearest", cval=0.0):
    """Resample every image of the channels-last batch ``x`` at ``matrices @ (row, col, 1)``.

    Bilinear interpolation; points outside the image follow ``fill_mode`` as scipy.ndimage
    does with order=1 ('constant': ``cval`` wherever the point lies outside the image). The
    batch goes through in chunks of images whose temporaries fit in cache.
    """
    n, height, width, _ = x.shape
    out = np.empty(x.shape, x.dtype)
    step = max(1, _CHUNK_PIXELS // (height * width))
    for start in range(0, n, step):
        chunk = slice(start, start + step)
        _affine_chunk(x[chunk], matrices[chunk], fill_mode, cval, out[chunk])
    return out


def _channel_shift(x, intensity):
    """Keras' channel shift: add each image's intensity to all its channels, clipped to the
    image's own range."""
    axes = (1, 2, 3)
    low, high = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
    x += intensity.astype(x.dtype).reshape(-1, 1, 1, 1)
    return np.clip(x, low, high, out=x)


def _moments(stats, chunk, axes):
    """Merge the per-channel (count, mean, M2) of ``chunk`` into ``stats`` (Chan et al.)."""
    count, mean, m2 = stats
    chunk_mean = chunk.mean(axis=axes, dtype=np.float64, keepdims=True)
    size = chunk.size // chunk_mean.size
    deviation = chunk - chunk_mean.astype(chunk.dtype)
    chunk_m2 = np.square(deviation, out=deviation).sum(axis=axes, dtype=np.float64)
    chunk_mean = chunk_mean.reshape(-1)
    total = count + size
    delta = chunk_mean - mean
    return total, mean + delta * size / total, m2 + chunk_m2 + delta ** 2 * count * size / total


class ImageDataGenerator:
    """Real-time image augmentation with Keras 2.x's arguments, defaults and semantics.

    Ranges: ``rotation_range`` and ``shear_range`` in degrees; a shift range < 1 is a fraction
    of the height/width, >= 1 pixels (an int or a list picks a value with a random sign, as
    Keras); ``zoom_range`` z gives factors uniform in [1 - z, 1 + z] for rows and columns
    independently (or a pair [low, high]). ``brightness_range`` multiplies pixel values (Keras'
    PIL round trip, which also rescales to 0-255 and rounds to uint8, is not reproduced).
    ``zca_whitening`` is not supported. Batches come from ``flow``.
    """

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0, width_shift_range=0.0,
                 height_shift_range=0.0, brightness_range=None, shear_range=0.0, zoom_range=0.0,
                 channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, dtype="float32"):
        if zca_whitening:
            raise NotImplementedError("zca_whitening is not supported by fastconv's "
                                      "ImageDataGenerator")
        self.zca_whitening, self.zca_epsilon = False, zca_epsilon
        self.featurewise_center = bool(featurewise_center)
        self.samplewise_center = bool(samplewise_center)
        self.featurewise_std_normalization = bool(featurewise_std_normalization)
        self.samplewise_std_normalization = bool(samplewise_std_normalization)
        self._imply_centering()
        self.rotation_range = _check_range("rotation_range", rotation_range)
        self.width_shift_range = _check_shift("width_shift_range", width_shift_range)
        self.height_shift_range = _check_shift("height_shift_range", height_shift_range)
        self.brightness_range = (None if brightness_range is None else
                                 _check_pair("brightness_range", brightness_range,
                                             lambda low: low >= 0))
        self.shear_range = _check_range("shear_range", shear_range)
        self.zoom_range = _check_zoom(zoom_range)
        self.channel_shift_range = _check_range("channel_shift_range", channel_shift_range)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        self.fill_mode = fill_mode
        if not _is_number(cval):
            raise ValueError(f"cval must be a number, got {cval!r}")
        self.cval = float(cval)
        self.horizontal_flip, self.vertical_flip = bool(horizontal_flip), bool(vertical_flip)
        if rescale is not None and not _is_number(rescale):
            raise ValueError(f"rescale must be None or a number, got {rescale!r}")
        self.rescale = rescale
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise ValueError(f"preprocessing_function must be callable, got "
                             f"{preprocessing_function!r}")
        self.preprocessing_function = preprocessing_function
        self.data_format = backend.image_data_format() if data_format is None else data_format
        check_data_format(self.data_format)
        last = self.data_format == "channels_last"
        self.channel_axis, self.row_axis, self.col_axis = (3, 1, 2) if last else (1, 2, 3)
        if not (_is_number(validation_split) and 0 <= validation_split < 1):
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        self.validation_split = validation_split
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"dtype must be a float type, got {dtype!r}")
        self.mean = self.std = None
        self._rng = np.random.default_rng()

    def _imply_centering(self):
        """Keras: std normalisation switches the matching centring on, with a warning."""
        for kind in ("featurewise", "samplewise"):
            if getattr(self, f"{kind}_std_normalization") and not getattr(self, f"{kind}_center"):
                setattr(self, f"{kind}_center", True)
                warnings.warn(f"This ImageDataGenerator specifies `{kind}_std_normalization`, "
                              f"which overrides setting of `{kind}_center`.")

    def _check_images(self, x, what):
        """``x`` as an array of 4-D numeric images with 1, 3 or 4 channels on the channel axis."""
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"{what}: x must be a 4-D batch of images, got shape {x.shape}")
        if not (np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_):
            raise ValueError(f"{what}: x must hold numbers, got dtype {x.dtype}")
        if x.shape[self.channel_axis] not in (1, 3, 4):
            raise ValueError(
                f"{what}: data_format {self.data_format!r} expects 1, 3 or 4 channels on axis "
                f"{self.channel_axis}, got shape {x.shape}; set data_format to match the data")
        return x

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Fit the per-channel ``mean`` and ``std`` of ``x`` (after ``rescale``) used by the
        featurewise options; with ``augment``, over ``rounds`` randomly transformed copies."""
        x = self._check_images(x, "fit")
        if not isinstance(rounds, numbers.Integral) or rounds < 1:
            raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
        if not self.featurewise_center:
            return
        rng = self._rng if seed is None else np.random.default_rng(seed)
        axes = (0, self.row_axis, self.col_axis)
        stats = (0, 0.0, 0.0)
        for _ in range(rounds if augment else 1):
            for start in range(0, len(x), _FIT_CHUNK):
                chunk = x[start:start + _FIT_CHUNK].astype(self.dtype)
                if self.rescale:
                    chunk *= self.rescale
                if augment:
                    chunk = self._augment(chunk, rng)
                stats = _moments(stats, chunk, axes)
        count, mean, m2 = stats
        shape = [1, 1, 1]
        shape[self.channel_axis - 1] = -1
        self.mean = mean.reshape(shape).astype(self.dtype)
        if self.featurewise_std_normalization:
            self.std = np.sqrt(m2 / count).reshape(shape).astype(self.dtype)

    def standardize(self, x):
        """Keras' normalisation of one image (3-D) or a batch (4-D), in Keras' order:
        ``preprocessing_function`` (per image), ``rescale``, samplewise then featurewise
        centring/scaling. Returns a new array of ``dtype``; ``x`` is left unchanged."""
        x = np.array(x, dtype=self.dtype)
        if x.ndim not in (3, 4):
            raise ValueError(f"standardize: x must be one image (3-D) or a batch (4-D), "
                             f"got shape {x.shape}")
        return self._standardize_batch(x) if x.ndim == 4 else self._standardize_batch(x[None])[0]

    def _standardize_batch(self, x):
        """``standardize`` on a batch this object owns, in place."""
        if self.preprocessing_function is not None:
            for i, image in enumerate(x):
                x[i] = self.preprocessing_function(image)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= x.mean(axis=(1, 2, 3), keepdims=True)
        if self.samplewise_std_normalization:
            x /= x.std(axis=(1, 2, 3), keepdims=True) + 1e-6
        if self.featurewise_center:
            self._featurewise(x)
        return x

    def _featurewise(self, x):
        if self.mean is None:
            warnings.warn("This ImageDataGenerator specifies featurewise normalisation but "
                          "hasn't been fit on any training data: call `.fit(x)` first.")
            return
        if self.mean.size != x.shape[self.channel_axis]:
            raise ValueError(f"the generator was fit on {self.mean.size} channels, got images "
                             f"with shape {x.shape[1:]} ({self.data_format})")
        x -= self.mean
        if self.featurewise_std_normalization:
            x /= self.std + 1e-6

    def _random_params(self, n, img_shape, rng):
        """Keras' random transform parameters for ``n`` images of ``img_shape``, as arrays."""
        height, width = img_shape[self.row_axis - 1], img_shape[self.col_axis - 1]
        zoom = (np.ones((2, n)) if self.zoom_range == [1.0, 1.0]
                else rng.uniform(*self.zoom_range, (2, n)))
        return {
            "theta": rng.uniform(-self.rotation_range, self.rotation_range, n)
            if self.rotation_range else np.zeros(n),
            "tx": _draw_shift(rng, self.height_shift_range, n, height),
            "ty": _draw_shift(rng, self.width_shift_range, n, width),
            "shear": rng.uniform(-self.shear_range, self.shear_range, n)
            if self.shear_range else np.zeros(n),
            "zx": zoom[0],
            "zy": zoom[1],
            "flip_horizontal": rng.random(n) < 0.5 if self.horizontal_flip else np.zeros(n, bool),
            "flip_vertical": rng.random(n) < 0.5 if self.vertical_flip else np.zeros(n, bool),
            "channel_shift_intensity": rng.uniform(-self.channel_shift_range,
                                                   self.channel_shift_range, n)
            if self.channel_shift_range else None,
            "brightness": rng.uniform(*self.brightness_range, n)
            if self.brightness_range is not None else None,
        }

    def get_random_transform(self, img_shape, seed=None):
        """Random parameters for one image of shape ``img_shape`` (a dict, as Keras)."""
        rng = self._rng if seed is None else np.random.default_rng(seed)
        params = self._random_params(1, img_shape, rng)
        return {key: None if value is None else value[0].item() for key, value in params.items()}

    def apply_transform(self, x, transform_parameters):
        """Transform one image (3-D) by Keras' parameters (missing keys: no change)."""
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"apply_transform: x must be one image (3-D), got shape {x.shape}")
        defaults = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0,
                    "flip_horizontal": False, "flip_vertical": False,
                    "channel_shift_intensity": None, "brightness": None}
        params = {}
        for key, default in defaults.items():
            value = transform_parameters.get(key, default)
            params[key] = None if value is None else np.atleast_1d(np.asarray(value))
        return self._transform_batch(x[None].astype(self.dtype), params)[0]

    def random_transform(self, x, seed=None):
        """One image (3-D), randomly transformed."""
        return self.apply_transform(x, self.get_random_transform(np.shape(x), seed))

    def _augment(self, x, rng):
        """Random transforms of the batch ``x`` (owned, ``dtype``)."""
        return self._transform_batch(x, self._random_params(len(x), x.shape[1:], rng))

    def _transform_batch(self, x, params):
        """Keras' apply_transform on the whole batch ``x`` (owned, ``dtype``) at once."""
        matrices = transform_matrices(params, x.shape[self.row_axis], x.shape[self.col_axis])
        if not np.array_equal(matrices, np.broadcast_to(np.eye(3), matrices.shape)):
            if self.data_format == "channels_first":
                x = affine_batch(np.moveaxis(x, 1, -1), matrices, self.fill_mode, self.cval)
                x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
            else:
                x = affine_batch(x, matrices, self.fill_mode, self.cval)
        if params["channel_shift_intensity"] is not None:
            x = _channel_shift(x, params["channel_shift_intensity"])
        if params["brightness"] is not None:
            x *= params["brightness"].astype(x.dtype).reshape(-1, 1, 1, 1)
        return x

    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None,
             subset=None):
        """A ``NumpyArrayIterator`` of augmented, standardised batches of ``x`` (and ``y``)."""
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle,
                                  sample_weight=sample_weight, seed=seed, subset=subset)


def _split(arrays, subset, validation_split):
    """Keras' subsets: 'validation' is the first ``int(n * validation_split)`` samples."""
    if subset not in ("training", "validation"):
        raise ValueError(f"subset must be 'training' or 'validation', got {subset!r}")
    if not validation_split:
        raise ValueError("subset needs the ImageDataGenerator's validation_split > 0")
    x, y, _ = arrays
    cut = int(len(x) * validation_split)
    if y is not None and not np.array_equal(np.unique(y[:cut]), np.unique(y[cut:])):
        raise ValueError("Training and validation subsets have different classes after the "
                         "split; if x is sorted by label, shuffle it first")
    part = slice(None, cut) if subset == "validation" else slice(cut, None)
    return [None if a is None else a[part] for a in arrays]


class NumpyArrayIterator:
    """Batches of augmented images from arrays, forever (Keras' ``NumpyArrayIterator``).

    ``next()`` yields ``(x, y)``, ``(x, y, sample_weight)`` or ``x`` (when ``y`` is None),
    reshuffling at the start of every pass; the last batch of a pass may be smaller.
    ``len()`` is the number of batches per pass and ``it[i]`` gives batch ``i`` (a Keras
    ``Sequence``; ``on_epoch_end()`` reshuffles). One ``seed`` makes the whole stream
    (shuffles and transforms) reproducible.
    """

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False,
                 sample_weight=None, seed=None, subset=None):
        generator = image_data_generator
        x = generator._check_images(x, "flow")
        arrays = [x] + [None if a is None else np.asarray(a) for a in (y, sample_weight)]
        for name, array in zip(("y", "sample_weight"), arrays[1:]):
            if array is not None and len(array) != len(x):
                raise ValueError(f"x and {name} must have the same length, got {len(x)} and "
                                 f"{len(array)}")
        if subset is not None:
            arrays = _split(arrays, subset, generator.validation_split)
        self.x, self.y, self.sample_weight = arrays
        if len(self.x) == 0:
            raise ValueError("flow: no images to iterate over")
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.image_data_generator = generator
        self.n, self.batch_size, self.shuffle, self.seed = len(self.x), batch_size, shuffle, seed
        self.batch_index = 0
        self.total_batches_seen = 0
        self.index_array = None
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __iter__(self):
        return self

    def _set_index_array(self):
        self.index_array = self._rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def on_epoch_end(self):
        """Reshuffle (when shuffling)."""
        self._set_index_array()

    def reset(self):
        """Make the next ``next()`` start a new pass."""
        self.batch_index = 0

    def _reserve(self, batch):
        """Indices and random transform parameters of ``batch`` (call with the lock held)."""
        indices = self.index_array[batch * self.batch_size:(batch + 1) * self.batch_size]
        params = self.image_data_generator._random_params(len(indices), self.x.shape[1:],
                                                          self._rng)
        self.total_batches_seen += 1
        return indices, params

    def __next__(self):
        with self._lock:
            if self.batch_index == 0:
                self._set_index_array()
            reserved = self._reserve(self.batch_index)
            self.batch_index = (self.batch_index + 1) % len(self)
        return self._batch(*reserved)

    next = __next__

    def __getitem__(self, batch):
        if not 0 <= batch < len(self):
            raise IndexError(f"batch {batch} is out of range for {len(self)} batches")
        with self._lock:
            if self.index_array is None:
                self._set_index_array()
            reserved = self._reserve(batch)
        return self._batch(*reserved)

    def _batch(self, indices, params):
        generator = self.image_data_generator
        x = self.x[indices].astype(generator.dtype, copy=False)
        x = generator._standardize_batch(generator._transform_batch(x, params))
        if self.y is None:
            return x
        if self.sample_weight is None:
            return x, self.y[indices]
        return x, self.y[indices], self.sample_weight[indices]
