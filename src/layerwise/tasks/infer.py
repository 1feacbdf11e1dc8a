"""Which task a target column asks for: classes (labels, codes) or numbers to regress."""

from __future__ import annotations

import numpy as np

MAX_CODES = 1000  # consecutive integer codes 0..K-1 or 1..K read as classes up to this many
MIN_ROWS_PER_CODE = 5  # ... when each code has at least this many rows on average


def infer_task(y: np.ndarray) -> tuple[str, str]:
    """Pick classify or regress from the target values; returns (name, reason).

    Labels (text, booleans) and up to 20 distinct whole numbers are classes. More whole numbers are classes
    when they look like codes: every integer from 0 (or 1) to K-1 (or K) present, K at most 1000, with at least
    five rows per value on average (26 letters coded 0-25, a product category id). Anything else is regressed.
    """
    import pandas as pd

    s = pd.Series(y).dropna()
    if pd.api.types.is_bool_dtype(s):
        return "classify", f"the target holds labels ({s.nunique()} distinct)"
    if not pd.api.types.is_numeric_dtype(s):
        return _text(s)
    values = s.to_numpy(dtype=np.float64)
    whole = bool(np.all(values == np.round(values)))
    distinct = np.unique(values)
    n = distinct.size
    if whole and n <= 20:
        return "classify", f"the target holds {n} distinct whole numbers"
    if whole and _codes(distinct, len(values)):
        lo, hi, each = int(distinct[0]), int(distinct[-1]), len(values) / n
        return "classify", (f"the target holds {n} consecutive whole numbers {lo}–{hi}, about "
                            f"{_round2(each):,} rows each")
    return "regress", f"the target holds {n} distinct numbers"


def _text(s) -> tuple[str, str]:
    """Text labels, unless nearly all of them are numbers written as text ("$1,202.74", "12%") that would be
    regressed as numbers (the few that are not then get a clear error from the regress task)."""
    from ..data.tables import parse_numbers

    labels = ("classify", f"the target holds labels ({s.nunique()} distinct)")
    if s.dtype.kind not in "OUS" or len(s) == 0:
        return labels
    v = parse_numbers(s.to_numpy())
    read = ~np.isnan(v)
    if read.mean() < 0.9 or infer_task(v[read])[0] != "regress":
        return labels
    return "regress", (f"the target holds numbers written as text such as {str(s.iloc[0])!r} "
                       f"({np.unique(v[read]).size} distinct)")


def _codes(distinct: np.ndarray, rows: int) -> bool:
    """Class codes: 0..K-1 or 1..K with none missing, K <= MAX_CODES, many rows per code."""
    n = distinct.size
    return (distinct[0] in (0, 1) and distinct[-1] - distinct[0] == n - 1 and n <= MAX_CODES
            and rows >= MIN_ROWS_PER_CODE * n)


def _round2(x: float) -> int:
    """Two significant digits: 312.5 -> 310, 40 -> 40."""
    return int(float(f"{x:.2g}")) if x >= 1 else 1
