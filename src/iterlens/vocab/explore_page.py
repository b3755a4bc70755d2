"""The self-contained HTML page of ``iterlens explore``: its data and its template.

The page is ``explore_page.html`` (inline CSS and JavaScript, no fonts, scripts or requests
outside the file) with the page's data inlined as one JSON block. The data holds, per lens,
what the page prints and nothing more (:func:`page_data`):

- each position's token set (:mod:`iterlens.vocab.explore`) and every set token's
  probability at every layer, in thousandths, the zeros left out (:func:`sparse`): the hover's
  top-k probabilities, the top-1 probability and the pinned token's curve are all read from
  it;
- each cell's top-k, as indexes into its position's set;
- entropy and KL in hundredths of a bit, the next token's rank as an integer.

Every number is stored as the integer the page prints (:func:`fixed`: the decimal rounding
Python's ``format`` does), so the page shows the Parquet tables' values to the printed digits.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path

import numpy as np

from iterlens.io import atomic_path
from iterlens.vocab.explore import Exploration
from iterlens.vocab.html import visible

DIGITS = {"prob": 3, "entropy_bits": 2, "kl_bits": 2}
"""Decimals the page prints: probabilities, entropy and KL (bits)."""

TEMPLATE = "explore_page.html"


def fixed(values: np.ndarray, decimals: int) -> np.ndarray:
    """``values`` as the integers ``format(v, f".{decimals}f")`` prints (the point dropped).

    Rounds the binary value exactly, half to even, as Python's ``format`` does: ``np.rint``
    on the scaled float64, with the few values within rounding error of a half re-done by
    ``format`` itself.
    """
    x = np.asarray(values, dtype=np.float64)
    scaled = x * 10.0**decimals
    out = np.rint(scaled)
    near = np.flatnonzero(np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6)
    for i in near:
        out.flat[i] = float(format(x.flat[i], f".{decimals}f").replace(".", ""))
    return out.astype(np.int64)


def sparse(values: np.ndarray) -> list[list[int]]:
    """The non-zero entries of a flat integer array as ``[gaps, values]``.

    ``gaps[i]`` is the distance from the previous non-zero entry (the first: from -1), so the
    page rebuilds the dense array by a running sum; the zeros (a probability that prints as
    0.000: most of them) take no room.
    """
    where = np.flatnonzero(values)
    gaps = np.diff(where, prepend=-1)
    return [gaps.tolist(), values[where].tolist()]


def page_data(found: Exploration, label: str) -> dict:
    """The JSON the page reads: the model, the prompt and every number it can show."""
    cells, tokens = found.cells, found.tokens
    n_pos, n_layers = len(found.input_ids), found.n_layers
    first = tokens[(tokens["lens"] == found.lenses[0]) & (tokens["layer"] == 0)]
    sets = [first.loc[first["position"] == t, "token_id"].tolist() for t in range(n_pos)]
    data = {
        "model": label,
        "prompt": found.prompt,
        "n_layers": n_layers,
        "top_k": found.top_k,
        "lenses": found.lenses,
        "digits": DIGITS,
        "input": [visible(found.words[int(i)]) for i in found.input_ids],
        "next": [visible(found.words[int(i)]) for i in found.input_ids[1:]] + [""],
        "words": {str(i): visible(w) for i, w in found.words.items()},
        "sets": sets,
        "next_slot": [sets[t].index(int(found.input_ids[t + 1])) for t in range(n_pos - 1)] + [-1],
        "prob": {},
        "topk": {},
        "entropy": {},
        "kl": {},
        "rank": {},
    }
    size = [len(s) for s in sets]
    for lens in found.lenses:
        mine = tokens[tokens["lens"] == lens].sort_values(["position", "layer"], kind="stable")
        prob = fixed(mine["prob"].to_numpy(), DIGITS["prob"])
        slot = mine["topk"].to_numpy()
        per_pos, per_top = [], [[[] for _ in range(n_pos)] for _ in range(n_layers + 1)]
        start = 0
        for t in range(n_pos):
            stop = start + size[t] * (n_layers + 1)
            per_pos.append(sparse(prob[start:stop]))
            slots = slot[start:stop].reshape(n_layers + 1, size[t])
            for layer in range(n_layers + 1):
                where = np.flatnonzero(slots[layer] >= 0)
                per_top[layer][t] = where[np.argsort(slots[layer][where])].tolist()
            start = stop
        data["prob"][lens] = per_pos
        data["topk"][lens] = per_top
        grid = cells[cells["lens"] == lens].sort_values(["layer", "position"], kind="stable")
        shape = (n_layers + 1, n_pos)
        for key, column in (("entropy", "entropy_bits"), ("kl", "kl_bits")):
            values = fixed(grid[column].to_numpy(), DIGITS[column])
            data[key][lens] = values.reshape(shape).tolist()
        data["rank"][lens] = grid["next_rank"].to_numpy().reshape(shape).tolist()
    return data


def page_html(found: Exploration, label: str) -> str:
    """The page of one prompt, as one string."""
    payload = json.dumps(page_data(found, label), separators=(",", ":"), ensure_ascii=False)
    payload = payload.replace("<", "\\u003c")  # no "</script>" inside the data block
    template = files("iterlens.vocab").joinpath(TEMPLATE).read_text(encoding="utf-8")
    title = html.escape(f"{label}: {found.prompt[:60]}")
    return template.replace("__TITLE__", title).replace("__DATA__", payload)


def write_page(found: Exploration, label: str, out: str | Path) -> None:
    """Write the page of ``found`` to ``out``, atomically."""
    with atomic_path(out) as tmp:
        tmp.write_text(page_html(found, label), encoding="utf-8")
