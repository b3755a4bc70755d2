"""Named values and claims: each value read from a table a rule wrote, with its spec.

A value records its number, the text it is printed as, the table it comes from and a *spec*
saying how it was computed (rows selected, column, reduction). :func:`evaluate` recomputes a
value from its spec, so a test can check every printed number against its source. Claims are
statements of direction (``left op right``) over named values.
"""

from __future__ import annotations

import math
import operator
import re
from pathlib import Path
from typing import Any

import pandas as pd

from iterlens.io import read_table

AGGS = ("first", "mean", "min", "max", "sum", "count")
OPS = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}


def digits_for(column: str) -> int:
    """Decimals a column is printed with: 3 for accuracies and shares, 0 for counts, else 2."""
    if re.search(r"(layer|layers|depth|count|params|parameters|steps|tokens)(_lo|_hi)?$", column):
        return 0
    if re.search(r"(acc|agree|share|accuracy)(_lo|_hi)?$", column):
        return 3
    return 2


def fmt(value: float, digits: int) -> str:
    """Print ``value`` with ``digits`` decimals; a value that rounds to zero prints unsigned."""
    text = f"{value:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def _select(df: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for key, want in where.items():
        if key not in df.columns:
            raise ValueError(f"no column '{key}' to select on; columns: {list(df.columns)}")
        mask &= df[key].isin(want) if isinstance(want, list) else df[key] == want
    return df[mask]


def evaluate(spec: dict[str, Any], root: str | Path = ".") -> float:
    """Recompute a value from its spec, reading ``spec['table']`` under ``root``.

    Spec keys: ``table``; ``where`` (column -> value or list of values); ``column``; ``agg``
    (``first`` (exactly one row), ``mean``, ``min``, ``max``, ``sum``, ``count``); optional
    ``minus`` (a ``where`` override whose rows, paired on ``pair_on``, are subtracted before
    the reduction).
    """
    if spec["agg"] not in AGGS:
        raise ValueError(f"unknown agg {spec['agg']!r}; one of {', '.join(AGGS)}")
    df = read_table(Path(root) / spec["table"])
    rows = _select(df, spec.get("where", {}))
    if spec["column"] not in df.columns:
        raise ValueError(f"{spec['table']} has no column '{spec['column']}'")
    pair = spec.get("pair_on")
    series = rows.set_index(pair)[spec["column"]] if pair else rows[spec["column"]]
    if "minus" in spec:
        other = _select(df, {**spec.get("where", {}), **spec["minus"]})
        series = series - other.set_index(pair)[spec["column"]]
    if series.empty:
        raise ValueError(f"no rows in {spec['table']} for {spec}")
    series = series.dropna()
    if series.empty:
        return math.nan  # the rows exist, the value is undefined (not informative)
    if spec["agg"] == "first":
        if len(series) != 1:
            raise ValueError(f"{len(series)} rows in {spec['table']} for {spec}, expected one")
        return float(series.iloc[0])
    return float(getattr(series, spec["agg"])())


class Values:
    """The collection of named values, claims, tables and figures written to ``values.json``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.values: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, dict[str, Any]] = {}

    def add(self, name: str, spec: dict[str, Any], how: str, digits: int | None = None) -> None:
        """Evaluate ``spec`` and record it as ``name``.

        Also records ``name_lo``/``name_hi`` when the table carries interval columns
        ``<column>_lo``/``<column>_hi`` and the value is one row's (``agg: first``); a value
        that is undefined (NaN) is left out.
        """
        digits = digits_for(spec["column"]) if digits is None else digits
        value = evaluate(spec, self.root)
        if not math.isfinite(value):
            return  # not informative (e.g. a normalised penalty of an untrained net)
        self.values[name] = {
            "value": value,
            "text": fmt(value, digits),
            "digits": digits,
            "source": spec["table"],
            "how": how,
            "spec": spec,
        }
        columns = read_table(self.root / spec["table"]).columns
        if "minus" in spec or spec["agg"] != "first" or spec["column"].endswith(("_lo", "_hi")):
            return  # bounds of a difference or of a reduction are not its interval
        for end in ("lo", "hi"):
            if f"{spec['column']}_{end}" in columns:
                self.add(
                    f"{name}_{end}",
                    {**spec, "column": f"{spec['column']}_{end}"},
                    f"{how}; 95% bootstrap bound ({end})",
                    digits,
                )

    def claim(self, name: str, left: str, op: str, right: str | float, says: str) -> None:
        """Record the claim ``left op right`` over named values (None if one is missing)."""
        lhs = self.values.get(left)
        rhs = right if isinstance(right, float | int) else self.values.get(right)
        ok = None
        if lhs is not None and rhs is not None:
            r = rhs if isinstance(rhs, float | int) else rhs["value"]
            ok = bool(OPS[op](lhs["value"], r))
        self.claims[name] = {"holds": ok, "left": left, "op": op, "right": right, "says": says}
