"""Tables: type each column (number, category, text), then turn rows into model inputs."""

from __future__ import annotations

import re
import unicodedata
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


# ---- numbers written as text: "$1,202.74", "1 202,5", "12%", "(300)", "CHF 1'500"
_SPACES = re.compile(r"[\s'’]")  # thousands separators that are never decimal points
_ALLOWED = re.compile(r"[0-9\s.,'’+\-−()%]")


def _strip(text: str) -> str | None:
    """Currency symbols, spaces, apostrophes and a trailing % removed; (x) -> -x. None when nothing is left."""
    t = "".join(ch for ch in str(text).strip() if unicodedata.category(ch) != "Sc").strip()
    if t.startswith("(") and t.endswith(")"):  # accounting negatives
        t = "-" + t[1:-1].strip()
    t = _SPACES.sub("", t.replace("−", "-")).removesuffix("%")
    return t or None


def _comma_decimal(cleaned: list[str]) -> bool:
    """Whether a column writes decimals with a comma (1.202,5 or 3,14) rather than a point (1,202.5 or 3.14);
    values such as 1,202 or 1.202 alone say nothing (a point wins a tie)."""
    comma = point = False
    for t in cleaned:
        for mark, other in ((",", "."), (".", ",")):
            last = t.rfind(mark)
            if last < 0 or last < t.rfind(other):
                continue  # `mark` is not the last separator of t
            decimal = other in t or (t.count(mark) == 1 and len(t) - last - 1 != 3)
            thousands = t.count(mark) > 1
            if (mark == ",") == decimal and (decimal or thousands):
                comma = True  # "1.202,5", "3,14", "1.202.000"
            elif decimal or thousands:
                point = True  # "1,202.5", "3.14", "1,202,000"
    return comma and not point


def _number(t: str, decimal: str) -> float:
    """One stripped value as a float (NaN when it is not one number): thousands groups of three digits."""
    thousands = "." if decimal == "," else ","
    head, sep, tail = t.partition(decimal)
    if decimal in tail:
        return float("nan")
    if thousands in head:
        sign = head[0] if head[:1] in ("+", "-") else ""
        groups = head[len(sign):].split(thousands)
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            return float("nan")
        head = sign + "".join(groups)
    text = head + ("." + tail if sep else "")
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        return float("nan")
    return float(text)


def parse_numbers(values) -> np.ndarray:
    """Text values read as numbers, with currency symbols, thousands separators and % removed (12% is 12);
    the decimal mark (point or comma) is decided for the whole column. NaN where a value is missing or is
    not a number."""
    s = pd.Series(np.asarray(values, dtype=object).ravel())
    present = s.notna()
    uniq = pd.unique(s[present].astype(str))
    cleaned = {u: _strip(u) for u in uniq}
    decimal = "," if _comma_decimal([c for c in cleaned.values() if c]) else "."
    table = {u: (_number(c, decimal) if c else float("nan")) for u, c in cleaned.items()}
    out = np.full(len(s), np.nan)
    out[present.to_numpy()] = s[present].astype(str).map(table).to_numpy(dtype=np.float64)
    return out


def text_numbers(values, what: str = "the target") -> np.ndarray:
    """parse_numbers, or a DataError that shows a value that is not a number and the characters that stop it."""
    v = parse_numbers(values)
    s = pd.Series(np.asarray(values, dtype=object).ravel())
    bad = (s.notna() & np.isnan(v)).to_numpy()
    if not bad.any():
        return v
    example = str(s[bad].iloc[0])
    stops = [w for w in re.split(_ALLOWED.pattern, example) if w and not all(
        unicodedata.category(ch) == "Sc" for ch in w)]
    n = int(bad.sum())
    values_ = f"{what} holds {n} value{'s' if n > 1 else ''} such as {example!r}"
    if stops:
        why = (f"{values_} that {'are not numbers' if n > 1 else 'is not a number'} (the characters "
               f"{', '.join(map(repr, dict.fromkeys(stops)))} stop it)")
    else:
        why = f"{values_} that cannot be read as one number"
    raise DataError(f"{why}; fix those values, or use --task classify if they are labels.")
