"""Reconstruction and anomaly detection: an autoencoder learns to rebuild its input; the error is a score.

`reconstruct` needs no labels: the target is the input itself (for tables, the numbers followed by one-hot
category codes). `anomaly` trains on normal data only and picks a score threshold on validation data at a
stated false-positive rate; labels, when the data has them, only say which samples are normal and are
used to report AUROC and average precision on the test split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, say
from .base import Task

BINARY_LABELS = ({"0", "1"}, {"False", "True"})


def vae_terms(x, out, latent: int, likelihood: str = "mse"):
    """Per-sample reconstruction term and KL of a packed VAE output (models/autoencoder.py)."""
    from ..models.autoencoder import vae_terms as terms

    return terms(x, out, latent, likelihood)


def one_hot_targets(inputs: tuple, cat_sizes: list[int]) -> np.ndarray:
    """The flat reconstruction target of model inputs: the inputs themselves (no copy) for images and arrays;
    for tables, the numbers followed by a one-hot block per categorical column."""
    if not cat_sizes or len(inputs) < 2:
        return inputs[0]
    codes = inputs[1]
    blocks = [np.asarray(inputs[0], dtype=np.float32)]
    for i, n in enumerate(cat_sizes):
        block = np.zeros((len(codes), n), np.float32)
        block[np.arange(len(codes)), codes[:, i]] = 1
        blocks.append(block)
    return np.concatenate(blocks, 1)


class Reconstruct(Task):
    """Rebuild the input: mean squared error for autoencoders, the negative ELBO for a VAE."""

    name = "reconstruct"
    monitor = ("mse", "min")
    threshold: float | None = None  # anomaly runs: the score above which a sample is flagged

    def __init__(self, dim: int = 0, variational: bool = False, latent: int = 0, cat_sizes: list | None = None,
                 **_: Any):
        self.dim, self.variational, self.latent = dim, variational, latent
        self.cat_sizes = list(cat_sizes or [])

    @property
    def out_dim(self) -> int:
        return self.dim

    # ---- targets and outputs
    def targets(self, inputs: tuple, labels: np.ndarray | None = None) -> np.ndarray:
        """The training target y of preprocessed inputs (the inputs themselves for images and arrays)."""
        return one_hot_targets(inputs, self.cat_sizes)

    def _parts(self, out, y):
        """(flat reconstruction, flat target, 0/1 anomaly labels or None) of a batch of outputs and targets."""
        y = y.flatten(1)
        labels = y[:, self.dim] if y.shape[1] == self.dim + 1 else None
        return out.flatten(1)[:, :self.dim].float(), y[:, :self.dim].float(), labels

    def scores(self, out, y):
        """Per-sample score [B]: mean squared error, or the VAE's negative ELBO; higher is more unusual."""
        recon, target, _ = self._parts(out, y)
        if self.variational:
            rec, kl = vae_terms(target, out, self.latent)
            return rec + kl
        return (recon - target).pow(2).mean(1)

    def loss(self, out, y):
        recon, target, _ = self._parts(out, y)
        if self.variational:
            rec, kl = vae_terms(target, out, self.latent)
            return (rec + kl).mean()
        return (recon - target).pow(2).mean()

    def metrics(self, out, y) -> dict[str, float]:
        recon, target, _ = self._parts(out, y)
        err = recon - target
        m = {"mse": float(err.pow(2).mean()), "mae": float(err.abs().mean())}
        if self.variational:
            m["kl"] = float(vae_terms(target, out, self.latent)[1].mean())
        return m

    def decode(self, out) -> dict[str, Any]:
        return {"prediction": out.flatten(1)[:, :self.dim].float().cpu().numpy()}

    # ---- saving
    def to_dict(self) -> dict:
        return {"name": self.name, "dim": self.dim, "variational": self.variational, "latent": self.latent,
                "cat_sizes": self.cat_sizes}

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**{k: v for k, v in d.items() if k != "name"})

    def describe(self) -> str:
        what = "negative ELBO" if self.variational else "mean squared error"
        return f"{self.name} ({self.dim} values per sample, {what})"

    # ---- data
    @classmethod
    def prepare(cls, cfg, data, quiet: bool = False):
        """Split without needing labels; the target of each split is its input. Anomaly: see Anomaly."""
        from ..data.prepare import Prepared, Split, split_indices
        from ..data.registry import preprocessor_class

        if cfg.task != "anomaly" and cfg.normal_class is not None:
            raise ConfigError("normal_class is a setting of --task anomaly; drop it or use --task anomaly.")
        _check_model(cfg)
        if data.kind == "table" and cfg.target is None and data.target is not None:
            say(f"{cfg.task}: every column is an input, {data.target!r} too (name a label column with --target "
                "to evaluate against it)", quiet)
        data = all_columns(data, cfg)
        task = cls.from_settings(cfg)
        labels = data.y
        flags = task.fit_labels(labels, cfg)
        strat = flags if flags is not None else np.zeros(len(data), np.int64)
        test = all_columns(data.test, cfg)
        if test is None:
            rest, test_idx = split_indices(strat, cfg.test_fraction, cfg.seed, True)
        else:
            rest, test_idx = np.arange(len(data)), None
        if flags is not None:  # train and validate on normal samples only
            rest = rest[flags[rest] == 0]
        val = all_columns(data.validation, cfg)
        if val is None:
            tr, va = split_indices(np.zeros(len(rest), np.int64), cfg.val_fraction, cfg.seed + 1, False)
            train_idx, val_idx = rest[tr], rest[va]
        else:
            train_idx, val_idx = rest, None
            if flags is not None and val.y is not None:
                val = _subset(val, task.anomaly_flags(val.y) == 0)
        if task.threshold_on_validation and val is None and not len(val_idx):
            raise ConfigError("the anomaly threshold is chosen on validation data, but there is none "
                              "(val_fraction is 0 and no --validation); set --val-fraction 0.1 or give "
                              "--validation DATA.")
        if len(train_idx) < 2:
            raise DataError(f"only {len(train_idx)} training sample(s) left after splitting; give more data.")
        sub = _subset(data, train_idx)
        pre = preprocessor_class(data.kind).fit(sub, cfg)
        spec = pre.spec()
        task.dim = spec["n_num"] + sum(spec["cat_sizes"]) if spec["kind"] == "table" else int(np.prod(spec["shape"]))
        task.cat_sizes = list(spec["cat_sizes"]) if spec["kind"] == "table" else []

        def split(d, idx=None, with_labels=False) -> Split:
            d = _subset(d, idx) if idx is not None else d
            if d.kind != data.kind:
                raise DataError(f"the training data is {data.kind} data but the extra data is {d.kind}; give "
                                "the same kind.")
            inputs = pre.transform(d.x)
            return Split(inputs, task.targets(inputs, d.y if with_labels else None), idx, d.y)

        train = split(data, train_idx)
        va = split(val) if val is not None else (split(data, val_idx) if len(val_idx) else None)
        te = split(test, None, True) if test is not None else (
            split(data, test_idx, True) if len(test_idx) else None)
        task.say_counts(train, va, te, quiet)
        return Prepared(pre, task, train, va, te)

    @classmethod
    def from_settings(cls, cfg):
        return cls(variational=cfg.model in ("vae", "conv_vae"), latent=cfg.latent)

    threshold_on_validation = False  # Anomaly: the threshold is set on validation data

    def fit_labels(self, labels: np.ndarray | None, cfg) -> np.ndarray | None:
        """0/1 anomaly flags of the training labels (Anomaly); None: every sample is trained on."""
        return None

    def say_counts(self, train, val, test, quiet: bool) -> None:
        pass

    def truth(self, labels: np.ndarray) -> np.ndarray | None:
        """0 (normal) / 1 (anomaly) per label where the labels say which is which; None otherwise."""
        return None

    # ---- evaluating on given data, and the verbs of a finished run (tasks/embed.py, tasks/sampling.py)
    def labelled(self, run, data) -> tuple[tuple, np.ndarray]:
        """The target is the input itself (plus the anomaly flag where the labels give one)."""
        from .embed import inputs_of

        inputs, labels = inputs_of(run, data)
        return inputs, self.targets(inputs, labels)

    def embed(self, run, data=None, **options):
        from .embed import embed

        return embed(run, data, **options)

    def cluster(self, run, data=None, k: int = 10, **options):
        from .embed import cluster

        return cluster(run, data, k, **options)

    def score(self, run, data=None, **options):
        from .embed import score

        return score(run, data, **options)

    def sample(self, run, n: int = 64, label=None, seed: int = 0, truncation: float | None = None):
        """Images decoded from the prior (a VAE on images); other autoencoders cannot sample."""
        if not self.variational:
            return super().sample(run, n, label, seed, truncation)
        from .sampling import check_generative, sample

        check_generative(run)
        return sample(run, n, label, seed, truncation)

    def save_samples(self, run, out, n: int = 64, label=None, seed: int = 0, truncation: float | None = None):
        if not self.variational:
            return super().sample(run, n, label, seed, truncation)
        from .sampling import check_generative, save_samples

        check_generative(run)
        return save_samples(run, out, n, label, seed, truncation)


class Anomaly(Reconstruct):
    """Anomaly detection: trained on normal samples; score = reconstruction error (VAE: negative ELBO).

    The threshold is the (1 - fpr) quantile of the validation scores, so about `fpr` of normal samples are
    flagged. Labels say which samples are normal: `normal_class` names the normal label; without it, 0/1
    (or False/True) labels mean normal/anomaly.
    """

    name = "anomaly"
    threshold_on_validation = True

    def __init__(self, dim: int = 0, variational: bool = False, latent: int = 0, cat_sizes: list | None = None,
                 fpr: float = 0.05, threshold: float | None = None, normal_class: str | None = None,
                 val_scores: dict | None = None, **_: Any):
        super().__init__(dim, variational, latent, cat_sizes)
        self.fpr, self.threshold, self.normal_class = fpr, threshold, normal_class
        self.val_scores = val_scores or {}

    @classmethod
    def from_settings(cls, cfg):
        return cls(variational=cfg.model in ("vae", "conv_vae"), latent=cfg.latent, fpr=cfg.fpr, normal_class=cfg.normal_class)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "fpr": self.fpr, "threshold": self.threshold,
                "normal_class": self.normal_class, "val_scores": self.val_scores}

    def describe(self) -> str:
        return super().describe() + f", threshold at {self.fpr:.0%} false positives"

    # ---- labels
    def fit_labels(self, labels: np.ndarray | None, cfg) -> np.ndarray | None:
        """0 (normal) / 1 (anomaly) per sample, or None for unlabelled data (then every sample is normal)."""
        if labels is None:
            if self.normal_class is not None:
                raise DataError(f"normal_class={self.normal_class!r} needs labelled data, but this data has no "
                                "labels; drop --normal-class or give a --target column.")
            return None
        return self.anomaly_flags(labels, strict=True)

    def anomaly_flags(self, labels: np.ndarray, strict: bool = False) -> np.ndarray:
        """1 for anomalies, 0 for normal samples; labels that cannot say which is which raise DataError.
        `strict`: the normal class must occur (training data)."""
        keys = np.array([_key(v) for v in np.asarray(labels)])
        values = sorted(set(keys.tolist()))
        if self.normal_class is not None:
            normal = keys == _key(self.normal_class)
            if strict and not normal.any():
                raise DataError(f"no sample has the label {self.normal_class!r} given as normal_class; the labels "
                                f"are: {', '.join(values[:20])}.")
            return (~normal).astype(np.int64)
        if not any(set(values) <= b for b in BINARY_LABELS):
            raise DataError(f"the labels have {len(values)} values ({', '.join(values[:10])}); say which one is "
                            "normal with --normal-class, or train on unlabelled normal data.")
        return np.isin(keys, ("1", "True")).astype(np.int64)

    def targets(self, inputs: tuple, labels: np.ndarray | None = None) -> np.ndarray:
        """The input as target; with labels that say what is normal, the 0/1 anomaly flag is one more column."""
        y = one_hot_targets(inputs, self.cat_sizes)
        if labels is None:
            return y
        try:
            flags = self.anomaly_flags(labels)
        except DataError:
            return y
        flat = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        return np.concatenate([flat, flags[:, None].astype(np.float32)], 1)

    # ---- metrics
    def metrics(self, out, y) -> dict[str, float]:
        from .embed import detection_metrics

        m = super().metrics(out, y)
        _, _, labels = self._parts(out, y)
        scores = self.scores(out, y).cpu().numpy()
        if self.threshold is not None:
            m["flagged"] = float((scores > self.threshold).mean())
        if labels is not None:
            m.update(detection_metrics(scores, labels.cpu().numpy(), self.threshold))
        return m

    def set_threshold(self, scores: np.ndarray) -> float:
        """Threshold at the (1 - fpr) quantile of validation scores of normal samples."""
        self.threshold = float(np.quantile(scores, 1 - self.fpr, method="higher"))
        self.val_scores = {"n": len(scores), "mean": float(scores.mean()), "std": float(scores.std()),
                           "flagged": float((scores > self.threshold).mean())}
        return self.threshold

    def truth(self, labels: np.ndarray) -> np.ndarray | None:
        try:
            return self.anomaly_flags(labels)
        except DataError:
            return None

    def callbacks(self, cfg, run_dir) -> list:
        return [Threshold(self, verbose=cfg.progress)]

    def say_counts(self, train, val, test, quiet: bool) -> None:
        if quiet:
            return
        parts = [f"training on {len(train)} normal samples", f"{len(val) if val else 0} to set the threshold"]
        if test is not None and test.y.ndim == 2 and test.y.shape[1] == self.dim + 1:
            n_anom = int(test.y[:, -1].sum())
            parts.append(f"test: {len(test) - n_anom} normal, {n_anom} anomalous")
        normal = f" (normal class {self.normal_class!r})" if self.normal_class is not None else ""
        say(f"anomaly{normal}: " + "; ".join(parts))


class Threshold:
    """Sets the anomaly threshold on the validation split when training ends (after the best weights are back)."""

    order = 100  # after the other callbacks: early stopping restores the best weights at fit end

    def __init__(self, task: Anomaly, verbose: bool = True):
        self.task, self.verbose = task, verbose

    def on_fit_end(self, loop) -> None:
        inputs, y = loop.val
        scores = self.task.scores(loop.outputs(inputs), y).cpu().numpy()
        t = self.task.set_threshold(scores)
        say(f"anomaly threshold {t:.4g}: flags {self.task.val_scores['flagged']:.1%} of {len(scores)} "
            f"normal validation samples (fpr={self.task.fpr})", not self.verbose)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# ---- data helpers
def all_columns(d, cfg):
    """Without --target, every column of a table is an input: undo the loader's default target (last column)."""
    if d is None or d.kind != "table" or cfg.target is not None or d.target is None:
        return d
    from ..data.base import Data

    x = d.x.copy()
    x[d.target] = d.y
    test = all_columns(d.test, cfg) if d.test is not None else None
    return Data("table", x, None, None, test, d.source, [])


def _subset(d, idx):
    from ..data.base import Data

    x = d.x.iloc[idx].reset_index(drop=True) if d.kind == "table" else d.x[idx]
    return Data(d.kind, x, None if d.y is None else np.asarray(d.y)[idx], d.target)


def _check_model(cfg) -> None:
    if cfg.model == "auto":
        cfg.model = "autoencoder"
    if cfg.model not in ("autoencoder", "conv_autoencoder", "vae", "conv_vae"):
        raise ConfigError(f"task {cfg.task} needs an autoencoder; use --model autoencoder, conv_autoencoder, vae "
                          f"or conv_vae (got {cfg.model!r}).")


def _key(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    return str(v).strip()
