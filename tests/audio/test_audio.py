"""Audio: WAV reading and conversion, log-mel, SpecAugment, FSDD loading, and a folder of WAVs end to end."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

import layerwise as lw
from layerwise.cli import main
from layerwise.data import audio, fsdd
from layerwise.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
QUIET = {"progress": False, "tensorboard": False, "threads": 1, "quiet": True}


def _tone(path: Path, freq: float, rate: int = 8000, seconds: float = 0.3, stereo: bool = False,
          seed: int = 0) -> Path:
    g = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t + g.uniform(0, 6)) + 0.05 * g.normal(size=len(t))
    data = np.stack([wave, 0.5 * wave], 1) if stereo else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, (data * 32767).astype(np.int16))
    return path


def _tones_folder(root: Path, n: int = 16) -> Path:
    for i in range(n):
        _tone(root / "low" / f"{i}.wav", 300 + 20 * (i % 5), seconds=0.25 + 0.01 * i, seed=i)
        _tone(root / "high" / f"{i}.wav", 1500 + 40 * (i % 5), seconds=0.25 + 0.01 * i, seed=100 + i)
    return root


# ---------------------------------------------------------------- reading


def test_read_wav_stereo_44k_to_mono_8k(tmp_path, monkeypatch):
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t)
    wavfile.write(tmp_path / "a.wav", 44100, (np.stack([0.8 * tone, 0.4 * tone], 1) * 32767).astype(np.int16))
    w = audio.read_wav(tmp_path / "a.wav", sr=8000)
    assert w.dtype == np.float32 and w.shape == (8000,)
    assert abs(np.abs(w[100:-100]).max() - 0.6) < 0.02  # the channels' mean, scaled to [-1, 1]
    assert abs(np.argmax(np.abs(np.fft.rfft(w))) * 8000 / len(w) - 440) <= 1  # the tone survives resampling
    import builtins

    real_import = builtins.__import__

    def no_soundfile(name, *args, **kwargs):
        if name == "soundfile":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_soundfile)  # the scipy fallback reads it the same
    np.testing.assert_allclose(audio.read_wav(tmp_path / "a.wav", sr=8000), w, atol=1e-4)


def test_folder_converts_once_and_skips_corrupt_files(tmp_path):
    root = _tones_folder(tmp_path / "data", n=4)
    _tone(root / "low" / "stereo.wav", 300, stereo=True)
    _tone(root / "high" / "fast.wav", 1500, rate=16000)
    (root / "high" / "broken.wav").write_bytes(b"RIFF\x00\x01junk-not-audio")
    d = lw.load(root)
    assert d.kind == "audio" and d.x.sr == 8000 and len(d) == 10 and d.x.dtype == np.float32
    assert sorted(set(d.y.tolist())) == ["high", "low"]
    assert d.notes[0] == "10 audio clips at 8000 Hz, padded or cropped to 0.3 s" and d.x.shape == (10, 2400)
    assert any(n.startswith("warning: skipped 1 unreadable WAV file: ") and n.endswith(
        "broken.wav'; replace or remove it.") for n in d.notes)
    assert "converted 2 of 10 WAV files to 8000 Hz mono (1 at another sample rate and 1 in stereo)." in d.notes
    assert d.x[[0, 3]].sr == 8000  # the rate survives slicing


def test_folder_errors(tmp_path, capsys):
    _tone(tmp_path / "one" / "only" / "x.wav", 440)
    assert main(["train", str(tmp_path / "one")]) == 2
    assert "has readable WAV files in only one class ('only')" in capsys.readouterr().err
    for c in ("a", "b"):
        (tmp_path / "bad" / c).mkdir(parents=True)
        (tmp_path / "bad" / c / "x.wav").write_bytes(b"garbage")
    assert main(["train", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "error: none of the 2 WAV files could be read (e.g. " in err and "x.wav'); check the files." in err


def test_pad_or_crop_centres():
    w = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(audio.pad_or_crop(w, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(audio.pad_or_crop(w[:2], 5), [0, 0, 1, 0, 0])


# ---------------------------------------------------------------- features


def test_logmel_shape_and_tone_band():
    import librosa

    lm = audio.LogMel(sr=8000, n_mels=64)
    assert (lm.win, lm.hop) == (200, 80) and "fb" in lm.state_dict()
    t = torch.arange(8000) / 8000
    out = lm(torch.stack([torch.sin(2 * torch.pi * 1000 * t), torch.sin(2 * torch.pi * 250 * t)]))
    assert out.shape == (2, 1, 64, lm.frames(8000)) and torch.isfinite(out).all()
    centres = librosa.mel_frequencies(64 + 2, fmin=0, fmax=4000)[1:-1]
    for i, f in enumerate((1000, 250)):
        assert abs(int(out[i, 0].mean(dim=-1).argmax()) - int(np.abs(centres - f).argmin())) <= 1


def test_spec_augment_masks_bands_without_touching_input():
    spec = torch.randn(4, 1, 64, 100)
    before = spec.clone()
    a = audio.spec_augment(spec, generator=torch.Generator().manual_seed(0))
    b = audio.spec_augment(spec, generator=torch.Generator().manual_seed(0))
    assert torch.equal(spec, before) and torch.equal(a, b) and a.shape == spec.shape
    changed = a != spec
    assert changed.any() and changed.float().mean() < 0.6
    means = spec.mean(dim=(1, 2, 3), keepdim=True).expand_as(spec)
    assert torch.allclose(a[changed], means[changed])


def test_spec_augment_callback_is_reproducible():
    from types import SimpleNamespace

    x = torch.randn(8, 1, 40, 71)

    def batch(cb, epoch):
        loop = SimpleNamespace(inputs=(x,), batch_idx=0, epoch=epoch, cfg=SimpleNamespace(seed=3),
                               batch_inputs=lambda t: t)
        cb.on_epoch_start(loop)
        cb.on_batch_start(loop)
        return loop.inputs[0]

    first, again, later = batch(audio.SpecAugment(), 0), batch(audio.SpecAugment(), 0), batch(audio.SpecAugment(), 1)
    assert torch.equal(first, again) and not torch.equal(first, later) and not torch.equal(first, x)
    masked = (first != x).float().mean()
    assert 0.05 < masked < 0.6


# ---------------------------------------------------------------- a folder of WAVs end to end


def test_wav_folder_train_predict_and_reload(tmp_path, capsys):
    root = _tones_folder(tmp_path / "tones")
    assert main(["train", str(root), "--epochs", "8", "--batch-size", "16", "--out", str(tmp_path / "run"),
                 "--no-progress", "--no-tensorboard", "--threads", "1", "--spec-augment",
                 "--channels", "8,16,16", "--hidden", "16", "--test-fraction", "0.25"]) == 0
    err = capsys.readouterr().err
    assert "32 audio clips at 8000 Hz, padded or cropped to 0.4 s" in err and "model: crnn" in err
    run = lw.Run.load(tmp_path / "run")
    assert run.pre.spec() == {"kind": "audio", "shape": [1, 40, 41], "sample_rate": 8000}
    assert run.info["test_metrics"]["accuracy"] >= 0.75
    low, high = _tone(tmp_path / "q" / "low.wav", 320, seconds=0.5, seed=7), _tone(
        tmp_path / "q" / "high.wav", 1550, rate=22050, stereo=True, seed=8)
    out = run.predict([str(low), str(high)])
    assert out["prediction"] == ["low", "high"] and out["probabilities"].shape == (2, 2)
    assert main(["predict", str(tmp_path / "run"), str(low), str(high)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{low}\tlow") and lines[1].startswith(f"{high}\thigh")
    (tmp_path / "q" / "bad.wav").write_bytes(b"not a wav")
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "q" / "bad.wav")]) == 2
    assert "bad.wav' is not a readable WAV file; give WAV files (PCM) to predict." in capsys.readouterr().err


def test_sample_rate_clip_length_and_mels_are_settings(tmp_path, capsys):
    root = _tones_folder(tmp_path / "tones", n=10)
    test = tmp_path / "test"  # a test folder recorded at another rate and length: brought to the training clips
    for i in range(4):
        _tone(test / "low" / f"{i}.wav", 320, rate=16000, seconds=0.6, seed=50 + i)
        _tone(test / "high" / f"{i}.wav", 1550, rate=16000, seconds=0.6, seed=60 + i)
    assert main(["train", str(root), "--test", str(test), "--sample-rate", "6000", "--clip-seconds", "0.3",
                 "--n-mels", "32", "--epochs", "6", "--batch-size", "8", "--channels", "8,16,16", "--hidden", "16",
                 "--out", str(tmp_path / "run"), "--no-progress", "--no-tensorboard", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "20 audio clips at 6000 Hz, padded or cropped to 0.3 s" in err and "converted 20 of 20 WAV files" in err
    run = lw.Run.load(tmp_path / "run")
    assert run.pre.sr == 6000 and run.pre.n_samples == 1800 and run.pre.n_mels == 32
    assert run.pre.spec()["shape"][1] == 32
    assert run.info["test_metrics"]["accuracy"] >= 0.75  # 16 kHz test clips resampled to 6 kHz, cut to 0.3 s
    data = lw.load(str(test), sample_rate=8000, clip_seconds=0.5)
    assert data.x.sr == 8000 and data.x.shape == (8, 4000)


# ---------------------------------------------------------------- FSDD


def test_fsdd_split_on_names():
    files = [f"{d}_{s}_{k}.wav" for d in range(2) for s in ("jo", "yweweler") for k in range(8)]
    train, test = fsdd.fsdd_split(files)
    assert len(test) == 2 * 2 * 5 and all(int(files[i].split("_")[2][0]) < 5 for i in test)
    assert sorted([*train, *test]) == list(range(len(files)))
    with pytest.raises(ValueError, match="notes.wav"):
        fsdd.fsdd_split(["0_jo_1.wav", "notes.wav"])


def _fake_fsdd_archive(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "src" / "free-spoken-digit-dataset-1.0.10" / "recordings"
    files = [_tone(src / f"{d}_jo_{k}.wav", 300 + 100 * d, seconds=0.2, seed=k) for d in range(2) for k in range(7)]
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "free-spoken-digit-dataset-1.0.10", arcname="free-spoken-digit-dataset-1.0.10")
        tar.addfile(tarfile.TarInfo("free-spoken-digit-dataset-1.0.10/README.md"), io.BytesIO(b""))
    return archive, fsdd.recordings_digest(files)


def test_fsdd_download_is_checked(tmp_path, monkeypatch):
    archive, digest = _fake_fsdd_archive(tmp_path)
    with pytest.raises(DataError, match="does not hold the expected recordings"):
        fsdd.download_fsdd(tmp_path / "cache1", url=archive.as_uri())  # the real digest: not these files
    assert not (tmp_path / "cache1" / "fsdd").exists()
    folder = fsdd.download_fsdd(tmp_path / "cache2", url=archive.as_uri(), digest=digest)
    assert (folder / ".complete").exists() and len(fsdd.load_fsdd(folder, tmp_path)[0]) == 14
    with pytest.raises(DataError, match="could not download FSDD from .*set LAYERWISE_FSDD"):
        fsdd.download_fsdd(tmp_path / "cache3", url=(tmp_path / "missing.tar.gz").as_uri())
    # the built-in name: LAYERWISE_FSDD (a tar.gz), extracted once into the cache, takes 0-4 as the test set
    monkeypatch.setenv("LAYERWISE_FSDD", str(archive))
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path / "cache4"))
    d = lw.load("fsdd")
    assert d.kind == "audio" and len(d) == 4 and len(d.test) == 10 and d.source == "fsdd"
    assert sorted(set(d.test.y.tolist())) == ["0", "1"]
    monkeypatch.setenv("LAYERWISE_FSDD", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="LAYERWISE_FSDD points to .*nowhere'"):
        lw.load("fsdd")


def test_load_fsdd_real(tmp_path):
    tar = SHARED / "fsdd_recordings.tar.gz"
    if not tar.exists():
        pytest.skip("../shared/data/fsdd_recordings.tar.gz is absent")
    files, labels = fsdd.load_fsdd(tar.resolve(), tmp_path)
    assert len(files) == 3000 and sorted(set(labels)) == [str(d) for d in range(10)]
    assert fsdd.recordings_digest(files) == fsdd.FSDD_DIGEST  # the same recordings as the GitHub v1.0.10
    train, test = fsdd.fsdd_split(files)
    assert len(test) == 6 * 10 * 5 and len(train) == 2700


@pytest.mark.slow
def test_fsdd_accuracy(shared_data, tmp_path, monkeypatch):
    """The built-in fsdd with the defaults (crnn on log-mel): test accuracy >= 0.95 on takes 0-4."""
    monkeypatch.setenv("LAYERWISE_FSDD", str(shared_data / "fsdd_recordings.tar.gz"))
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path / "cache"))
    run = lw.train("fsdd", out=tmp_path / "r", threads=1, progress=False, tensorboard=False, quiet=True)
    assert run.info["model"] == "crnn" and run.info["test_metrics"]["accuracy"] >= 0.95
