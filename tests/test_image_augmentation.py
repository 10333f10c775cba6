"""fastconv.preprocessing.image: Keras' ImageDataGenerator, vectorised over batches.

The oracle for the geometric transforms is Keras' own recipe, one image at a time: the
matrices of keras_preprocessing's ``apply_affine_transform`` applied with
``scipy.ndimage.affine_transform(order=1)``, then the channel shift and the flips.
"""
import numpy as np
import pytest
from scipy import ndimage

from fastconv import backend
from fastconv.preprocessing import image
from fastconv.preprocessing.image import ImageDataGenerator, NumpyArrayIterator

SCIPY_MODES = {"nearest": "nearest", "reflect": "reflect", "wrap": "grid-wrap",
               "constant": "constant"}
IDENTITY = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0,
            "flip_horizontal": False, "flip_vertical": False,
            "channel_shift_intensity": None, "brightness": None}


def keras_reference(x, params, fill_mode, cval):
    """Keras 2.x apply_transform for one channels-last image, with scipy doing the resampling."""
    theta, shear = np.deg2rad(params["theta"]), np.deg2rad(params["shear"])
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                         [0, 0, 1]])
    shift = np.array([[1, 0, params["tx"]], [0, 1, params["ty"]], [0, 0, 1]])
    shearing = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    zoom = np.array([[params["zx"], 0, 0], [0, params["zy"], 0], [0, 0, 1]])
    matrix = rotation @ shift @ shearing @ zoom
    o_x, o_y = x.shape[0] / 2 - 0.5, x.shape[1] / 2 - 0.5
    matrix = (np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]]) @ matrix
              @ np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]]))
    out = np.stack([ndimage.affine_transform(x[..., c].astype(np.float64), matrix[:2, :2],
                                             matrix[:2, 2], order=1,
                                             mode=SCIPY_MODES[fill_mode], cval=cval)
                    for c in range(x.shape[-1])], axis=-1)
    if params["channel_shift_intensity"] is not None:
        out = np.clip(out + params["channel_shift_intensity"], out.min(), out.max())
    if params["flip_horizontal"]:
        out = out[:, ::-1]
    if params["flip_vertical"]:
        out = out[::-1]
    return out


def images(n=6, h=9, w=11, c=3, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c)).astype(np.float32)


def transform(x, fill_mode="nearest", cval=0.0, **params):
    """One channels-last image through apply_transform with the given Keras parameters."""
    return ImageDataGenerator(fill_mode=fill_mode, cval=cval).apply_transform(
        x, {**IDENTITY, **params})


# --- exact cases --------------------------------------------------------------------------

def test_identity_returns_the_input_unchanged():
    x = images()[0]
    out = transform(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)
    xs = images(10)
    np.testing.assert_array_equal(ImageDataGenerator().flow(xs, batch_size=10, shuffle=False)[0],
                                  xs)


@pytest.mark.parametrize("fill_mode", image.FILL_MODES)
def test_flips_are_exact(fill_mode):
    x = images()[0]
    np.testing.assert_array_equal(transform(x, fill_mode, flip_horizontal=True), x[:, ::-1])
    np.testing.assert_array_equal(transform(x, fill_mode, flip_vertical=True), x[::-1])
    np.testing.assert_array_equal(
        transform(x, fill_mode, flip_horizontal=True, flip_vertical=True), x[::-1, ::-1])


def test_random_horizontal_flip_gives_the_image_or_its_mirror():
    x = images(64)
    batch = ImageDataGenerator(horizontal_flip=True).flow(x, batch_size=64, shuffle=False,
                                                          seed=1)[0]
    flipped = np.array([np.array_equal(b, a[:, ::-1]) for a, b in zip(x, batch)])
    same = np.array([np.array_equal(b, a) for a, b in zip(x, batch)])
    assert np.all(flipped | same) and 10 < flipped.sum() < 54


def test_integer_shift_is_a_roll_with_nearest_edges():
    x = images()[0]
    tx, ty = 2, -3  # Keras: tx moves the sampled row, ty the sampled column
    rows = np.clip(np.arange(9) + tx, 0, 8)
    cols = np.clip(np.arange(11) + ty, 0, 10)
    np.testing.assert_array_equal(transform(x, tx=tx, ty=ty), x[rows][:, cols])
    np.testing.assert_array_equal(transform(x, "wrap", tx=tx, ty=ty),
                                  np.roll(x, (-tx, -ty), axis=(0, 1)))


def test_wrap_just_left_of_the_edge():
    x = images()[0]  # float32 rounds -1e-7 mod 11 to 11.0: the far edge of the padded grid
    np.testing.assert_allclose(transform(x, "wrap", ty=-1e-7), x, atol=1e-5)


def test_int_shift_range_draws_whole_pixel_shifts():
    x = images(40, 8, 8, 1)
    batch = ImageDataGenerator(width_shift_range=3, fill_mode="wrap").flow(
        x, batch_size=40, shuffle=False, seed=2)[0]
    shifts = [[s for s in range(-2, 3) if np.array_equal(b, np.roll(a, -s, axis=1))]
              for a, b in zip(x, batch)]
    assert all(len(s) == 1 for s in shifts)
    assert len({s[0] for s in shifts}) > 2


@pytest.mark.parametrize("size", [8, 9])
def test_rotation_by_90_degrees_is_rot90_clockwise(size):
    x = images(1, size, size, 2)[0]
    expected = np.rot90(x, -1, axes=(0, 1))  # out[i, j] = x[n-1-j, i]
    for fill_mode in image.FILL_MODES:
        np.testing.assert_allclose(transform(x, fill_mode, theta=90), expected, atol=1e-6)
    np.testing.assert_allclose(transform(x, theta=-90), np.rot90(x, 1, axes=(0, 1)), atol=1e-6)


def test_half_pixel_shift_averages_neighbours():
    x = images()[0]
    out = transform(x, ty=0.5)
    np.testing.assert_allclose(out[:, :-1], (x[:, :-1] + x[:, 1:]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(out[:, -1], x[:, -1])  # nearest: the edge repeats
    np.testing.assert_allclose(transform(x, tx=-0.5)[1:], (x[:-1] + x[1:]) / 2, rtol=1e-6)


def test_zoom_is_about_the_centre_with_keras_convention():
    x = images(1, 9, 9, 1)[0]
    # Keras maps output to input: a factor 2 samples twice as far from the centre (4, 4),
    # so the content shrinks; 0.5 magnifies
    out = transform(x, zx=2.0, zy=2.0)
    np.testing.assert_array_equal(out[2:7, 2:7], x[0:9:2, 0:9:2])
    out = transform(x, zx=0.5, zy=0.5)
    np.testing.assert_array_equal(out[0:9:2, 0:9:2], x[2:7, 2:7])
    np.testing.assert_allclose(out[1, 1], x[2:4, 2:4].mean(), rtol=1e-6)


def test_brightness_and_channel_shift():
    x = images()[0]
    np.testing.assert_allclose(transform(x, brightness=0.5), x * 0.5, rtol=1e-6)
    out = transform(x, channel_shift_intensity=0.25)
    np.testing.assert_allclose(out, np.clip(x + 0.25, x.min(), x.max()), rtol=1e-6)


# --- fill modes and random transforms against Keras' scipy recipe --------------------------

@pytest.mark.parametrize("fill_mode", image.FILL_MODES)
def test_fill_modes_at_the_border(fill_mode):
    x = images(1, 6, 7, 1)[0]
    out = transform(x, fill_mode, cval=-1.0, ty=-2)  # samples columns j - 2
    border = {"constant": [np.full(6, -1.0), np.full(6, -1.0)],
              "nearest": [x[:, 0, 0], x[:, 0, 0]],
              "reflect": [x[:, 1, 0], x[:, 0, 0]],
              "wrap": [x[:, 5, 0], x[:, 6, 0]]}[fill_mode]
    np.testing.assert_array_equal(out[:, 0, 0], border[0])
    np.testing.assert_array_equal(out[:, 1, 0], border[1])
    np.testing.assert_array_equal(out[:, 2:], x[:, :-2])


@pytest.mark.parametrize("fill_mode", image.FILL_MODES)
@pytest.mark.parametrize("shape", [(8, 13, 17, 3), (8, 12, 12, 1)])
def test_random_transforms_match_keras_with_scipy(fill_mode, shape):
    datagen = ImageDataGenerator(rotation_range=60, width_shift_range=0.4,
                                 height_shift_range=0.4, shear_range=30, zoom_range=0.5,
                                 channel_shift_range=0.3, horizontal_flip=True,
                                 vertical_flip=True, fill_mode=fill_mode, cval=0.3)
    x = np.random.default_rng(3).random(shape)
    rng = np.random.default_rng(4)
    params = datagen._random_params(shape[0], shape[1:], rng)
    out = datagen._transform_batch(x.astype(np.float32), params)
    for k in range(shape[0]):
        p = {key: None if v is None else v[k] for key, v in params.items()}
        np.testing.assert_allclose(out[k], keras_reference(x[k], p, fill_mode, 0.3), atol=1e-4)


def test_random_transform_matches_its_parameters():
    datagen = ImageDataGenerator(rotation_range=30, zoom_range=0.2, shear_range=10,
                                 width_shift_range=0.2, fill_mode="reflect")
    x = images()[0]
    params = datagen.get_random_transform(x.shape, seed=5)
    assert params == datagen.get_random_transform(x.shape, seed=5)
    np.testing.assert_allclose(datagen.random_transform(x, seed=5),
                               keras_reference(x, params, "reflect", 0.0), atol=1e-4)


def test_random_parameters_follow_keras_ranges():
    datagen = ImageDataGenerator(rotation_range=5, zoom_range=0.2, width_shift_range=0.15,
                                 height_shift_range=[1, 2], shear_range=3)
    p = datagen._random_params(2000, (28, 20, 1), np.random.default_rng(0))
    assert np.abs(p["theta"]).max() <= 5 and np.abs(p["theta"]).max() > 4.9
    assert np.abs(p["shear"]).max() <= 3
    assert np.abs(p["ty"]).max() <= 0.15 * 20 and np.abs(p["ty"]).max() > 2.9
    assert set(np.unique(p["tx"])) == {-2, -1, 1, 2}  # a list: choices in pixels, random sign
    for key in ("zx", "zy"):
        assert 0.8 <= p[key].min() < 0.81 and 1.19 < p[key].max() <= 1.2
    assert not np.array_equal(p["zx"], p["zy"])
    assert p["channel_shift_intensity"] is None and p["brightness"] is None


# --- standardisation ----------------------------------------------------------------------

@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_featurewise_center_and_std_after_fit(data_format):
    rng = np.random.default_rng(6)
    x = (rng.random((50, 8, 8, 3)) * [1, 10, 100] + [0, 5, -50]).astype(np.float32)
    channel = 3
    if data_format == "channels_first":
        x, channel = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), 1
    axes = tuple(a for a in range(4) if a != channel)
    datagen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                                 rescale=0.5, data_format=data_format)
    datagen.fit(x)
    np.testing.assert_allclose(datagen.mean.ravel(), x.mean(axis=axes) * 0.5, rtol=1e-5)
    np.testing.assert_allclose(datagen.std.ravel(), x.std(axis=axes) * 0.5, rtol=1e-4)
    out = datagen.standardize(x)
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=axes), 1, atol=1e-4)
    batch = datagen.flow(x, batch_size=50, shuffle=False)[0]
    np.testing.assert_allclose(batch, out, rtol=1e-6)


def test_fit_with_augmentation_and_rounds():
    x = images(30, 8, 8, 1)
    datagen = ImageDataGenerator(featurewise_center=True, rotation_range=20, fill_mode="reflect")
    datagen.fit(x, augment=True, rounds=3, seed=0)
    assert datagen.mean.shape == (1, 1, 1)
    np.testing.assert_allclose(datagen.mean.ravel(), x.mean(), atol=0.02)


def test_samplewise_normalisation_and_preprocessing_function():
    x = images() * 7 + 3
    datagen = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True,
                                 preprocessing_function=lambda im: im[::-1])
    out = datagen.standardize(x)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(out[0, 0], datagen.standardize(x[0])[0], rtol=1e-5)
    np.testing.assert_allclose(out[0, 0, 0], ((x[0, -1] - x[0].mean()) / x[0].std())[0],
                               rtol=1e-4)


def test_std_normalisation_implies_centering_as_keras():
    with pytest.warns(UserWarning, match="featurewise_center"):
        datagen = ImageDataGenerator(featurewise_std_normalization=True)
    assert datagen.featurewise_center
    with pytest.warns(UserWarning, match="fit"):
        datagen.standardize(images())


# --- flow ---------------------------------------------------------------------------------

def indexed(n, shape=(6, 6, 1)):
    """Images whose pixels all equal their index: every transform with 'nearest' fill keeps
    them constant, so a batch shows which samples it holds."""
    return np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones(shape, np.float32)


LECTURE_MNIST = dict(rotation_range=5, zoom_range=0.2, width_shift_range=0.15,
                     height_shift_range=0.15)


def test_flow_batches_cover_every_sample_once_per_pass():
    x, y = indexed(100), np.arange(100)
    batches = ImageDataGenerator(**LECTURE_MNIST).flow(x, y, batch_size=32, seed=0)
    assert isinstance(batches, NumpyArrayIterator) and len(batches) == 4
    passes = []
    for _ in range(3):
        seen = []
        for _ in range(len(batches)):
            xb, yb = next(batches)
            assert xb.dtype == np.float32
            np.testing.assert_allclose(xb, yb[:, None, None, None] * np.ones((6, 6, 1)),
                                       atol=1e-4)  # x and y stay aligned
            seen.append(yb)
        assert [len(s) for s in seen] == [32, 32, 32, 4]
        assert sorted(np.concatenate(seen)) == list(range(100))
        passes.append(np.concatenate(seen))
    assert not np.array_equal(passes[0], passes[1])  # reshuffled at each pass


def test_flow_seed_makes_the_stream_reproducible():
    x, y = images(20), np.arange(20)

    def stream(seed):
        batches = ImageDataGenerator(**LECTURE_MNIST).flow(x, y, batch_size=8, seed=seed)
        return [next(batches) for _ in range(5)]

    first, again, other = stream(7), stream(7), stream(8)
    for (xa, ya), (xb, yb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_flow_without_shuffle_and_as_a_sequence():
    x, y, w = indexed(10), np.arange(10), np.linspace(0, 1, 10)
    batches = ImageDataGenerator().flow(x, y, batch_size=4, shuffle=False, sample_weight=w)
    xb, yb, wb = batches[2]
    np.testing.assert_array_equal(yb, [8, 9])
    np.testing.assert_array_equal(xb[:, 0, 0, 0], [8, 9])
    np.testing.assert_array_equal(wb, w[8:])
    with pytest.raises(IndexError, match="out of range"):
        batches[3]
    assert [list(next(batches)[1]) for _ in range(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9],
                                                          [0, 1, 2, 3]]
    only_x = ImageDataGenerator().flow(x, batch_size=4, shuffle=False)
    np.testing.assert_array_equal(next(only_x), x[:4])


def test_on_epoch_end_reshuffles_the_sequence():
    batches = ImageDataGenerator().flow(indexed(50), np.arange(50), batch_size=50, seed=0)
    first = batches[0][1]
    batches.on_epoch_end()
    second = batches[0][1]
    assert sorted(first) == sorted(second) == list(range(50))
    assert not np.array_equal(first, second)


def test_flow_channels_first_matches_channels_last():
    x = images(12, 10, 10, 3)
    settings = dict(rotation_range=20, width_shift_range=0.1, horizontal_flip=True,
                    fill_mode="reflect")
    last = ImageDataGenerator(**settings, data_format="channels_last").flow(x, seed=3)[0]
    first = ImageDataGenerator(**settings, data_format="channels_first").flow(
        x.transpose(0, 3, 1, 2), seed=3)[0]
    assert first.shape == (12, 3, 10, 10) and first.flags.c_contiguous
    np.testing.assert_allclose(first, last.transpose(0, 3, 1, 2), rtol=1e-6)


def test_default_data_format_comes_from_the_backend():
    previous = backend.image_data_format()
    backend.set_image_data_format("channels_first")
    try:
        assert ImageDataGenerator().data_format == "channels_first"
    finally:
        backend.set_image_data_format(previous)
    assert ImageDataGenerator().data_format == previous


def test_inputs_are_never_modified():
    x = (images() * 255).astype(np.uint8)
    y = np.arange(len(x))
    x0, y0 = x.copy(), y.copy()
    datagen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                                 samplewise_center=True, rescale=1 / 255, rotation_range=10,
                                 channel_shift_range=5, brightness_range=[0.5, 1.5],
                                 horizontal_flip=True)
    datagen.fit(x, augment=True)
    next(datagen.flow(x, y, batch_size=4))
    datagen.standardize(x)
    datagen.random_transform(x[0])
    xf = x.astype(np.float32)
    xf0 = xf.copy()
    next(datagen.flow(xf, y, batch_size=6))
    datagen.standardize(xf)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(xf, xf0)


def test_dtype_and_subsets():
    x, y = indexed(50), np.arange(50) % 5
    datagen = ImageDataGenerator(validation_split=0.2, dtype="float64")
    val = datagen.flow(x, y, batch_size=100, shuffle=False, subset="validation")[0]
    train = datagen.flow(x, y, batch_size=100, shuffle=False, subset="training")[0]
    assert val[0].dtype == np.float64
    np.testing.assert_array_equal(val[0][:, 0, 0, 0], np.arange(10))
    np.testing.assert_array_equal(train[0][:, 0, 0, 0], np.arange(10, 50))
    with pytest.raises(ValueError, match="different classes"):
        datagen.flow(x, np.arange(50) // 10, subset="training")


def test_lecture_pipeline_steps():
    x, y = indexed(300, (28, 28, 1)), np.arange(300) % 10
    datagen = ImageDataGenerator(**LECTURE_MNIST)
    datagen.fit(x)
    batches = datagen.flow(x, y, batch_size=64)
    for _ in range(x.shape[0] // 64):
        xb, yb = next(batches)
        assert xb.shape == (64, 28, 28, 1) and yb.shape == (64,)


# --- argument checking --------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(rotation_range=-1), "rotation_range must be a non-negative number"),
    (dict(width_shift_range=-0.1), "width_shift_range"),
    (dict(height_shift_range=[]), "height_shift_range"),
    (dict(height_shift_range="a"), "height_shift_range"),
    (dict(shear_range=-5), "shear_range"),
    (dict(channel_shift_range=float("nan")), "channel_shift_range"),
    (dict(zoom_range=-0.1), "zoom_range"),
    (dict(zoom_range=1.5), "zoom_range"),
    (dict(zoom_range=[1.2, 0.8]), "zoom_range"),
    (dict(zoom_range=[0.8, 1.2, 1.3]), "zoom_range"),
    (dict(zoom_range=[0, 1]), "zoom_range"),
    (dict(brightness_range=0.5), "brightness_range"),
    (dict(fill_mode="mirror"), "fill_mode must be one of"),
    (dict(cval="x"), "cval"),
    (dict(rescale="1/255"), "rescale"),
    (dict(preprocessing_function=3), "preprocessing_function"),
    (dict(data_format="nhwc"), "data_format"),
    (dict(validation_split=1.0), "validation_split"),
    (dict(dtype="int32"), "dtype"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageDataGenerator(**kwargs)


def test_zca_whitening_is_not_implemented():
    with pytest.raises(NotImplementedError, match="zca_whitening"):
        ImageDataGenerator(zca_whitening=True)


def test_bad_data_raises_value_error():
    datagen = ImageDataGenerator()
    x = images(4)
    with pytest.raises(ValueError, match="4-D"):
        datagen.flow(x[0])
    with pytest.raises(ValueError, match="4-D"):
        datagen.fit(x[..., 0])
    with pytest.raises(ValueError, match="channels on axis 3"):
        datagen.flow(x.transpose(0, 3, 1, 2).repeat(2, axis=2))
    with pytest.raises(ValueError, match="same length"):
        datagen.flow(x, np.arange(3))
    with pytest.raises(ValueError, match="same length"):
        datagen.flow(x, np.arange(4), sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="batch_size"):
        datagen.flow(x, batch_size=0)
    with pytest.raises(ValueError, match="subset"):
        datagen.flow(x, subset="test")
    with pytest.raises(ValueError, match="validation_split"):
        datagen.flow(x, subset="validation")
    with pytest.raises(ValueError, match="3-D"):
        datagen.apply_transform(x, IDENTITY)
    with pytest.raises(ValueError, match="rounds"):
        datagen.fit(x, rounds=0)
    fitted = ImageDataGenerator(featurewise_center=True)
    fitted.fit(x)
    with pytest.raises(ValueError, match="fit on 3 channels"):
        fitted.standardize(x[..., :1])
