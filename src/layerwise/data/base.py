"""What every data kind shares: Data (raw inputs before splitting) and the Preprocessor interface.

A preprocessor is fitted on the training split only and saved as plain JSON in the run's schema.json:

    pre = PREPROCESSORS[kind]().fit(train, cfg)     # statistics, tokenizer, ... of the training part
    inputs = pre.transform(x)                       # model inputs, a tuple of arrays
    pre.spec()                                      # what the model builder needs: kind, shape, vocab, ...
    preprocessor_from_dict(pre.to_dict())           # the same preprocessor again, when a run is loaded

A new data kind is one file with a Preprocessor subclass plus one line in data/registry.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Data:
    """Raw inputs and targets before splitting: kind is image, table or array.

    x is uint8/float [N, H, W, C] for images, a DataFrame for tables, float [N, d] for arrays;
    y holds the raw targets (labels or numbers). `test` is a split the source came with.
    """

    kind: str
    x: Any
    y: np.ndarray | None
    target: str | None = None
    test: Data | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    validation: Data | None = None  # explicit validation data (then the training data is used whole)
    meta: dict = field(default_factory=dict)  # what a kind records of its source: text_column, ids, ...

    def __len__(self) -> int:
        return len(self.x)

    @property
    def text_column(self) -> str | None:
        """The name of a table's text column (text data read from a table)."""
        return self.meta.get("text_column")


def cache_dir():
    """Where downloads are kept: $LAYERWISE_CACHE, else ~/.cache/layerwise."""
    import os
    from pathlib import Path

    return Path(os.environ.get("LAYERWISE_CACHE", Path.home() / ".cache" / "layerwise"))


class Preprocessor:
    """Turns raw inputs of one data kind into model inputs. Every hook has a default."""

    kind = ""

    @classmethod
    def fit(cls, train: Any, cfg: Any = None) -> Preprocessor:
        """Fit on the training split (a data.sources.Data) with the run's settings `cfg`."""
        raise NotImplementedError

    def transform(self, x: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def spec(self) -> dict:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessor:
        raise NotImplementedError

    def defaults(self, cfg: Any, n_train: int, given: set) -> str | None:
        """Settings this data kind fills in unless the user gave them (config.fill_defaults), and the one
        sentence that says so; None when it fills none."""
        return None

    def read_inputs(self, x: Any, target: str | None = None) -> Any:
        """Predict inputs as Data when this kind reads its own (series history, WAV files, texts); None: the
        generic reader of data/sources.py."""
        return None

    def labelled(self, d: Any) -> Any:
        """Labelled data like the training data, for evaluate (e.g. a long table grouped into sequences)."""
        return d

    def annotate(self, out: dict, d: Any) -> dict:
        """Predictions with what the inputs say about them (timestamps of a forecast, series ids)."""
        return out
