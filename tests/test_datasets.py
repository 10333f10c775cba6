"""fastconv.datasets: Keras-shaped MNIST and CIFAR-10, found, checked and downloaded as documented.

The real CIFAR-10 files come from $FASTCONV_DATA (those tests skip without it). Downloads are
served from local bytes by replacing ``_files._urlopen``, so no test touches the network or the
real cache.
"""
import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from fastconv import backend
from fastconv._config import cache_dir
from fastconv.datasets import CorruptDatasetError, DatasetNotFoundError, _files, cifar10, mnist

SHARED = os.environ.get("FASTCONV_DATA")  # read before the fixtures below unset it
PACKAGED = mnist._DATASET.packaged
MIRROR_1, MIRROR_2 = mnist._MIRRORS
MNIST_GZ = [f"{name}.gz" for name in mnist._DATASET.files]
CIFAR_NAMES = list(cifar10._DATASET.files)


def _shared(sub):
    """The folder $FASTCONV_DATA/sub, or skip saying why."""
    if not SHARED:
        pytest.skip("FASTCONV_DATA is not set (point it at a folder holding mnist/ and cifar10/)")
    folder = Path(SHARED, sub)
    if not folder.is_dir():
        pytest.skip(f"no {sub}/ in FASTCONV_DATA={SHARED}")
    return folder


def _no_network(url):
    raise AssertionError(f"test tried to open {url}")


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    """No $FASTCONV_DATA, an empty cache under tmp_path, and no network: the cache folder."""
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    monkeypatch.delenv("FASTCONV_OFFLINE", raising=False)
    monkeypatch.setenv("FASTCONV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(_files, "_urlopen", _no_network)
    return tmp_path / "cache"


@pytest.fixture
def channels_first():
    old = backend.image_data_format()
    backend.set_image_data_format("channels_first")
    yield
    backend.set_image_data_format(old)


@pytest.fixture(scope="module")
def mnist_arrays(tmp_path_factory):
    """MNIST from the copy shipped with fastconv."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FASTCONV_DATA", raising=False)
        mp.setenv("FASTCONV_CACHE", str(tmp_path_factory.mktemp("empty")))
        mp.setenv("FASTCONV_OFFLINE", "1")
        return mnist.load_data()


@pytest.fixture(scope="module")
def cifar_arrays():
    """CIFAR-10 (channels_last) from $FASTCONV_DATA."""
    _shared("cifar10")
    old = backend.image_data_format()
    backend.set_image_data_format("channels_last")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FASTCONV_DATA", SHARED)
            mp.setenv("FASTCONV_OFFLINE", "1")
            return cifar10.load_data()
    finally:
        backend.set_image_data_format(old)


def _serve(monkeypatch, responses):
    """Make ``_urlopen(url)`` return ``responses(url)``'s bytes; the list of URLs opened."""
    opened = []

    def urlopen(url):
        opened.append(url)
        return io.BytesIO(responses(url))

    monkeypatch.setattr(_files, "_urlopen", urlopen)
    return opened


def _packaged_bytes(url):
    return (PACKAGED / url.rsplit("/", 1)[1]).read_bytes()


@pytest.fixture
def unshipped(monkeypatch):
    """MNIST as if no copy shipped with fastconv."""
    monkeypatch.setattr(mnist, "_DATASET", dataclasses.replace(mnist._DATASET, packaged=None))


def _same(a, b):
    """Equal shapes, dtypes and values (np.testing's comparison takes seconds on CIFAR-10)."""
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def _assert_fresh(*arrays):
    for a in arrays:
        assert a.dtype == np.uint8 and a.flags.writeable and a.flags.owndata
        assert a.flags.c_contiguous


# ---- MNIST -----------------------------------------------------------------------------------

def test_mnist_from_the_shipped_copy(mnist_arrays):
    assert all(p.parent == PACKAGED for p in _files.locate(mnist._DATASET).values())
    (x_train, y_train), (x_test, y_test) = mnist_arrays
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    _assert_fresh(x_train, y_train, x_test, y_test)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842,
                                             5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x_train.mean() == pytest.approx(33.318, abs=1e-3)
    assert x_train.max() == 255 and mnist.CLASS_NAMES[y_train[0]] == "5"


def test_mnist_from_fastconv_data_equals_the_shipped_copy(monkeypatch, mnist_arrays):
    folder = _shared("mnist")
    monkeypatch.setenv("FASTCONV_DATA", SHARED)
    assert all(p.parent == folder for p in _files.locate(mnist._DATASET).values())
    for got, expected in zip(mnist.load_data(), mnist_arrays):
        assert _same(got[0], expected[0])
        assert _same(got[1], expected[1])


def test_explicit_path_with_plain_and_gzipped_files_in_a_subfolder(tmp_path, mnist_arrays):
    folder = tmp_path / "data" / "mnist"
    shutil.copytree(PACKAGED, folder)
    plain = folder / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert _files.locate(mnist._DATASET, tmp_path / "data")["t10k-labels-idx1-ubyte"] == plain
    (_, _), (_, y_test) = mnist.load_data(path=str(tmp_path / "data"))
    assert _same(y_test, mnist_arrays[1][1])


def _flip(data, at):
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


LABELS = "t10k-labels-idx1-ubyte"  # 8-byte header (0x801, 10000), then 10000 labels
LABELS_SHA256 = mnist._SHA256[LABELS][1]


@pytest.mark.parametrize("corrupt, match", [
    (lambda gz, raw: _flip(gz, len(gz) // 2), "bad gzip data"),
    (lambda gz, raw: gz[:-100], "bad gzip data"),
    (lambda gz, raw: raw, "bad gzip data"),
    (lambda gz, raw: gzip.compress(raw[:-1]), "10007 bytes, expected 10008"),
    (lambda gz, raw: gzip.compress(struct.pack(">I", 0x803) + raw[4:]),
     "magic number is 0x00000803, expected 0x00000801"),
    (lambda gz, raw: gzip.compress(raw[:4] + struct.pack(">I", 9999) + raw[8:]),
     r"shape \(9999,\), expected \(10000,\)"),
    (lambda gz, raw: gzip.compress(raw[:50] + b"\x0a" + raw[51:]), "label 10 is out of range"),
    (lambda gz, raw: gzip.compress(_flip(raw, 100)),
     f"sha256 of the content is [0-9a-f]{{64}}, expected {LABELS_SHA256}.*layout is valid"),
], ids=["flipped gzip byte", "truncated gzip", "not gzip", "truncated content", "wrong magic",
        "wrong count", "label out of range", "checksum mismatch"])
def test_corrupt_mnist_file_is_an_error_naming_it(tmp_path, corrupt, match):
    shutil.copytree(PACKAGED, tmp_path / "mnist")
    file = tmp_path / "mnist" / f"{LABELS}.gz"
    gz = file.read_bytes()
    file.write_bytes(corrupt(gz, gzip.decompress(gz)))
    with pytest.raises(CorruptDatasetError, match=match) as info:
        mnist.load_data(path=tmp_path)
    assert str(info.value).startswith(f"{file}: ")


@pytest.mark.parametrize("path", ["empty", "missing", "partial"])
def test_explicit_path_without_the_files_is_an_error(tmp_path, cache, path):
    folder = tmp_path / path
    if path != "missing":
        folder.mkdir()
    if path == "partial":
        shutil.copy(PACKAGED / MNIST_GZ[0], folder)
    with pytest.raises(DatasetNotFoundError, match="MNIST files not found in path=") as info:
        mnist.load_data(path=folder)
    message = str(info.value)
    assert str(folder) in message and "FASTCONV_DATA" in message
    assert all(name in message for name in mnist._DATASET.files)
    assert not cache.exists()  # no download attempted


def test_offline_with_nothing_found_is_a_clear_error(monkeypatch, unshipped, cache):
    monkeypatch.setenv("FASTCONV_OFFLINE", "1")
    for module, sub in [(mnist, "mnist"), (cifar10, "cifar10")]:
        with pytest.raises(DatasetNotFoundError) as info:
            module.load_data()
        message = str(info.value)
        assert "$FASTCONV_DATA: not set" in message and str(cache / sub) in message
        assert "FASTCONV_OFFLINE is set" in message and "load_data(path=DIR)" in message
    assert not cache.exists()


# ---- downloads (served from local bytes) -----------------------------------------------------

def test_download_fills_the_cache_and_loads(monkeypatch, unshipped, cache, mnist_arrays):
    opened = _serve(monkeypatch, _packaged_bytes)
    for got, expected in zip(mnist.load_data(), mnist_arrays):
        assert _same(got[0], expected[0])
        assert _same(got[1], expected[1])
    assert opened == [MIRROR_1 + name for name in MNIST_GZ]
    assert sorted(os.listdir(cache / "mnist")) == sorted(MNIST_GZ)
    mnist.load_data()
    assert len(opened) == 4  # the second load reads the cache


def test_download_fetches_only_what_the_cache_lacks(monkeypatch, unshipped, cache):
    (cache / "mnist").mkdir(parents=True)
    for name in MNIST_GZ[:3]:
        shutil.copy(PACKAGED / name, cache / "mnist")
    opened = _serve(monkeypatch, _packaged_bytes)
    mnist.load_data()
    assert opened == [MIRROR_1 + MNIST_GZ[3]]


def test_first_mirror_failing_uses_the_second(monkeypatch, unshipped, cache):
    def responses(url):
        if url.startswith(MIRROR_1):
            raise urllib.error.URLError("connection refused")
        return _packaged_bytes(url)

    opened = _serve(monkeypatch, responses)
    mnist.load_data()
    assert opened == [mirror + name for name in MNIST_GZ for mirror in (MIRROR_1, MIRROR_2)]


def test_downloaded_bad_bytes_are_a_checksum_error_and_leave_nothing(monkeypatch, unshipped,
                                                                     cache):
    opened = _serve(monkeypatch, lambda url: _flip(_packaged_bytes(url), 1000))
    expected = mnist._SHA256["train-images-idx3-ubyte"][0]
    with pytest.raises(CorruptDatasetError, match=f"sha256 of {MNIST_GZ[0]} is [0-9a-f]{{64}}, "
                                                  f"expected {expected}"):
        mnist.load_data()
    assert opened == [MIRROR_1 + MNIST_GZ[0], MIRROR_2 + MNIST_GZ[0]]
    assert list((cache / "mnist").iterdir()) == []


def test_unreachable_mirrors_give_the_not_found_error(monkeypatch, unshipped, cache):
    def responses(url):
        raise urllib.error.URLError("no route to host")

    _serve(monkeypatch, responses)
    with pytest.raises(DatasetNotFoundError, match="Download into .* failed") as info:
        mnist.load_data()
    assert MIRROR_1 in str(info.value) and MIRROR_2 in str(info.value)
    assert list((cache / "mnist").iterdir()) == []


@pytest.mark.parametrize("env, expected", [
    ({"FASTCONV_CACHE": "C", "XDG_CACHE_HOME": "X"}, "C"),
    ({"XDG_CACHE_HOME": "X"}, "X/fastconv"),
    ({"FASTCONV_CACHE": "", "XDG_CACHE_HOME": ""}, "H/.cache/fastconv"),
])
def test_cache_dir(monkeypatch, tmp_path, env, expected):
    monkeypatch.delenv("FASTCONV_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "H"))
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value) if value else "")
    assert cache_dir() == tmp_path / expected


def _tar(members):
    """An uncompressed tar archive holding ``members``: (name, bytes or TarInfo) pairs."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            if isinstance(data, tarfile.TarInfo):
                tar.addfile(data)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _serve_tar(monkeypatch, archive):
    monkeypatch.setattr(cifar10, "_TAR_MD5", hashlib.md5(archive).hexdigest())
    return _serve(monkeypatch, lambda url: archive if url == cifar10._URL else _no_network(url))


HOSTILE = [("../escape.bin", b"x"), ("/tmp/escape.bin", b"x"),
           ("cifar-10-batches-bin/../../escape.bin", b"x"),
           ("", _symlink("cifar-10-batches-bin/data_batch_1.bin", "/etc/passwd"))]


@pytest.mark.parametrize("junk, match", [
    (False, "cifar-10-binary.tar.gz lacks cifar-10-batches-bin/data_batch_1.bin, "),
    (True, "sha256 of cifar-10-batches-bin/data_batch_2.bin in cifar-10-binary.tar.gz is"),
], ids=["hostile members only", "member with wrong content"])
def test_cifar_archive_members_cannot_escape_and_are_checked(monkeypatch, tmp_path, cache, junk,
                                                             match):
    junk_member = [("cifar-10-batches-bin/data_batch_2.bin", b"junk")] if junk else []
    _serve_tar(monkeypatch, _tar(HOSTILE + junk_member))
    with pytest.raises(CorruptDatasetError, match=match):
        cifar10.load_data()
    assert list((cache / "cifar10").iterdir()) == []
    assert not list(tmp_path.rglob("escape.bin"))


def test_cifar_download_with_a_bad_archive_leaves_nothing(monkeypatch, cache):
    _serve(monkeypatch, lambda url: b"not the archive")
    with pytest.raises(CorruptDatasetError, match=f"md5 of cifar-10-binary.tar.gz is [0-9a-f]{{32}}"
                                                  f", expected {cifar10._TAR_MD5}"):
        cifar10.load_data()
    assert list((cache / "cifar10").iterdir()) == []


def test_cifar_download_extracts_what_the_cache_lacks_and_loads(monkeypatch, cache, cifar_arrays):
    shared = _files.locate(cifar10._DATASET, _shared("cifar10"))
    (cache / "cifar10").mkdir(parents=True)
    for name in CIFAR_NAMES[:-1]:
        (cache / "cifar10" / shared[name].name).symlink_to(shared[name].resolve())
    content = _files._content(shared["test_batch.bin"])
    archive = _tar(HOSTILE + [("cifar-10-batches-bin/test_batch.bin", content)])
    opened = _serve_tar(monkeypatch, archive)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert opened == [cifar10._URL]
    assert (cache / "cifar10" / "test_batch.bin").read_bytes() == content
    assert sorted(os.listdir(cache / "cifar10")) == sorted(  # no archive or .part file left
        [shared[name].name for name in CIFAR_NAMES[:-1]] + ["test_batch.bin"])
    assert x_train.shape == (50000, 32, 32, 3)
    assert _same(x_test, cifar_arrays[1][0])
    assert _same(y_test, cifar_arrays[1][1])
    assert _same(y_train, cifar_arrays[0][1])


# ---- CIFAR-10 --------------------------------------------------------------------------------

def test_cifar10_from_fastconv_data(cifar_arrays):
    (x_train, y_train), (x_test, y_test) = cifar_arrays
    assert x_train.shape == (50000, 32, 32, 3) and y_train.shape == (50000, 1)
    assert x_test.shape == (10000, 32, 32, 3) and y_test.shape == (10000, 1)
    _assert_fresh(x_train, y_train, x_test, y_test)
    assert y_train[:10, 0].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert y_test[:10, 0].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(y_train[:, 0]).tolist() == [5000] * 10
    assert np.bincount(y_test[:, 0]).tolist() == [1000] * 10
    assert cifar10.CLASS_NAMES[y_train[0, 0]] == "frog" and len(cifar10.CLASS_NAMES) == 10


def test_cifar10_first_image_layout(cifar_arrays):
    """Pixel (row, col) of channel c is byte 1 + c*1024 + row*32 + col of the first record."""
    record = _files._content(_files.locate(cifar10._DATASET, _shared("cifar10"))
                             ["data_batch_1.bin"])[:3073]
    planes = np.frombuffer(record, np.uint8)[1:].reshape(3, 32, 32)
    assert _same(cifar_arrays[0][0][0], planes.transpose(1, 2, 0))


def test_cifar10_channels_first(monkeypatch, channels_first, cifar_arrays):
    monkeypatch.setenv("FASTCONV_DATA", SHARED)  # set: cifar_arrays skips otherwise
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (50000, 3, 32, 32) and x_test.shape == (10000, 3, 32, 32)
    _assert_fresh(x_train, x_test)
    assert _same(x_train, cifar_arrays[0][0].transpose(0, 3, 1, 2))
    assert _same(x_test, cifar_arrays[1][0].transpose(0, 3, 1, 2))
    assert _same(y_train, cifar_arrays[0][1])


def _zeros(size=10000 * 3073):
    return np.zeros(size, np.uint8)


def _label_10():
    records = np.zeros((10000, 3073), np.uint8)
    records[5, 0] = 10
    return records


@pytest.mark.parametrize("name, content, match", [
    ("data_batch_1.bin", lambda: _zeros(10000 * 3073 - 1),
     r"30729999 bytes, expected 30730000 \(10000 records of 3073 bytes\)"),
    ("data_batch_1.bin", _label_10, "label 10 is out of range 0..9"),
    ("data_batch_1.bin", _zeros,
     f"sha256 of the content is [0-9a-f]{{64}}, expected {cifar10._SHA256['data_batch_1.bin']}"),
    ("data_batch_1.bin.gz", lambda: _zeros(100), "bad gzip data"),
], ids=["wrong length", "label out of range", "checksum mismatch", "not gzip"])
def test_corrupt_cifar_file_is_an_error_naming_it(tmp_path, name, content, match):
    folder = tmp_path / "cifar-10-batches-bin"  # as the official archive extracts
    folder.mkdir()
    for other in CIFAR_NAMES[1:]:
        (folder / other).write_bytes(b"")  # never read: the first batch fails first
    file = folder / name
    file.write_bytes(content().tobytes())
    with pytest.raises(CorruptDatasetError, match=match) as info:
        cifar10.load_data(path=tmp_path)
    assert str(info.value).startswith(f"{file}: ")
