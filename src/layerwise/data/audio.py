"""Audio: WAV files to fixed-length mono waves, log-mel spectrograms, SpecAugment (FSDD: fsdd.py).

A folder with one sub-folder of WAV files per class becomes Data of kind "audio": waves [N, samples] at
one sample rate (files at another rate or in stereo are converted, and said so once; unreadable files
are skipped and named). `AudioPre` turns waves into standardised log-mel spectrograms [N, 1, mels, frames]
(torch.stft and librosa's mel filterbank); `SpecAugment` masks them during training.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import describe_defaults, fill_defaults
from ..errors import DataError
from .base import Preprocessor

WAV_EXTS = {".wav", ".wave"}
N_FFT = 512



# ---------------------------------------------------------------- reading


def is_audio_path(p: str | Path) -> bool:
    return Path(p).suffix.lower() in WAV_EXTS


def has_audio(root: Path, per_folder: int = 50) -> bool:
    """Whether a folder holds WAV files in its sub-folders, i.e. is an audio data set (looks at a few files)."""
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            for i, f in enumerate(sub.rglob("*")):
                if is_audio_path(f):
                    return True
                if i >= per_folder:
                    break
    return False


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples as float32 [N, channels] in [-1, 1] and the file's rate (soundfile, else scipy).

    Raises ValueError naming the file when it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file {str(path)!r} does not exist; check the path.")
    try:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except ImportError:
        data = None
    except (OSError, RuntimeError, ValueError, TypeError, EOFError):  # LibsndfileError is a RuntimeError
        raise ValueError(f"{str(path)!r} is not a readable WAV file") from None
    if data is None:
        from scipy.io import wavfile

        try:
            rate, data = wavfile.read(str(path))
        except (OSError, ValueError, EOFError, TypeError):
            raise ValueError(f"{str(path)!r} is not a readable WAV file") from None
        if data.dtype == np.uint8:
            data = (data.astype(np.float32) - 128.0) / 128.0
        elif np.issubdtype(data.dtype, np.integer):
            data = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
        data = np.asarray(data, dtype=np.float32)
        data = data[:, None] if data.ndim == 1 else data
    if data.size == 0:
        raise ValueError(f"{str(path)!r} holds no samples")
    return data, int(rate)


def to_mono(data: np.ndarray, rate: int, sr: int) -> np.ndarray:
    """[N, channels] at `rate` to a float32 mono wave at `sr` (channels averaged, polyphase resampling)."""
    wave = data.mean(axis=1).astype(np.float32) if data.ndim == 2 else np.asarray(data, np.float32)
    if rate != sr:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), int(rate))
        wave = resample_poly(wave, sr // g, rate // g).astype(np.float32)
    return wave


def read_wav(path: str | Path, sr: int = 16000) -> np.ndarray:
    """One WAV file as a float32 mono wave at rate sr (channels averaged, resampled if needed)."""
    data, rate = read_audio(path)
    return to_mono(data, rate, sr)


def pad_or_crop(wave: np.ndarray, n: int) -> np.ndarray:
    """Exactly n samples: a longer wave keeps its centre, a shorter one is zero-padded on both sides."""
    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) >= n:
        start = (len(wave) - n) // 2
        return wave[start : start + n].copy()
    left = (n - len(wave)) // 2
    return np.pad(wave, (left, n - len(wave) - left))


class Waves(np.ndarray):
    """Fixed-length mono waves [N, samples] (float32) that keep their sample rate `sr` through slicing."""

    def __new__(cls, x: Any, sr: int):
        obj = np.asarray(x, dtype=np.float32).view(cls)
        obj.sr = int(sr)
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.sr = getattr(obj, "sr", None)


def _shown(paths: list[str], k: int = 3) -> str:
    return ", ".join(map(repr, paths[:k])) + (f" and {len(paths) - k} more" if len(paths) > k else "")


def read_clips(files: list[Path], sample_rate: int | None = None, seconds: float | None = None
               ) -> tuple[Waves, list[int], list[str]]:
    """Read WAV files into Waves of one rate and length; returns them, the indices kept, and notes.

    The rate defaults to the most common one among the files, the length to the 95th percentile of their
    durations (rounded up to 0.1 s): longer clips keep their centre, shorter ones are zero-padded.
    """
    raw, kept, skipped = [], [], []
    for i, f in enumerate(files):
        try:
            raw.append(read_audio(f))
            kept.append(i)
        except ValueError:
            skipped.append(str(f))
    if not raw:
        raise DataError(f"none of the {len(files)} WAV files could be read (e.g. {skipped[0]!r}); check the files.")
    sr = int(sample_rate or Counter(r for _, r in raw).most_common(1)[0][0])
    notes = []
    if skipped:
        notes.append(f"warning: skipped {len(skipped)} unreadable WAV file{'s' if len(skipped) > 1 else ''}: "
                     f"{_shown(skipped)}; replace or remove {'them' if len(skipped) > 1 else 'it'}.")
    stereo = sum(d.shape[1] > 1 for d, _ in raw)
    other = sum(r != sr for _, r in raw)
    converted = sum(d.shape[1] > 1 or r != sr for d, r in raw)
    if converted:
        what = ([f"{other} at another sample rate"] if other else []) + ([f"{stereo} in stereo"] if stereo else [])
        notes.append(f"converted {converted} of {len(raw)} WAV files to {sr} Hz mono ({' and '.join(what)}).")
    waves = [to_mono(d, r, sr) for d, r in raw]
    if seconds is None:
        seconds = max(0.1, math.ceil(np.percentile([len(w) for w in waves], 95) / sr * 10 - 1e-6) / 10)
    n = max(1, round(seconds * sr))
    out = Waves(np.stack([pad_or_crop(w, n) for w in waves]), sr)
    notes.insert(0, f"{len(out)} audio clips at {sr} Hz, padded or cropped to {seconds:g} s")
    return out, kept, notes


def reclip(d: Any, sample_rate: int | None = None, seconds: float | None = None):
    """Audio Data (and its test part) resampled to `sample_rate` and padded or cropped to `seconds`."""
    from .base import Data

    if d is None or d.kind != "audio" or (sample_rate is None and seconds is None):
        return d
    sr = int(sample_rate or d.x.sr)
    n = max(1, round(seconds * sr)) if seconds else round(d.x.shape[1] * sr / d.x.sr)
    if sr == d.x.sr and n == d.x.shape[1]:
        return Data("audio", d.x, d.y, d.target, reclip(d.test, sr, n / sr), d.source, d.notes)
    waves = Waves(np.stack([pad_or_crop(to_mono(w, d.x.sr, sr), n) for w in np.asarray(d.x)]), sr)
    notes = d.notes + [f"audio: {sr} Hz, {n / sr:g} s clips (as set)"]
    return Data("audio", waves, d.y, d.target, reclip(d.test, sr, n / sr), d.source, notes)


def load_folder(root: str | Path, sample_rate: int | None = None, seconds: float | None = None):
    """A folder with one sub-folder of WAV files per class as Data of kind "audio"."""
    from .base import Data

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"audio folder {str(root)!r} does not exist; pass a folder with one sub-folder per class.")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for c in classes:
        for f in sorted((root / c).rglob("*")):
            if f.is_file() and is_audio_path(f):
                files.append(f)
                labels.append(c)
    if not files:
        raise DataError(f"no .wav files found in the sub-folders of {str(root)!r}; put one sub-folder per class "
                        "with WAV files inside.")
    waves, kept, notes = read_clips(files, sample_rate, seconds)
    y = np.array([labels[i] for i in kept])
    if len(set(y.tolist())) < 2:
        raise DataError(f"audio folder {str(root)!r} has readable WAV files in only one class ({str(y[0])!r}); a "
                        "classifier needs at least two sub-folders of audio.")
    return Data("audio", waves, y, notes=notes)


# ---------------------------------------------------------------- features


class LogMel(torch.nn.Module):
    """Waves [B, N] to log-mel spectrograms [B, 1, n_mels, T] (25 ms Hann windows every 10 ms by default)."""

    def __init__(self, sr: int, n_fft: int = N_FFT, hop: int | None = None, n_mels: int = 64, fmin: float = 0.0,
                 fmax: float | None = None, win: int | None = None):
        super().__init__()
        fmax = sr / 2 if fmax is None else fmax
        if not 0 <= fmin < fmax <= sr / 2:
            raise ValueError(f"mel range fmin={fmin}, fmax={fmax} is invalid at sr={sr}; "
                             f"need 0 <= fmin < fmax <= sr/2 = {sr / 2}.")
        self.sr, self.n_fft, self.n_mels = int(sr), int(n_fft), int(n_mels)
        self.win = min(self.n_fft, win or round(0.025 * sr))
        self.hop = int(hop or max(1, round(0.010 * sr)))
        self.register_buffer("fb", torch.as_tensor(mel_filterbank(sr, self.n_fft, self.n_mels, fmin, fmax)))
        self.register_buffer("window", torch.hann_window(self.win))

    def frames(self, n_samples: int) -> int:
        """Number of time frames T for a wave of n_samples."""
        return 1 + n_samples // self.hop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() == 1:
            x = x[None]
        spec = torch.stft(x.float(), self.n_fft, hop_length=self.hop, win_length=self.win, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        mel = torch.matmul(self.fb, spec.abs().pow(2))
        return torch.log(mel + 1e-6).unsqueeze(1)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """librosa's (Slaney) mel filterbank [n_mels, n_fft // 2 + 1] as float32."""
    try:
        import librosa
    except ImportError:
        raise DataError("audio needs librosa for its mel filterbank; install it: pip install 'layerwise[audio]'.") \
            from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    empty = int((fb.max(axis=1) == 0).sum())
    if empty:
        warnings.warn(f"{empty} of {n_mels} mel bands are empty with n_fft={n_fft} at sr={sr}; "
                      "use fewer n_mels or a larger n_fft.", stacklevel=2)
    return fb.astype(np.float32)


class AudioPre(Preprocessor):
    """Waves to log-mel spectrograms [N, 1, n_mels, frames], standardised per mel band with training statistics."""

    kind = "audio"

    def __init__(self, sr: int, n_samples: int, n_mels: int = 40, mean: list[float] | None = None,
                 std: list[float] | None = None, n_fft: int = N_FFT):
        self.sr, self.n_samples, self.n_mels, self.n_fft = int(sr), int(n_samples), int(n_mels), int(n_fft)
        self.mean, self.std = mean, std
        self._logmel = None

    @classmethod
    def fit(cls, d: Any, cfg: Any = None) -> AudioPre:
        """Mel-band statistics of the training clips (--n-mels bands)."""
        n_mels = cfg.n_mels if cfg is not None else 40
        waves = d.x
        sr = getattr(waves, "sr", None)
        if sr is None:
            raise DataError("audio waves must come with their sample rate; load them with layerwise.data.audio.")
        pre = cls(sr, waves.shape[1], n_mels)
        spec = pre.spectrogram(waves)
        pre.mean = spec.mean(axis=(0, 1, 3)).tolist()
        pre.std = np.maximum(spec.std(axis=(0, 1, 3)), 1e-3).tolist()
        return pre

    def to_dict(self) -> dict:
        return {"kind": self.kind, "sr": self.sr, "n_samples": self.n_samples, "n_mels": self.n_mels,
                "n_fft": self.n_fft, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> AudioPre:
        return cls(d["sr"], d["n_samples"], d["n_mels"], d["mean"], d["std"], d.get("n_fft", N_FFT))

    @property
    def frames(self) -> int:
        return 1 + self.n_samples // max(1, round(0.010 * self.sr))

    @property
    def shape(self) -> list[int]:
        return [1, self.n_mels, self.frames]

    def spec(self) -> dict:
        return {"kind": self.kind, "shape": self.shape, "sample_rate": self.sr}

    def spectrogram(self, waves: np.ndarray, batch: int = 256) -> np.ndarray:
        """Log-mel spectrograms [N, 1, n_mels, frames] of waves [N, n_samples] (not standardised)."""
        if self._logmel is None:
            self._logmel = LogMel(self.sr, self.n_fft, n_mels=self.n_mels)
        out = []
        with torch.no_grad():
            for i in range(0, len(waves), batch):
                out.append(self._logmel(torch.as_tensor(np.asarray(waves[i:i + batch], np.float32))).numpy())
        return np.concatenate(out) if out else np.zeros((0, *self.shape), np.float32)

    def transform(self, x: Any) -> tuple[np.ndarray]:
        """Standardised spectrograms of waves [N, samples] (other lengths are padded or cropped)."""
        waves = np.asarray(x, dtype=np.float32)
        if waves.ndim == 1:
            waves = waves[None]
        if waves.ndim != 2:
            raise DataError(f"audio inputs must be waves [N, samples], got shape {waves.shape}.")
        if waves.shape[1] != self.n_samples:
            waves = np.stack([pad_or_crop(w, self.n_samples) for w in waves])
        spec = self.spectrogram(waves)
        mean = np.asarray(self.mean, np.float32)[None, None, :, None]
        std = np.asarray(self.std, np.float32)[None, None, :, None]
        return (np.ascontiguousarray((spec - mean) / std, dtype=np.float32),)

    def defaults(self, cfg: Any, n_train: int, given: set) -> str | None:
        """Audio data sets are a few thousand clips: batches of 32 (unless set) give the CRNN enough steps."""
        if n_train < 20000 and cfg.batch_size > 32:
            return describe_defaults("audio", fill_defaults(cfg, {"batch_size": 32}, given))
        return None

    def read_inputs(self, x: Any, target: str | None = None):
        """Predict inputs: WAV paths (or folders of them) read at the model's rate, or waves at that rate."""
        from .base import Data

        if isinstance(x, (str, Path)):
            x = [x]
        if isinstance(x, (list, tuple)) and x and all(isinstance(p, (str, Path)) for p in x):
            files = []
            for p in map(Path, x):
                if p.is_dir():
                    files += sorted(f for f in p.rglob("*") if is_audio_path(f))
                elif not p.exists():
                    raise DataError(f"input file {str(p)!r} does not exist; check the path.")
                else:
                    files.append(p)
            if not files:
                raise DataError(f"no WAV files in {', '.join(map(str, x[:3]))}; give .wav files.")
            waves = []
            for f in files:
                try:
                    waves.append(pad_or_crop(read_wav(f, self.sr), self.n_samples))
                except ValueError as e:
                    raise DataError(f"{e}; give WAV files (PCM) to predict.") from None
            return Data("audio", Waves(np.stack(waves), self.sr), None)
        return Data("audio", Waves(np.atleast_2d(np.asarray(x, np.float32)), self.sr), None)


# ---------------------------------------------------------------- SpecAugment


def _band_mask(b: int, size: int, count: int, width: int, gen):
    """Bool [b, size]: `count` random bands per row, each 0..width wide (SpecAugment, Park et al. 2019)."""
    width = min(width, size)
    w = torch.randint(0, width + 1, (b, count, 1), generator=gen)
    start = (torch.rand((b, count, 1), generator=gen) * (size - w + 1)).long()
    pos = torch.arange(size).view(1, 1, size)
    return ((pos >= start) & (pos < start + w)).any(dim=1)


def spec_augment(spec, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 10,
                 generator=None, fill: str = "mean"):
    """Mask random frequency and time bands of [B, 1, F, T] spectrograms with each one's mean (or zero)."""
    if spec.dim() != 4:
        raise ValueError(f"spec_augment expects spectrograms [B, 1, F, T], got shape {tuple(spec.shape)}.")
    if fill not in ("mean", "zero"):
        raise ValueError(f"fill must be 'mean' or 'zero', got {fill!r}.")
    b, _, f, t = spec.shape
    fm = _band_mask(b, f, freq_masks, freq_width, generator).to(spec.device)
    tm = _band_mask(b, t, time_masks, time_width, generator).to(spec.device)
    mask = (fm[:, :, None] | tm[:, None, :])[:, None]
    value = spec.mean(dim=(1, 2, 3), keepdim=True) if fill == "mean" else torch.zeros_like(spec[:, :1, :1, :1])
    return torch.where(mask, value.expand_as(spec), spec)


class SpecAugment:
    """Training callback: two frequency and two time masks (each up to 1/8 of the axis) on every batch,
    drawn from a generator seeded by the run seed and epoch so that a resumed run sees the same masks."""

    def __init__(self, masks: int = 2, fraction: float = 0.125):
        self.masks, self.fraction = masks, fraction
        self.generator = torch.Generator()

    def on_epoch_start(self, loop: Any) -> None:
        if loop.batch_idx == 0:
            self.generator.manual_seed(loop.cfg.seed * 7907 + loop.epoch)

    def on_batch_start(self, loop: Any) -> None:
        x = loop.inputs[0]
        f, t = x.shape[-2:]
        x = spec_augment(x, self.masks, max(1, round(f * self.fraction)), self.masks, max(1, round(t * self.fraction)),
                         self.generator)
        loop.inputs = loop.batch_inputs((x, *loop.inputs[1:]))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
