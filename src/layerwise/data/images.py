"""Image files: a folder with one sub-folder per class, or single files given to predict."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def is_image_path(p: str | Path) -> bool:
    return Path(p).suffix.lower() in IMAGE_EXTS


def scan_folder(root: Path) -> tuple[list[Path], list[str]]:
    """List image files and their class (the sub-folder name) under root."""
    if not any(root.iterdir()):
        raise DataError(f"image folder {str(root)!r} is empty; put one sub-folder per class with images inside.")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for c in classes:
        for f in sorted((root / c).rglob("*")):
            if f.is_file() and is_image_path(f):
                files.append(f)
                labels.append(c)
    if not files:
        raise DataError(
            f"no image files (.png, .jpg, ...) found in the sub-folders of {str(root)!r}; "
            "put one sub-folder per class with images inside."
        )
    found = sorted(set(labels))
    if len(found) < 2:
        raise DataError(
            f"image folder {str(root)!r} has only one class ({found[0]!r}); "
            "a classifier needs at least two sub-folders of images."
        )
    return files, labels


def read_images(
    files: list[Path], size: tuple[int, int] | None = None, channels: int | None = None
) -> tuple[np.ndarray, list[int]]:
    """Decode files to uint8 [N, H, W, C], resized to a common size; returns the array and the kept indices.

    Unreadable files are skipped with one warning that names them; if none can be read, an error.
    """
    from PIL import Image, UnidentifiedImageError

    imgs, kept, bad = [], [], []
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im.load()
                imgs.append(im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy())
            kept.append(i)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            bad.append(str(f))
    if bad:
        if not imgs:
            raise DataError(f"none of the {len(files)} image files could be read (first: {bad[0]!r}); check the files.")
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"skipped {len(bad)} unreadable image file(s): {shown}", stacklevel=2)
    if channels is None:
        channels = 1 if all(im.mode == "L" for im in imgs) else 3
    if size is None:
        hs = sorted(im.height for im in imgs)
        ws = sorted(im.width for im in imgs)
        size = (hs[len(hs) // 2], ws[len(ws) // 2])
    h, w = size
    out = np.empty((len(imgs), h, w, channels), dtype=np.uint8)
    mode = "L" if channels == 1 else "RGB"
    for j, im in enumerate(imgs):
        if im.mode != mode:
            im = im.convert(mode)
        if im.size != (w, h):
            im = im.resize((w, h), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        out[j] = a[..., None] if a.ndim == 2 else a
    return out, kept
