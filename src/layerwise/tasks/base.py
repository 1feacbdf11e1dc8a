"""The Task interface: what is learned. Every hook is declared here with its default.

A task is chosen by name from the registry (tasks/__init__.py), prepares the data (split, targets,
preprocessing), names the loss and the metrics, decodes outputs, may fill settings, add callbacks, take over
the step or the optimizer, and offers the verbs a finished run has (predict, sample, generate, embed, ...).
`api.train` calls these hooks and nothing else; a new task is one file with a subclass plus one registry line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, RunError, say


class Task:
    """Base class of every task. Subclasses set `name` and override what differs from these defaults."""

    name = ""  # the registry key, saved in the run's schema.json
    monitor = ("loss", "min")  # the validation metric early stopping watches, and whether lower is better
    # options (options.py) that work with this task, e.g. "semi_supervised", "synthetic"
    supports: frozenset[str] = frozenset()
    classes: list | None = None  # classification-like tasks: the class labels (stratified splits, count tables)
    step = None  # a function(loop) that replaces the loop's default step (see GenerateImages.step)
    # tasks with no held-out metrics to evaluate (a GAN) say here what to do instead; None: evaluate works
    evaluation_note: str | None = None

    # ---- the data
    @classmethod
    def prepare(cls, cfg: Any, data: Any, quiet: bool = False):
        """The generic supervised flow: split `data` (and its given validation/test parts), fit the target
        encoding and the data kind's preprocessing on the training split. Returns a data.Prepared."""
        from ..data import prepare
        from ..data.sequence_prep import prepare_sequences
        from ..data.sequences import time_column_hint, wants_sequences

        def make(y: np.ndarray) -> Task:
            return cls.create(cfg, y, data.kind, quiet)

        if wants_sequences(cfg, data):  # series (or windows of one) to classify or regress
            return prepare_sequences(cfg, data, make, quiet)
        if data.y is None:
            raise DataError("the data has no targets; give a target column (--target) or (X, y) arrays.")
        if cfg.target is None and data.target is not None:
            cfg.target = data.target
        task = make(data.y)
        say(time_column_hint(data), quiet)
        fit_pre = None
        if cfg.model.startswith("pretrained:"):  # the backbone's own tokenizer / normalisation
            from ..models.pretrained import input_pipeline

            fit_pre = input_pipeline(cfg, data, quiet)
        return prepare(data, task, cfg.val_fraction, cfg.test_fraction, cfg.seed, data.validation, data.test,
                       fit_pre=fit_pre, cfg=cfg)

    @classmethod
    def create(cls, cfg: Any, y: np.ndarray | None = None, kind: str | None = None, quiet: bool = False) -> Task:
        """The task object for these settings (and targets `y` of data of `kind`)."""
        return cls()

    def defaults(self, cfg: Any, spec: dict, n_train: int, given: set) -> str | None:
        """Settings this task fills in unless the user gave them (config.fill_defaults), and the one sentence
        that says so; None when it fills none."""
        return None

    # ---- training
    def callbacks(self, cfg: Any, run_dir: Any) -> list:
        """Loop callbacks of this task (sample grids, thresholds, ...)."""
        return []

    def optimizer(self, model: Any, cfg: Any) -> Any:
        """The optimizer, when the task needs its own (a GAN's two players); None: fit/optim.py's."""
        return None

    # ---- targets and outputs
    @property
    def out_dim(self) -> int:
        """The size of the model's output."""
        raise NotImplementedError

    def fit(self, y: np.ndarray) -> np.ndarray:
        """Learn the target encoding from the training targets; returns them encoded."""
        return self.encode(y)

    def encode(self, y: np.ndarray) -> np.ndarray:
        return y

    def loss(self, out, y):
        raise NotImplementedError

    def metrics(self, out, y) -> dict[str, float]:
        return {}

    def confusion(self, out, y) -> list[list[int]] | None:
        """A confusion matrix (rows: true, columns: predicted) where the task has classes; else None."""
        return None

    def decode(self, out) -> dict[str, Any]:
        return {"prediction": out.float().cpu().numpy()}

    def to_dict(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        return cls()

    def describe(self) -> str:
        return self.name

    # ---- evaluating on given data
    def labelled(self, run: Any, data: Any) -> tuple[tuple, np.ndarray]:
        """Model inputs and encoded targets of labelled `data` like the training data (its own test part
        when it has one), for `Run.evaluate(data)`."""
        from ..data import load

        d = load(data, target=run.config.target)
        d = run.pre.labelled(d.test or d)
        if d.y is None:
            raise DataError("the data has no targets to evaluate against; give labelled data.")
        return run.transform(d), self.encode(d.y)

    # ---- the verbs a finished run offers (Run.predict, Run.sample, ...)
    def predict(self, run: Any, x: Any) -> dict[str, Any]:
        """Predictions (and class probabilities) for inputs like the training inputs."""
        from ..data.sources import read_inputs

        d = read_inputs(x, run.pre, run.config.target)
        out = self.decode(run.outputs(run.transform(d))) if len(d) else {"prediction": []}
        out = run.pre.annotate(out, d)
        if "names" in d.meta:  # each prediction under the name of its input; what could not be read, and why
            out["inputs"] = d.meta["names"]
        if d.meta.get("skipped"):
            out["skipped"] = d.meta["skipped"]
        return out

    def sample(self, run: Any, n: int = 64, label: Any = None, seed: int = 0,
               truncation: float | None = None) -> Any:
        """Images [n, H, W, C] like the training images (generative runs)."""
        raise RunError(f"run {str(run.path)!r} is not generative (task {run.info.get('task', '?')}, model "
                       f"{run.info.get('model', '?')}); sample from a run trained with --task generate --model gan.")

    def save_samples(self, run: Any, out: Any, n: int = 64, label: Any = None, seed: int = 0,
                     truncation: float | None = None) -> Any:
        """Write samples to a PNG grid or an .npz (generative runs)."""
        return self.sample(run, n, label, seed, truncation)

    def class_index(self, label: Any) -> int:
        """The class index of `label` for drawing a chosen class (conditional generators)."""
        raise ConfigError("this generator is unconditional, so it cannot draw a chosen label; sample without "
                          "--label.")

    def generate(self, run: Any, prompt: str = "\n", tokens: int = 200, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None) -> str:
        """Text that continues `prompt` (language models)."""
        raise RunError(f"run {str(run.path)!r} is a {self.name} model, not a language model; `generate` needs "
                       "a run trained with --task generate on a text corpus.")

    def embed(self, run: Any, data: Any = None, **options: Any) -> dict[str, Any]:
        """Encoder vectors of `data` (autoencoders)."""
        raise RunError(f"run {str(run.path)!r} has no encoder (model {run.info.get('model')!r}); embeddings need a "
                       "run trained with --task reconstruct --model autoencoder, conv_autoencoder, vae or conv_vae.")

    def cluster(self, run: Any, data: Any = None, k: int = 10, **options: Any) -> dict[str, Any]:
        """k-means clusters of the embeddings of `data` (autoencoders)."""
        return self.embed(run, data)

    def score(self, run: Any, data: Any = None, **options: Any) -> dict[str, Any]:
        """Anomaly scores of `data` (reconstruction and anomaly runs)."""
        raise RunError(f"run {str(run.path)!r} is a {self.name} run; scores need a run trained with --task anomaly "
                       "(or reconstruct).")
