"""Self-contained HTML pages of the vocabulary-space tables: one a prompt, and an index.

No scripts, fonts or external files: inline CSS only, heat maps as inline background
colours, full match lists in ``title`` tooltips. Every table carries a ``data-table`` id
(listed by :func:`page_table_ids`) so tests can find each one in the rendered page.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from iterlens import artifacts
from iterlens.io import atomic_path
from iterlens.vocab.analysis import VocabSettings
from iterlens.vocab.nearest import HIGH_BIAS

NEVER = "\u2013"  # a prediction that never settles
CSS = """
body{font:13px/1.35 system-ui,sans-serif;margin:1.2em 2em;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 .2em}h2{font-size:16px;margin:1.4em 0 .3em}
h3{font-size:14px;margin:1em 0 .2em}p.note{color:#555;max-width:60em;margin:.2em 0 .5em}
table{border-collapse:collapse;margin:.3em 0 1em}
td,th{border:1px solid #ddd;padding:2px 5px;text-align:center;white-space:nowrap}
th{background:#f4f4f4;font-weight:600}td.w{font-family:ui-monospace,monospace}
td.hb{color:#999;font-style:italic;background:#f2f2f2}td.l{text-align:left}
.prompt{font-family:ui-monospace,monospace;background:#f7f7f7;padding:.3em .6em}
header{border-bottom:2px solid #333;padding-bottom:.5em}
"""


def visible(token: str) -> str:
    """A token as visible text: spaces, newlines and tabs made visible, the empty string too."""
    text = token.replace(" ", "\u2423").replace("\n", "\u23ce").replace("\t", "\u21e5")
    return text or "\u2205"


def show(token: str) -> str:
    """A token as visible, escaped text (see :func:`visible`)."""
    return html.escape(visible(token))


def heat(value: float, vmax: float, diverging: bool = False) -> str:
    """Inline CSS background for ``value`` on a 0..vmax scale (red; blue below 0)."""
    if not math.isfinite(value) or vmax <= 0:
        return ""
    alpha = min(1.0, abs(value) / vmax)
    rgb = "59,76,192" if diverging and value < 0 else "220,60,40"
    return f' style="background:rgba({rgb},{alpha:.2f})"'


def _table(table_id: str, header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return (
        f'<table data-table="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def match_lists(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, list[tuple]]:
    """The match lists of a long table, by ``keys``.

    Each list holds (token, cosine, high bias, list is high-bias) tuples in rank order.
    """
    frame = frame.sort_values([*keys, "rank"], kind="stable")
    lists: dict[tuple, list[tuple]] = {}
    columns = [frame[k].to_numpy() for k in keys]
    rest = zip(
        frame["token"], frame["cosine"], frame["high_bias"], frame["list_high_bias"], strict=True
    )
    for *key, row in zip(*columns, rest, strict=True):
        lists.setdefault(tuple(k.item() if hasattr(k, "item") else k for k in key), []).append(row)
    return lists


def _words_cell(matches: list[tuple], show_k: int) -> str:
    """A match list as one cell: greyed ``(high bias)`` where high-bias tokens dominate."""
    tip = html.escape(
        ", ".join(f"{t!r} {c:.2f}{' (hb)' if h else ''}" for t, c, h, _ in matches), quote=True
    )
    if matches[0][3]:
        return f'<td class="w hb" title="{tip}">{HIGH_BIAS}</td>'
    words = " \u00b7 ".join(show(t) for t, *_ in matches[:show_k])
    return f'<td class="w" title="{tip}">{words}</td>'


def page_table_ids(lenses: list[str], n_layers: int) -> list[str]:
    """The ``data-table`` ids every prompt page has, in page order."""
    ids = [f"evolution-{lens}" for lens in lenses] + [f"rank-{lens}" for lens in lenses]
    ids += ["attention-first"] + [f"heads-{layer}" for layer in range(n_layers)]
    ids += [f"attention-{layer}" for layer in range(n_layers)]
    ids += [f"neurons-{layer}" for layer in range(n_layers)] + ["position0"]
    return ids


def _evolution(steps: pd.DataFrame, top: pd.DataFrame, tokens: list[str], lens: str) -> str:
    steps = steps[steps["lens"] == lens]
    top = top[top["lens"] == lens]
    tips = {
        key: ", ".join(f"{t!r} {p:.2f}" for t, p in zip(g["token"], g["prob"], strict=True))
        for key, g in top.sort_values("rank").groupby(["layer", "position"])
    }
    n_layers = int(steps["layer"].max())
    rows = []
    for layer in range(n_layers, -1, -1):
        cells = [f"<th>{layer}</th>"]
        for r in steps[steps["layer"] == layer].sort_values("position").itertuples():
            tip = html.escape(tips[layer, r.position], quote=True)
            hit = " \u2713" if r.top1_id == r.next_id else ""
            cells.append(
                f'<td class="w" title="{tip}"{heat(r.top1_prob, 1.0)}>{show(r.top1)}{hit}</td>'
            )
        rows.append("".join(cells))
    first = steps[steps["layer"] == 0].sort_values("position")
    nexts = [show(tokens[i + 1]) if i + 1 < len(tokens) else "" for i in range(len(tokens))]
    rows.append("<th>next</th>" + "".join(f'<td class="w">{t}</td>' for t in nexts))
    rows.append(
        "<th>settles</th>"
        + "".join(f"<td>{s if s <= n_layers else NEVER}</td>" for s in first["settled_layer"])
    )
    header = ["layer"] + [show(t) for t in tokens]
    return _table(f"evolution-{lens}", header, rows)


def _ranks(steps: pd.DataFrame, tokens: list[str], lens: str) -> str:
    steps = steps[steps["lens"] == lens]
    n_layers = int(steps["layer"].max())
    vmax = math.log1p(max(1, int(steps["next_rank"].max())))
    rows = []
    for layer in range(n_layers, -1, -1):
        cells = [f"<th>{layer}</th>"]
        for r in steps[steps["layer"] == layer].sort_values("position").itertuples():
            if r.next_rank < 0:
                cells.append("<td></td>")
            else:  # hot = the next token ranks high
                value = vmax - math.log1p(r.next_rank)
                cells.append(f"<td{heat(value, vmax)}>{r.next_rank}</td>")
        rows.append("".join(cells))
    return _table(f"rank-{lens}", ["layer"] + [show(t) for t in tokens], rows)


def prompt_page(
    model_label: str,
    prompt: str,
    tokens: list[str],
    tables: dict[str, pd.DataFrame],
    settings: VocabSettings,
) -> str:
    """The HTML page of one prompt; ``tables`` are that prompt's rows (and the model's)."""
    steps, top = tables["evolution"], tables["evolution_topk"]
    lenses = list(dict.fromkeys(steps["lens"]))
    n_layers = int(steps["layer"].max())
    head_words, attention = tables["head_words"], tables["attention"]
    n_heads = int(head_words["head"].max()) + 1
    cols = [show(t) for t in tokens]
    parts = [
        f"<header><h1>iterlens \u00b7 vocabulary space</h1><p>model <b>"
        f"{html.escape(model_label)}</b>, {n_layers} layers, {n_heads} heads a layer</p>"
        f'<p class="prompt">{html.escape(prompt)}</p></header>'
    ]
    parts.append(
        '<h2>Token evolution</h2><p class="note">Top-1 token of each layer (rows, '
        "last layer on top) at each position under each lens; shade = its "
        "probability, \u2713 = it is the actual next token; hover for the top-k. "
        "<i>settles</i>: the layer from which the top-1 equals the final top-1.</p>"
    )
    for lens in lenses:
        parts.append(f"<h3>{lens} lens</h3>" + _evolution(steps, top, tokens, lens))
    parts.append('<h2>Rank of the next token</h2><p class="note">0 = top-1; shade = high rank.</p>')
    for lens in lenses:
        parts.append(f"<h3>{lens} lens</h3>" + _ranks(steps, tokens, lens))
    first = tables["attention_first"]
    rows = [
        f"<th>{layer}</th>"
        + "".join(
            f"<td{heat(a, 1.0)}>{a:.2f}</td>"
            for a in first[first["layer"] == layer].sort_values("head")["attention"]
        )
        for layer in range(n_layers)
    ]
    parts.append(
        '<h2>Attention heads</h2><p class="note">Mean attention to position 0 '
        "(queries 1..T-1) of each head:</p>"
        + _table("attention-first", ["layer"] + [f"h{h}" for h in range(n_heads)], rows)
    )
    parts.append(
        '<p class="note">Nearest words to each token\'s <b>pattern</b> vector (what '
        "the last token's query matches it on; vocabulary through the layer's input "
        "norm) and <b>message</b> vector (what it writes; vocabulary through the "
        f"final norm and unembedding). {HIGH_BIAS}: most matches are high-bias "
        "tokens (hover for the list).</p>"
    )
    grouped = match_lists(head_words, ["layer", "head", "kind", "position"])
    for layer in range(n_layers):
        rows = []
        for head in range(n_heads):
            for kind in ("pattern", "message"):
                cells = [f"<th>h{head} {kind}</th>"] + [
                    _words_cell(grouped[layer, head, kind, pos], settings.show_k)
                    for pos in range(len(tokens))
                ]
                rows.append("".join(cells))
        parts.append(
            f"<h3>Layer {layer} heads</h3>" + _table(f"heads-{layer}", ["head"] + cols, rows)
        )
    parts.append(
        '<h2>Attention patterns</h2><p class="note">Attention of each query (row) '
        "to each earlier key (column).</p>"
    )
    for layer in range(n_layers):
        att = attention[attention["layer"] == layer]
        weight = {(r.head, r.query, r.key): r.weight for r in att.itertuples()}
        rows = []
        for head in range(n_heads):
            for q in range(len(tokens)):
                cells = [f"<th>h{head} {cols[q]}</th>"]
                for k in range(len(tokens)):
                    w = weight.get((head, q, k))
                    cells.append("<td></td>" if w is None else f"<td{heat(w, 1.0)}>{w:.2f}</td>")
                rows.append("".join(cells))
        parts.append(
            f"<details><summary>Layer {layer}</summary>"
            + _table(f"attention-{layer}", ["query"] + cols, rows)
            + "</details>"
        )
    parts.append(_neurons(tables, tokens, n_layers, settings))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(model_label)}: {html.escape(prompt[:60])}</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def _neurons(
    tables: dict[str, pd.DataFrame], tokens: list[str], n_layers: int, settings: VocabSettings
) -> str:
    acts, words, p0 = tables["activations"], tables["neuron_words"], tables["position0_neurons"]
    pivots = {
        layer: acts[acts["layer"] == layer].pivot(
            index="neuron", columns="position", values="activation"
        )
        for layer in range(n_layers)
    }
    chosen = {
        layer: a.abs()
        .max(axis=1)
        .sort_values(ascending=False, kind="stable")
        .index[: settings.top_neurons]
        for layer, a in pivots.items()
    }

    # group only the word lists the page shows (a model has thousands of neurons)
    def key(layer, neuron):
        return np.asarray(layer, dtype=np.int64) * (1 << 32) + np.asarray(neuron)

    shown = [key(layer, ns.to_numpy()) for layer, ns in chosen.items()]
    shown.append(key(p0["layer"].to_numpy(), p0["neuron"].to_numpy()))
    keep = np.isin(
        key(words["layer"].to_numpy(), words["neuron"].to_numpy()), np.concatenate(shown)
    )
    lists = match_lists(words[keep], ["layer", "neuron", "side"])
    parts = [
        f'<h2>FFN neurons</h2><p class="note">Per layer, the {settings.top_neurons} '
        "neurons with the largest activation on this prompt: nearest words to their "
        "input weights (what they read) and output weights (what they write), and "
        "their activation at each position (red +, blue \u2212).</p>"
    ]
    cols = [show(t) for t in tokens]
    for layer in range(n_layers):
        a = pivots[layer]
        vmax = float(a.loc[chosen[layer]].abs().max().max()) if len(chosen[layer]) else 0.0
        rows = []
        for neuron in chosen[layer]:
            cells = [
                f"<th>{neuron}</th>",
                _words_cell(lists[layer, neuron, "in"], settings.show_k),
                _words_cell(lists[layer, neuron, "out"], settings.show_k),
            ]
            cells += [f"<td{heat(v, vmax, diverging=True)}>{v:.2f}</td>" for v in a.loc[neuron]]
            rows.append("".join(cells))
        parts.append(
            f"<h3>Layer {layer}</h3>"
            + _table(f"neurons-{layer}", ["neuron", "reads", "writes"] + cols, rows)
        )
    rows = []
    for r in p0.itertuples():
        rows.append(
            f"<td>{r.layer}</td><td>{r.neuron}</td><td>{r.act0:.2f}</td>"
            f"<td>{r.max_later:.2f}</td><td>{r.ratio:.1f}</td>"
            + _words_cell(lists[r.layer, r.neuron, "in"], settings.show_k)
            + _words_cell(lists[r.layer, r.neuron, "out"], settings.show_k)
        )
    if not rows:
        rows.append('<td colspan="7">none on this prompt</td>')
    parts.append(
        f'<h3>Neurons firing only at position 0</h3><p class="note">Activation at '
        f"position 0 at least {settings.position0_ratio:g}\u00d7 the largest later "
        f"one, and in the top {100 * (1 - settings.position0_quantile):g}% of its "
        "layer.</p>"
        + _table(
            "position0",
            ["layer", "neuron", "act at 0", "max later", "ratio", "reads", "writes"],
            rows,
        )
    )
    return "".join(parts)


def index_page(entries: list[dict]) -> str:
    """The landing page: one row a (model, prompt), linking its page.

    Args:
        entries: dicts with ``model``, ``label``, ``prompt`` (text), ``href`` and, where the
            prompt has an interactive lens page, ``explore`` (its link).
    """

    def explore(e: dict) -> str:
        if not e.get("explore"):
            return "<td></td>"
        return f'<td><a href="{html.escape(e["explore"], quote=True)}">lens explorer</a></td>'

    rows = [
        f'<td>{html.escape(e["model"])}</td><td class="l">{html.escape(e["label"])}'
        f'</td><td class="l"><a href="{html.escape(e["href"], quote=True)}">'
        f"{html.escape(e['prompt'])}</a></td>{explore(e)}"
        for e in entries
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>iterlens: vocabulary space</title><style>{CSS}</style></head><body>"
        "<header><h1>iterlens \u00b7 vocabulary space</h1></header>"
        '<p class="note">One page a model and prompt: token evolution under the logit '
        "and tuned lenses, attention heads and FFN neurons read as words; and its lens "
        "explorer, an interactive layers \u00d7 positions map under every lens.</p>"
        + _table("index", ["model", "source", "prompt", "interactive"], rows)
        + "</body></html>\n"
    )


def page_name(prompt: int) -> str:
    """File name of prompt ``prompt``'s page."""
    return artifacts.VOCAB_PAGE.format(prompt=prompt)


def write_pages(
    tables: dict[str, pd.DataFrame], folder: str | Path, model_label: str, settings: VocabSettings
) -> list[str]:
    """Write one page a prompt into ``folder`` (atomically); return their file names."""
    names = []
    prompts = tables["prompts"]
    for p, rows in prompts.groupby("prompt"):
        rows = rows.sort_values("position")
        mine = {
            name: (frame[frame["prompt"] == p] if "prompt" in frame else frame)
            for name, frame in tables.items()
        }
        page = prompt_page(
            model_label, str(rows["text"].iloc[0]), list(rows["token"]), mine, settings
        )
        names.append(page_name(int(p)))
        with atomic_path(Path(folder) / names[-1]) as tmp:
            tmp.write_text(page, encoding="utf-8")
    return names
