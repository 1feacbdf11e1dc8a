"""Tables: type each column (number, category, text), then turn rows into model inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .base import Preprocessor

MISSING = ["?", "", "NA", "N/A", "na", "n/a", "null", "NULL", "None", "nan", "NaN"]
TEXT_HASH_FEATURES = 1024


def read_table(path) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet file; common missing-value markers (?, NA, empty) become NaN."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        sep = "\t" if suffix in (".tsv", ".tab") else ","
        return pd.read_csv(path, sep=sep, na_values=MISSING, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as e:
        raise DataError(f"could not read the table {str(path)!r} ({str(e).splitlines()[0]}); check the file format.") \
            from None


def column_kind(s: pd.Series) -> str:
    """number, category or text, from the values of one column."""
    if pd.api.types.is_bool_dtype(s):
        return "category"
    if pd.api.types.is_numeric_dtype(s):
        return "number"
    values = s.dropna().astype(str)
    if len(values) == 0:
        return "category"
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().mean() > 0.98:
        return "number"
    words = values.str.count(" ").mean() + 1
    unique = values.nunique() / len(values)
    return "text" if words >= 4 and unique > 0.5 else "category"


class TablePre(Preprocessor):
    """Fitted on the training rows only: medians, means/stds, category vocabularies, text hashing."""

    kind = "table"

    def __init__(self, columns: dict[str, str], stats: dict[str, Any] | None = None):
        self.columns = columns
        self.stats = stats or {}

    @classmethod
    def fit(cls, train: Any, cfg: Any = None) -> TablePre:
        """Statistics of the training rows (a table's Data, or a DataFrame)."""
        df = train if isinstance(train, pd.DataFrame) else train.x
        columns = {c: column_kind(df[c]) for c in df.columns}
        stats: dict[str, Any] = {}
        for c, kind in columns.items():
            if kind == "number":
                v = _numbers(df[c], c)
                med = float(np.nanmedian(v)) if np.isfinite(v).any() else 0.0
                filled = np.where(np.isnan(v), med, v)
                std = float(filled.std())
                stats[c] = {"median": med, "mean": float(filled.mean()), "std": std if std > 1e-12 else 1.0,
                            "missing": bool(np.isnan(v).any())}
            elif kind == "category":
                counts = df[c].dropna().astype(str).value_counts()
                stats[c] = {"levels": counts.index.tolist()}
        return cls(columns, stats)

    def to_dict(self) -> dict:
        return {"columns": self.columns, "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict) -> TablePre:
        return cls(d["columns"], d["stats"])

    @property
    def n_numeric(self) -> int:
        n = 0
        for c, kind in self.columns.items():
            if kind == "number":
                n += 1 + int(self.stats[c]["missing"])
            elif kind == "text":
                n += TEXT_HASH_FEATURES
        return n

    @property
    def cat_sizes(self) -> list[int]:
        return [len(self.stats[c]["levels"]) + 1 for c, k in self.columns.items() if k == "category"]

    def spec(self) -> dict:
        return {"kind": "table", "n_num": self.n_numeric, "cat_sizes": self.cat_sizes}

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """Rows → (numbers float32 [N, d], category codes int64 [N, c]); code 0 is missing/unseen."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise DataError(
                f"the table lacks column(s) {', '.join(map(repr, missing))}; "
                f"expected the training columns: {', '.join(self.columns)}."
            )
        nums, cats = [], []
        for c, kind in self.columns.items():
            if kind == "number":
                st = self.stats[c]
                v = _numbers(df[c], c)
                if st["missing"]:
                    nums.append(np.isnan(v).astype(np.float32))
                v = np.where(np.isnan(v), st["median"], v)
                nums.append(((v - st["mean"]) / st["std"]).astype(np.float32))
            elif kind == "category":
                index = {lv: i + 1 for i, lv in enumerate(self.stats[c]["levels"])}
                codes = df[c].astype(str).where(df[c].notna(), None).map(index)
                cats.append(codes.fillna(0).to_numpy(dtype=np.int64))
            else:
                nums.extend(_hash_text(df[c]).T)
        x_num = np.stack(nums, 1).astype(np.float32) if nums else np.zeros((len(df), 0), np.float32)
        if cats:
            return x_num, np.stack(cats, 1)
        return (x_num,)


def _numbers(s: pd.Series, name: str) -> np.ndarray:
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    bad = s.notna().to_numpy() & np.isnan(v)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(
            f"column {name!r} holds non-numeric values at rows {rows} (e.g. {s.iloc[rows[0]]!r}); "
            "fix them or make the whole column text."
        )
    if np.isinf(v).any():
        rows = np.flatnonzero(np.isinf(v))[:5].tolist()
        raise DataError(f"column {name!r} holds infinite values at rows {rows}; replace them with finite numbers.")
    return v


def _hash_text(s: pd.Series) -> np.ndarray:
    from sklearn.feature_extraction.text import HashingVectorizer

    hv = HashingVectorizer(n_features=TEXT_HASH_FEATURES, alternate_sign=False, norm="l2")
    return hv.transform(s.fillna("").astype(str)).toarray().astype(np.float32)
