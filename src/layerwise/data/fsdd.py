"""The Free Spoken Digit Dataset (3,000 recordings of the digits 0-9 by 6 speakers, 8 kHz): found at
$LAYERWISE_FSDD (a .tar.gz or a folder), in the cache, or downloaded and checked by a digest of its
recordings; the usual split (takes 0-4 of each speaker and digit are the test set)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import DataError
from .audio import is_audio_path, read_clips

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
# sha256 over the sorted lines "<file name> <sha256 of the file>\n" of the 3,000 recordings of v1.0.10:
# GitHub's generated archives are not byte-stable, their contents are.
FSDD_DIGEST = "dbd573d7cafe79c4b49f65718115e1304e24e067fa39eff18a660dc6cb9c360f"


def _fsdd_parts(name: str) -> tuple[str, str, int] | None:
    """(digit, speaker, take) from '{digit}_{speaker}_{take}.wav', or None."""
    parts = Path(name).stem.split("_")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def fsdd_split(files: list[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """The Free Spoken Digit Dataset's usual split: takes 0-4 of each speaker and digit are test."""
    parts = [_fsdd_parts(str(f)) for f in files]
    bad = [str(f) for f, p in zip(files, parts) if p is None]
    if bad:
        raise ValueError(f"{len(bad)} file names do not follow FSDD's '{{digit}}_{{speaker}}_{{take}}.wav' "
                         f"(e.g. {bad[0]!r}); rename them or split the data another way.")
    test = np.array([p[2] < 5 for p in parts], dtype=bool)
    return np.flatnonzero(~test), np.flatnonzero(test)


def _extract(archive: Path, folder: Path) -> None:
    """Extract a tar archive into `folder` through a temporary folder, marking it complete."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fsdd-", dir=folder.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot extract {str(archive)!r} ({type(e).__name__}); check that it is the FSDD tar.gz.") \
            from None


def recordings_digest(files: list[Path]) -> str:
    """sha256 over the sorted lines '<name> <sha256 of the file>' (see FSDD_DIGEST)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name} {hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def _wavs(folder: Path) -> list[Path]:
    files = sorted((f for f in folder.rglob("*") if is_audio_path(f)), key=lambda f: f.name)
    return [f for f in files if _fsdd_parts(f.name) is not None]


def load_fsdd(path: str | Path, cache_dir: str | Path) -> tuple[list[Path], list[str]]:
    """FSDD WAV paths and their digit labels, from its tar.gz (extracted once into cache_dir) or a folder."""
    path = Path(path)
    if path.is_dir():
        folder = path
    elif path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        folder = Path(cache_dir) / "fsdd"
        if not (folder / ".complete").exists():
            _extract(path, folder)
    else:
        raise DataError(f"FSDD source {str(path)!r} is neither a folder nor a .tar.gz file; check the path.")
    files = _wavs(folder)
    if not files:
        raise DataError(f"no FSDD WAV files ('{{digit}}_{{speaker}}_{{take}}.wav') found in {str(path)!r}.")
    return files, [_fsdd_parts(f.name)[0] for f in files]


def download_fsdd(cache_dir: Path, url: str = FSDD_URL, digest: str = FSDD_DIGEST) -> Path:
    """Download FSDD v1.0.10 from GitHub into cache_dir/fsdd, keeping it only if its recordings match `digest`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / "fsdd-download.tar.gz.part"
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(archive, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
    except OSError as e:
        archive.unlink(missing_ok=True)
        raise DataError(f"could not download FSDD from {url} ({e.__class__.__name__}); download it yourself and "
                        "set LAYERWISE_FSDD to the .tar.gz or its folder.") from None
    folder = cache_dir / "fsdd"
    try:
        _extract(archive, folder)
    finally:
        archive.unlink(missing_ok=True)
    if recordings_digest(_wavs(folder)) != digest:
        shutil.rmtree(folder, ignore_errors=True)
        raise DataError(f"the FSDD download from {url} does not hold the expected recordings (checksum); try "
                        "again, or set LAYERWISE_FSDD to a local copy.")
    return folder


def fsdd_source() -> tuple[Path, Path]:
    """(source, cache): $LAYERWISE_FSDD (a .tar.gz or folder), else the cache, else a checked download."""
    from .base import cache_dir

    cache = cache_dir()
    env = os.environ.get("LAYERWISE_FSDD")
    if env:
        if not Path(env).exists():
            raise DataError(f"LAYERWISE_FSDD points to {env!r}, which does not exist; fix or unset it.")
        return Path(env), cache
    if (cache / "fsdd" / ".complete").exists():
        return cache / "fsdd", cache
    return download_fsdd(cache), cache


def fsdd():
    """The Free Spoken Digit Dataset (3,000 recordings of 0-9, 8 kHz) with its usual test split (takes 0-4)."""
    from .base import Data

    files, labels = load_fsdd(*fsdd_source())
    _, test = fsdd_split(files)
    waves, kept, notes = read_clips(files)
    y = np.array(labels)[kept]
    is_test = np.isin(np.asarray(kept), test)
    test_part = Data("audio", waves[is_test], y[is_test])
    notes.append(f"FSDD: takes 0-4 of each speaker and digit are the test set ({int(is_test.sum())} clips)")
    return Data("audio", waves[~is_test], y[~is_test], test=test_part, notes=notes)
