"""Data: sources, schema inference, splits and preprocessing."""

from .prepare import Prepared, Split, prepare
from .registry import preprocessor_from_dict
from .sources import Data, from_arrays, load

__all__ = ["Data", "Prepared", "Split", "from_arrays", "load", "prepare", "preprocessor_from_dict"]
