"""Finding, checking and downloading dataset files: the rules :mod:`fastconv.datasets` describes.

:func:`_urlopen` is the package's only network access.
"""
import gzip
import hashlib
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from fastconv._config import cache_dir

_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are in none of the places searched and could not be downloaded."""


class CorruptDatasetError(ValueError):
    """A dataset file (or download) is damaged, truncated or not the published file."""


@dataclass(frozen=True)
class Dataset:
    """What the locating rule needs to know about one dataset.

    ``subdirs`` are the subfolders of a data folder that may hold the files (the first also
    names the cache subfolder); ``files`` the base names, each stored as NAME or NAME.gz;
    ``download(folder, names)`` fetches those files into ``folder``; ``packaged`` is the copy
    shipped inside the package, if any.
    """

    title: str
    subdirs: tuple
    files: tuple
    download: Callable
    packaged: Path | None = None


def locate(dataset, path=None):
    """``{name: file}`` for every file of ``dataset``, found as :mod:`fastconv.datasets` says."""
    if path is not None:
        root = Path(path).expanduser()
        found, searched = _search([("", folder) for folder in _folders(dataset, root)], dataset)
        if found:
            return found
        raise DatasetNotFoundError(f"{dataset.title} files not found in path={str(path)!r}. "
                                   f"Searched:{searched}\n{_how_to_supply(dataset)}")
    found, searched = _search(_places(dataset), dataset)
    if found:
        return found
    cache = cache_dir() / dataset.subdirs[0]
    if os.environ.get("FASTCONV_OFFLINE", "") not in ("", "0"):
        why = "Not downloaded: FASTCONV_OFFLINE is set."
    else:
        try:
            return _download(dataset, cache)
        except OSError as err:
            why = f"Download into {cache} failed: {err}"
    raise DatasetNotFoundError(f"{dataset.title} files not found. Searched:{searched}\n{why}\n"
                               f"{_how_to_supply(dataset)}")


def _folders(dataset, root):
    """The folders under a data folder ``root`` that may hold the files: itself and subfolders."""
    return [root] + [root / sub for sub in dataset.subdirs]


def _places(dataset):
    """``(label, folder)`` searched when no path is given, in order (folder None: not set)."""
    data = os.environ.get("FASTCONV_DATA")
    places = ([("$FASTCONV_DATA: ", f) for f in _folders(dataset, Path(data).expanduser())]
              if data else [("$FASTCONV_DATA: not set", None)])
    if dataset.packaged is not None:
        places.append(("copy shipped with fastconv: ", dataset.packaged))
    places.append(("download cache: ", cache_dir() / dataset.subdirs[0]))
    return places


def _search(places, dataset):
    """``(files, '')`` from the first folder holding all files, else ``(None, report)``."""
    report = ""
    for label, folder in places:
        if folder is None:
            report += f"\n  {label}"
            continue
        found, problem = _scan(dataset, folder)
        if not problem:
            return found, ""
        report += f"\n  {label}{folder} ({problem})"
    return None, report


def _scan(dataset, folder):
    """``({name: file}, problem)``: the files of ``dataset`` in ``folder``; problem '' if all."""
    if not folder.is_dir():
        return {}, "not a folder" if folder.exists() else "no such folder"
    found = {}
    for name in dataset.files:
        for file in (folder / name, folder / f"{name}.gz"):
            if file.is_file():
                found[name] = file
                break
    missing = [name for name in dataset.files if name not in found]
    if not missing:
        return found, ""
    return found, "missing " + ", ".join(missing) if found else "none of the files"


def _how_to_supply(dataset):
    return (f"To supply the files {', '.join(dataset.files)} (each as NAME or gzip'd NAME.gz), "
            f"put them in DIR/{dataset.subdirs[0]}/ and set FASTCONV_DATA=DIR, "
            f"or pass load_data(path=DIR).")


def _download(dataset, folder):
    """Download the files of ``dataset`` that ``folder`` lacks; return all of them."""
    folder.mkdir(parents=True, exist_ok=True)
    present, _ = _scan(dataset, folder)
    dataset.download(folder, [name for name in dataset.files if name not in present])
    return _scan(dataset, folder)[0]


def read(file, sha256, parse):
    """``parse(content)`` of ``file`` (gunzipped if it ends in .gz), once checked.

    ``parse`` checks the layout, raising ValueError to say what is wrong; then the content's
    sha256 must be ``sha256``. Either failure raises CorruptDatasetError naming the file.
    """
    content = _content(file)
    try:
        result = parse(content)
    except ValueError as err:
        raise CorruptDatasetError(f"{file}: {err}") from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise CorruptDatasetError(
            f"{file}: sha256 of the content is {actual}, expected {sha256}. The layout is valid, "
            f"but this is not the published dataset file (modified or damaged); "
            f"replace it with an intact copy")
    return result


def _content(file):
    data = file.read_bytes()
    if file.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptDatasetError(f"{file}: bad gzip data ({err})") from None


def check_labels(labels, classes):
    """Raise ValueError unless every label is below ``classes``."""
    if labels.size and labels.max() >= classes:
        raise ValueError(f"label {labels.max()} is out of range 0..{classes - 1}")


def _urlopen(url):
    """Open ``url`` for reading: fastconv's only network access."""
    import urllib.request
    return urllib.request.urlopen(url, timeout=60)


def fetch(urls, dest, algorithm, digest):
    """Download ``dest`` from the first of ``urls`` (mirrors) that serves it with ``digest``.

    Raises CorruptDatasetError if a mirror served wrong bytes and none served the right ones,
    OSError if none could be read. Nothing is left at ``dest`` unless the digest matched.
    """
    from http.client import HTTPException
    failures = []
    for url in urls:
        try:
            with _urlopen(url) as response:
                _write_checked(_progress(response, dest.name), dest, algorithm, digest, dest.name)
            return
        except (OSError, HTTPException, CorruptDatasetError) as err:
            failures.append((url, err))
    message = f"could not download {dest.name}:" + "".join(
        f"\n    {url}: {err}" for url, err in failures)
    corrupt = any(isinstance(err, CorruptDatasetError) for _, err in failures)
    raise (CorruptDatasetError if corrupt else OSError)(message)


def fetch_from_archive(url, md5, folder, members):
    """Download the tar archive at ``url`` (md5 ``md5``) and extract ``members`` into ``folder``.

    ``members`` maps member names to the sha256 of their content. Only those exact names, as
    regular files, are read, each written as ``folder/<base name>``, so no member path can
    escape ``folder``. The archive is deleted afterwards.
    """
    archive = folder / url.rsplit("/", 1)[-1]
    fetch([url], archive, "md5", md5)
    try:
        _extract(archive, folder, members)
    finally:
        archive.unlink()


def _extract(archive, folder, members):
    import tarfile
    left = dict(members)
    with tarfile.open(archive, "r|*") as tar:
        for info in tar:
            if info.isfile() and info.name in left:
                _write_checked(_chunks(tar.extractfile(info)),
                               folder / PurePosixPath(info.name).name, "sha256",
                               left.pop(info.name), f"{info.name} in {archive.name}")
    if left:
        raise CorruptDatasetError(f"{archive.name} lacks {', '.join(left)}")


def _chunks(stream):
    while chunk := stream.read(_CHUNK):
        yield chunk


def _progress(response, desc):
    """The chunks of ``response``, shown by a tqdm progress bar."""
    from tqdm import tqdm  # only downloads need it
    with tqdm(total=getattr(response, "length", None), desc=desc, unit="B", unit_scale=True,
              unit_divisor=1024) as bar:
        for chunk in _chunks(response):
            bar.update(len(chunk))
            yield chunk


def _write_checked(chunks, dest, algorithm, expected, what):
    """Write ``chunks`` to a temporary file beside ``dest``, renamed to ``dest`` only if their
    ``algorithm`` digest is ``expected``; on a mismatch or any error it is removed."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with open(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise CorruptDatasetError(f"{algorithm} of {what} is {digest.hexdigest()}, "
                                      f"expected {expected}")
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
