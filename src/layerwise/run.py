"""A run: the folder that holds everything about one training, and the object that uses it."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, RunError, say

FILES = {"config": "config.yaml", "schema": "schema.json", "weights": "model.safetensors", "info": "run.json",
         "metrics": "metrics.jsonl", "checkpoint": "checkpoint.safetensors", "tensorboard": "tb"}


def new_run_dir(root: str | Path, name: str) -> Path:
    """A fresh folder under root named by time and data, e.g. runs/20261123-141502-digits-cnn."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{name}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} as JSON")


def read_info(path: Path) -> dict:
    """run.json of a run folder; a folder that is not a run raises RunError."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run folder {str(path)!r} does not exist; list runs with `layerwise runs`.")
    info = path / FILES["info"]
    if not info.is_file() or not (path / FILES["schema"]).is_file():
        raise RunError(f"{str(path)!r} is not a run folder (no run.json / schema.json); give a folder made by "
                       "`layerwise train`.")
    try:
        return json.loads(info.read_text())
    except json.JSONDecodeError:
        raise RunError(f"{str(info)!r} is damaged; the run cannot be read.") from None


SCHEMA_PARTS = {"input": "the preprocessing (tokenizer, scaling, shapes)", "task": "the targets (classes)"}


def check_same_data(run, schema_path: Path) -> None:
    """Resume only on data that gives the run's preprocessing and classes again: other data would feed the
    saved weights inputs (token ids, scaled values, class indices) they were not trained on."""
    saved = json.loads(schema_path.read_text())
    now = json.loads(json.dumps(run.schema(), default=_jsonable))
    changed = [what for part, what in SCHEMA_PARTS.items() if now[part] != saved.get(part)]
    if changed:
        raise RunError(f"the data differs from the data this run was trained on ({' and '.join(changed)} changed); "
                       "resume with the same data, or start a new run on the new data.")


def stopped_info(info: dict, e: BaseException, epochs_done: int) -> dict:
    """run.json's record of a training that stopped on `e`: "interrupted" (Ctrl-C, SIGTERM) or "failed" with the
    error in one line."""
    interrupted = isinstance(e, KeyboardInterrupt)
    info.update(status="interrupted" if interrupted else "failed", epochs_done=epochs_done)
    if not interrupted:
        info["error"] = f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    return info


class Run:
    """A trained model with its preprocessing and task: evaluate, predict, save, load.

    Example: ``run = lw.train("digits"); run.evaluate(); run.predict(X)``.
    """

    def __init__(self, path: Path, config: Any, pre: Any, task: Any, model: Any, info: dict,
                 test: Any = None, loop: Any = None):
        self.path, self.config, self.pre, self.task, self.model = Path(path), config, pre, task, model
        self.info, self._test, self._loop = info, test, loop

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.info.get('model')!r}, test={self.info.get('test_metrics')})"

    @property
    def history(self) -> list[dict]:
        p = self.path / FILES["metrics"]
        return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []

    # ---- loading
    @classmethod
    def load(cls, path: str | Path, model: Any = None) -> Run:
        """Load a run folder (safetensors + JSON/YAML only, nothing unpickled).

        A run trained with your own nn.Module needs that module (untrained) as `model`.
        """
        from safetensors.torch import load_file

        from .config import load_yaml, make_config
        from .data import preprocessor_from_dict
        from .models import build_model
        from .tasks import task_from_dict

        path = Path(path)
        info = read_info(path)
        schema = json.loads((path / FILES["schema"]).read_text())
        cfg = make_config(load_yaml(path / FILES["config"]))
        pre, task = preprocessor_from_dict(schema["input"]), task_from_dict(schema["task"])
        if model is None:
            if schema["model"]["name"] == "custom":
                raise RunError(f"run {str(path)!r} was trained with your own nn.Module; pass it: "
                               "Run.load(path, model=MyModule()).")
            model = build_model(schema["model"]["name"], pre.spec(), task.out_dim, cfg)
        weights = path / FILES["weights"]
        if not weights.is_file():
            raise RunError(f"run {str(path)!r} has no trained weights yet (it did not finish); "
                           "resume it with `layerwise train --resume`.")
        try:
            state = load_file(str(weights))
        except Exception as e:  # noqa: BLE001 (several types for damaged files)
            raise RunError(f"the weights in {str(weights)!r} are damaged ({e.__class__.__name__}).") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise RunError(f"the weights in {str(path)!r} do not fit the given model ({str(e).splitlines()[0]})") \
                from None
        model.eval()
        return cls(path, cfg, pre, task, model, info)

    def save(self, path: str | Path | None = None) -> Path:
        """Write (or copy) the run's files; with `path`, to a new folder."""
        from .config import dump_yaml
        from .fit.state import save_safetensors

        target = Path(path) if path else self.path
        target.mkdir(parents=True, exist_ok=True)
        (target / FILES["config"]).write_text(dump_yaml(self.config))
        write_json(target / FILES["schema"], self.schema())
        tmp = target / (FILES["weights"] + ".tmp")
        save_safetensors({k: v.detach().cpu().contiguous().clone() for k, v in self.model.state_dict().items()}, tmp)
        os.replace(tmp, target / FILES["weights"])
        write_json(target / FILES["info"], self.info)
        if path:
            self.path = target
        return target

    def schema(self) -> dict:
        return {"input": self.pre.to_dict(), "task": self.task.to_dict(),
                "model": {"name": self.info.get("model"), "spec": self.pre.spec(), "out_dim": self.task.out_dim}}

    # ---- using
    def _engine(self):
        from .fit.loop import Loop
        from .fit.precision import channels_last

        if self._loop is None:
            bf16 = self.info.get("precision") == "bf16"
            last = bf16 and channels_last(self.info.get("model", "custom"), self.pre.spec()["kind"])
            self._loop = Loop.for_inference(self.model, self.task, bf16, last)
        return self._loop

    def outputs(self, inputs: tuple):
        return self._engine().outputs(inputs)

    def evaluate(self, data: Any = None, confusion: bool = False) -> dict[str, float]:
        """Metrics on the run's test split, or on `data` (its given test part if it has one, else all of it)."""
        import torch

        if self.task.evaluation_note:
            raise RunError(self.task.evaluation_note)
        if data is None:
            if self._test is None:
                self._test = self._reload_test()
            inputs, y = self._test
        else:  # the task makes (inputs, targets) of the data: labels, windows, the inputs themselves, ...
            inputs, y = self.task.labelled(self, data)
        out = self.outputs(inputs)
        y = torch.as_tensor(y)
        metrics = {"loss": float(self.task.loss(out, y)), **self.task.metrics(out, y)}
        matrix = self.task.confusion(out, y) if confusion else None
        if matrix is not None:
            metrics["confusion_matrix"] = matrix
        return metrics

    def prepared(self):
        """The run's own data prepared again as in training (its splits), from the data it recorded."""
        from .tasks import prepare_data

        if not self.config.data:
            raise DataError("this run was trained on in-memory data; pass the data, e.g. run.evaluate(data).")
        return prepare_data(self.config.model_copy(), quiet=True)

    def _reload_test(self):
        if not self.config.data:
            raise DataError("this run was trained on in-memory data; pass the data to evaluate: run.evaluate(data).")
        prepared = self.prepared()
        if prepared.test is None and prepared.val is not None:  # a language model holds out validation only
            say("note: this run has no test split; these are the metrics of its validation split")
            return prepared.val.inputs, prepared.val.y
        if prepared.test is None:
            raise DataError("this run has no test split (test_fraction=0); pass data to evaluate.")
        return prepared.test.inputs, prepared.test.y

    def transform(self, d) -> tuple:
        """Model inputs of Data `d` with the run's preprocessing (its kind checked against the training data's)."""
        if self.pre.spec()["kind"] == "table":
            if d.kind != "table":
                raise DataError(f"the model expects a table with columns {', '.join(self.pre.columns)}.")
            return self.pre.transform(d.x)
        if d.kind == "table":
            raise DataError(f"the model expects {self.pre.spec()['kind']} inputs of shape {self.pre.shape}, "
                            "not a table.")
        return self.pre.transform(d.x)

    def sample(self, n: int = 64, label: Any = None, seed: int = 0, truncation: float | None = None) -> np.ndarray:
        """`n` images [n, H, W, C] from a generative run, like its training data (uint8 pixels for uint8 images);
        `label` picks the class of a conditional GAN; `truncation` (e.g. 0.7) trades variety for cleaner samples.
        Example: ``run.sample(64, label=7)``."""
        return self.task.sample(self, n, label, seed, truncation)

    def generate(self, prompt: str = "\n", tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> str:
        """Text from a language model (--task generate): the prompt and `tokens` sampled tokens after it.

        Example: ``run.generate("ROMEO:", tokens=300, temperature=0.8, top_k=40)``.
        """
        return self.task.generate(self, prompt, tokens, temperature, top_k, seed)

    def embed(self, data: Any = None, **options: Any) -> dict[str, Any]:
        """Encoder vectors of `data` (an autoencoder run); options out=NPZ, plot=PNG, method=pca|tsne.
        Example: ``run.embed("mnist", plot="map.png")["embeddings"]``."""
        return self.task.embed(self, data, **options)

    def cluster(self, data: Any = None, k: int = 10, **options: Any) -> dict[str, Any]:
        """k-means on the embeddings of `data`, with NMI and ARI when it has labels: ``run.cluster("mnist", k=10)``."""
        return self.task.cluster(self, data, k, **options)

    def score(self, data: Any = None, **options: Any) -> dict[str, Any]:
        """Anomaly score (and flag, with the run's threshold) per sample of `data`: ``run.score("new.csv")``."""
        return self.task.score(self, data, **options)

    def predict(self, x: Any, text: bool = False) -> dict[str, Any]:
        """Predictions (and class probabilities) for arrays, a DataFrame, image files, or a CSV/.npz path.

        Image files come back under their names (`inputs`), and files that could not be read are listed with
        the reason (`skipped`). `text=True` takes strings as texts even where they look like file paths."""
        if text:
            from .data import Data

            if self.pre.spec()["kind"] != "text":
                raise DataError("--text is for models trained on text; this one reads "
                                f"{self.pre.spec()['kind']} data.")
            items = [x] if isinstance(x, (str, Path)) else list(x)
            x = Data("text", np.array([str(t) for t in items], dtype=object), None)
        return self.task.predict(self, x)

    def save_samples(self, out: str | Path, n: int = 64, label: Any = None, seed: int = 0,
                     truncation: float | None = None) -> Path:
        """Write `n` samples of a generative run to a PNG grid or an .npz (`layerwise sample`)."""
        return self.task.save_samples(self, out, n, label, seed, truncation)
