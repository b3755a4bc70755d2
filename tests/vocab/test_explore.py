"""`iterlens explore`: the tables against the model's own forward pass, the page in headless
Chromium (lens and statistic switched, a cell hovered and clicked, a token pinned) against
the tables, its size on a 262k-word vocabulary, and the errors it gives for bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from iterlens.cli import main
from iterlens.data.text import load_tokenizer, train_tokenizer
from iterlens.models.families import adapter_for, supported
from iterlens.models.lm import init_model, save_model
from iterlens.probing.lenses import make_lens, make_tuned_lens, save_lens
from iterlens.probing.readout import readout_from_lm
from iterlens.vocab.explore import explore_prompt
from iterlens.vocab.explore_page import fixed, page_data
from iterlens.vocab.explore_run import explore_lenses, table_paths

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
TEXTS = [
    "The people of the Union are strong and free.",
    "We must protect the freedom of the people.",
    "The Congress of the United States must act.",
] * 20
PROMPT = "The people of the Union must protect the freedom"
N_LAYERS = 3


def tiny(tok, family: str = "llama", seed: int = 0, **changes):
    """A tiny random LM of ``family`` on the tokenizer's vocabulary (or ``vocab_size``)."""
    config = adapter_for(family).tiny_config()
    config.vocab_size = len(tok)
    config.bos_token_id = config.eos_token_id = tok.eos_token_id
    for key, value in changes.items():
        setattr(config, key, value)
    return init_model(config, seed).eval()


def random_lenses(model, folder: Path, scale: float = 0.1) -> None:
    """A tuned and a shared lens with random translators, saved in ``folder/{tuned,shared}``."""
    readout = readout_from_lm(model)
    n_layers = len(adapter_for(model).blocks_of(model))
    tuned = make_tuned_lens(readout, n_layers)
    shared = make_lens("shared", readout, n_layers)
    with torch.no_grad():
        for p in [*tuned.layer_translators.parameters(), *shared.translator.parameters()]:
            p.normal_(0, scale)
    save_lens(tuned, folder / "tuned", readout, n_layers)
    save_lens(shared, folder / "shared", readout, n_layers)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("explore-tok")
    train_tokenizer(TEXTS, 300, root / "tokenizer")
    return root / "tokenizer"


@pytest.fixture(scope="module")
def explore_run(tmp_path_factory, tokenizer_dir):
    """A tiny Llama (untied, grouped-query attention), its random tuned and shared lenses in
    one folder of lenses, and the page `iterlens explore` writes for it."""
    root = tmp_path_factory.mktemp("explore")
    tok = load_tokenizer(tokenizer_dir)
    model = tiny(tok)
    save_model(model, tok, root / "model")
    random_lenses(model, root / "lenses")
    page = root / "out" / "page.html"
    argv = ["explore", "--quiet", "--model", str(root / "model"), "--lens", str(root / "lenses")]
    argv += ["--prompt", PROMPT, "--name", "tiny", "--top-k", "5", "--out", str(page)]
    assert main(argv) == 0
    cells, tokens = (pd.read_parquet(p) for p in table_paths(page))
    return root, page, cells, tokens


@pytest.mark.parametrize("family", supported())
def test_logit_lens_last_layer_is_the_model(family, tokenizer_dir):
    """Under the logit lens, layer L is the model's own prediction: its top-1 and top-k, its
    probabilities, a KL of zero and the next token's rank."""
    tok = load_tokenizer(tokenizer_dir)
    model = tiny(tok, family)
    found = explore_prompt(model, tok, PROMPT, explore_lenses(model, []), top_k=4)
    ids = torch.tensor(tok(PROMPT)["input_ids"])
    with torch.no_grad():
        probs = model(ids[None]).logits[0].float().softmax(-1)
    n_pos, last = len(ids), found.n_layers
    assert found.lenses == ["logit"] and last == len(adapter_for(model).blocks_of(model))
    cells = found.cells.set_index(["lens", "layer", "position"]).sort_index()
    assert len(cells) == (last + 1) * n_pos
    final = cells.loc[("logit", last)]
    np.testing.assert_array_equal(final["top1_id"], probs.argmax(-1))
    np.testing.assert_allclose(final["top1_prob"], probs.max(-1).values, atol=1e-5)
    assert (final["kl_bits"] < 1e-4).all()
    ranks = (probs[:-1] > probs[:-1].gather(-1, ids[1:, None])).sum(-1)
    np.testing.assert_array_equal(final["next_rank"].iloc[:-1], ranks)
    assert final["next_rank"].iloc[-1] == -1 and np.isnan(final["next_prob"].iloc[-1])
    tokens = found.tokens
    top = tokens[(tokens["layer"] == last) & (tokens["topk"] >= 0)]
    for t, rows in top.groupby("position"):
        rows = rows.sort_values("topk")
        assert list(rows["topk"]) == [0, 1, 2, 3]
        assert list(rows["token_id"]) == probs[t].topk(4).indices.tolist()
        np.testing.assert_allclose(rows["prob"], probs[t].topk(4).values, atol=1e-5)
    # every cell of a position stores the same token set, which holds the next token
    per_cell = tokens.groupby(["layer", "position"])["token_id"].apply(tuple)
    for t in range(n_pos):
        sets = {per_cell[layer, t] for layer in range(last + 1)}
        assert len(sets) == 1
        if t + 1 < n_pos:
            assert int(ids[t + 1]) in next(iter(sets))


def test_tables_cover_every_lens_layer_and_position(explore_run):
    _, page, cells, tokens = explore_run
    n_pos = len(cells["position"].unique())
    assert list(dict.fromkeys(cells["lens"])) == ["logit", "tuned", "shared"]
    assert len(cells) == 3 * (N_LAYERS + 1) * n_pos
    assert (
        tokens.groupby(["lens", "layer", "position"])["topk"].apply(lambda s: (s >= 0).sum()) == 5
    ).all()
    # each cell's top-1 is the first of its top-k, with the same probability
    first = tokens[tokens["topk"] == 0].set_index(["lens", "layer", "position"]).sort_index()
    both = cells.set_index(["lens", "layer", "position"]).sort_index()
    np.testing.assert_array_equal(first["token_id"], both["top1_id"])
    np.testing.assert_array_equal(first["prob"], both["top1_prob"])
    # the tuned lens's last layer is the identity: the logit lens's prediction
    last = both.xs(N_LAYERS, level="layer")
    np.testing.assert_array_equal(last.loc["tuned", "top1_id"], last.loc["logit", "top1_id"])
    assert not (last.loc["shared", "kl_bits"] == 0).all()  # the shared lens translates layer L
    assert page.stat().st_size < 200_000


def test_fixed_prints_as_format_does():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.random(20_000), [0.0, 0.0005, 0.0015, 0.0025, 0.1235, 0.9995, 1.0, 0.12345]]
    ).astype(np.float32)
    for decimals in (2, 3):
        got = fixed(values, decimals)
        want = [int(format(float(v), f".{decimals}f").replace(".", "")) for v in values]
        assert got.tolist() == want


class Dom(HTMLParser):
    """The elements of a dumped DOM as (tag, attributes, text) with their parents' ids."""

    VOID = {"meta", "br", "input", "img", "link", "hr", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[dict] = []
        self.all: list[dict] = []

    def handle_starttag(self, tag, attrs):
        node = {"tag": tag, "attrs": dict(attrs), "text": "", "children": []}
        if self.stack:
            self.stack[-1]["children"].append(node)
        self.all.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for node in self.stack:
            node["text"] += data

    def by_id(self, ident: str) -> dict:
        return next(n for n in self.all if n["attrs"].get("id") == ident)


def find(node: dict, tag: str, **attrs) -> list[dict]:
    """The descendants of ``node`` with ``tag`` and the given attribute values."""
    out = []
    for child in node["children"]:
        if child["tag"] == tag and all(child["attrs"].get(k) == v for k, v in attrs.items()):
            out.append(child)
        out += find(child, tag, **attrs)
    return out


def dump(page: Path, actions: str, tmp: Path) -> Dom:
    """The page's DOM in headless Chromium after the test hook's ``actions``."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp}",
         "--dump-dom", f"{page.resolve().as_uri()}#do={actions}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Dom()
    dom.feed(result.stdout)
    return dom


def shown(text: str) -> str:
    return text.replace(" ", "\u2423").replace("\n", "\u23ce").replace("\t", "\u21e5") or "\u2205"


@needs_chromium
def test_page_switches_hovers_pins_and_shows_the_tables_numbers(explore_run, tmp_path):
    _, page, cells, tokens = explore_run
    n_pos = len(cells["position"].unique())
    layer, pos = 2, 4
    dom = dump(page, f"lens:tuned;stat:kl;hover:{layer}:{pos};click:{layer}:{pos}", tmp_path)
    html_tag = dom.all[0]
    assert html_tag["attrs"].get("data-done") == "1" and "data-render-ms" in html_tag["attrs"]
    # self-contained: no external script, style, font or image
    assert not [n for n in dom.all if n["tag"] in ("link", "img", "iframe") or "src" in n["attrs"]]
    assert not re.search(r"https?://", page.read_text())
    tuned = cells[cells["lens"] == "tuned"].set_index(["layer", "position"])
    # the grid: every cell's top-1 token under the tuned lens, shaded by KL
    grid = dom.by_id("grid")
    tds = find(grid, "td")
    by_cell = {
        (int(td["attrs"]["data-layer"]), int(td["attrs"]["data-pos"])): td
        for td in tds
        if "data-layer" in td["attrs"]
    }
    assert len(by_cell) == (N_LAYERS + 1) * n_pos
    for (lay, t), td in by_cell.items():
        assert td["text"] == shown(tuned.loc[(lay, t), "top1"])
    # shaded by the KL: one shade per printed value, darker where smaller
    shade = {}
    for key, td in by_cell.items():
        shade.setdefault(f"{tuned.loc[key, 'kl_bits']:.2f}", set()).add(td["attrs"]["style"])
    assert all(len(s) == 1 for s in shade.values()) and len(shade) > 1
    assert "sel" in by_cell[layer, pos]["attrs"]["class"]
    # the hovered cell's numbers, to the printed digits
    row = tuned.loc[(layer, pos)]
    stats = {
        tr["attrs"]["data-stat"]: find(tr, "td")[0]["text"]
        for tr in find(dom.by_id("cell-stats"), "tr")
    }
    assert dom.by_id("cell-title")["text"].startswith(
        f"tuned lens · layer {layer} · position {pos}"
    )
    assert stats["top1_prob"] == f"{row['top1_prob']:.3f}"
    assert stats["entropy"] == f"{row['entropy_bits']:.2f}"
    assert stats["kl"] == f"{row['kl_bits']:.2f}"
    assert stats["rank"] == str(row["next_rank"])
    assert stats["next_prob"] == f"{row['next_prob']:.3f}"
    mine = tokens[(tokens["lens"] == "tuned") & (tokens["position"] == pos)]
    top = mine[(mine["layer"] == layer) & (mine["topk"] >= 0)].sort_values("topk")
    items = find(dom.by_id("topk"), "li")
    assert [int(li["attrs"]["data-token-id"]) for li in items] == top["token_id"].tolist()
    assert [find(li, "span", **{"class": "p"})[0]["text"] for li in items] == [
        f"{p:.3f}" for p in top["prob"]
    ]
    # the click pinned the cell's top-1: its probability at every layer under every lens
    pinned = int(row["top1_id"])
    assert dom.by_id("pinned-title")["text"].startswith(shown(row["top1"]))
    check_pinned(dom, tokens, pos, pinned)
    # then pin the third token of the list instead, under the logit lens and the rank statistic
    dom = dump(page, f"lens:logit;stat:rank;hover:{layer}:{pos};pin:2", tmp_path)
    logit = tokens[(tokens["lens"] == "logit") & (tokens["position"] == pos)]
    third = logit[(logit["layer"] == layer) & (logit["topk"] == 2)]["token_id"].item()
    check_pinned(dom, tokens, pos, third)
    ranks = cells[cells["lens"] == "logit"].set_index(["layer", "position"])["next_rank"]
    stats = {
        tr["attrs"]["data-stat"]: find(tr, "td")[0]["text"]
        for tr in find(dom.by_id("cell-stats"), "tr")
    }
    assert stats["rank"] == str(ranks[layer, pos])


def check_pinned(dom: Dom, tokens: pd.DataFrame, pos: int, token_id: int) -> None:
    """The pinned table shows ``token_id``'s probability at ``pos``, every layer and lens."""
    want = tokens[(tokens["position"] == pos) & (tokens["token_id"] == token_id)]
    want = want.set_index(["lens", "layer"])["prob"]
    rows = [tr for tr in find(dom.by_id("pinned-table"), "tr") if "data-layer" in tr["attrs"]]
    assert len(rows) == N_LAYERS + 1
    for tr in rows:
        for td in find(tr, "td"):
            if "data-lens" in td["attrs"]:
                key = (td["attrs"]["data-lens"], int(tr["attrs"]["data-layer"]))
                assert td["text"] == f"{want[key]:.3f}", key


def test_page_stays_small_on_a_262k_vocabulary_and_30_layers(tmp_path, tokenizer_dir):
    """A 30-token prompt, 30 layers, 262,144 words and three lenses: under 3 MB. A random
    model with random lenses is the worst case (its top-k lists hardly overlap)."""
    tok = load_tokenizer(tokenizer_dir)
    model = tiny(tok, vocab_size=262_144, num_hidden_layers=30, hidden_size=16,
                 num_attention_heads=2, num_key_value_heads=1, intermediate_size=32)  # fmt: skip
    random_lenses(model, tmp_path / "lenses", scale=0.5)
    words = (" ".join(TEXTS[:3])).split()
    prompt = ""
    while len(tok(prompt)["input_ids"]) < 30:
        prompt = f"{prompt} {words.pop(0)}".strip()
    found = explore_prompt(model, tok, prompt, explore_lenses(model, [tmp_path / "lenses"]))
    n_pos = len(found.input_ids)
    assert n_pos >= 30 and found.n_layers == 30
    assert found.cells["top1_id"].max() >= len(tok)  # ids past the tokenizer's are shown too
    from iterlens.vocab.explore_page import write_page

    write_page(found, "tiny-262k", tmp_path / "page.html")
    size = (tmp_path / "page.html").stat().st_size
    assert size < 3_000_000, size
    data = page_data(found, "tiny-262k")
    assert len(data["sets"]) == n_pos and data["lenses"] == ["logit", "tuned", "shared"]


def test_bad_input_is_refused_with_a_clear_error(explore_run, tmp_path, tokenizer_dir, capsys):
    root = explore_run[0]
    model = str(root / "model")
    out = str(tmp_path / "p.html")

    def error(*argv: str) -> str:
        assert main(["explore", "--quiet", *argv, "--out", out]) == 1
        return capsys.readouterr().err

    assert "the prompt is empty" in error("--model", model, "--prompt", "  ")
    assert "could not be loaded" in error("--model", "no-such-org/no-such-model", "--prompt", "x")
    # a lens folder made for another model (another seed: another unembedding)
    tok = load_tokenizer(tokenizer_dir)
    random_lenses(tiny(tok, seed=1), tmp_path / "other")
    assert "a lens for another model" in error(
        "--model", model, "--lens", str(tmp_path / "other" / "tuned"), "--prompt", "x"
    )
    assert "not a lens folder" in error("--model", model, "--lens", str(tmp_path), "--prompt", "x")
    # a studied model's name before the run has made it
    err = error("--model", "lm", "--workdir", str(tmp_path), "--prompt", "x")
    assert "studied model" in err and "snakemake" in err
    assert not Path(out).exists()


def test_page_data_is_what_the_tables_hold(explore_run):
    """The page's JSON decodes to the tables' values to the printed digits."""
    _, page, cells, tokens = explore_run
    text = page.read_text()
    data = json.loads(
        re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1)
    )
    n_layers = data["n_layers"]
    for lens in data["lenses"]:
        for t, (gaps, vals) in enumerate(data["prob"][lens]):
            dense = np.zeros((n_layers + 1) * len(data["sets"][t]), dtype=np.int64)
            if gaps:
                dense[np.cumsum(gaps) - 1] = vals
            mine = tokens[(tokens["lens"] == lens) & (tokens["position"] == t)]
            mine = mine.sort_values("layer", kind="stable")
            assert mine["token_id"].tolist()[: len(data["sets"][t])] == data["sets"][t]
            want = [int(f"{p:.3f}".replace(".", "")) for p in mine["prob"]]
            assert dense.tolist() == want


def test_the_vocab_index_links_the_lens_explorer(tmp_path):
    from iterlens.io import write_json
    from iterlens.vocab.pipeline import write_index

    for model in ("a", "b"):
        folder = tmp_path / "vocab" / model
        meta = {
            "source": model,
            "prompts": ["one", "two"],
            "pages": ["prompt-0.html", "prompt-1.html"],
        }
        write_json(meta, folder / "meta.json")
    (tmp_path / "vocab" / "a" / "explore-1.html").write_text("<html></html>")
    index = tmp_path / "vocab" / "index.html"
    write_index([tmp_path / "vocab" / "a", tmp_path / "vocab" / "b"], index)
    links = re.findall(r'href="([^"]+)">lens explorer', index.read_text())
    assert links == ["a/explore-1.html"]


def test_stored_probabilities_are_each_lenses_own(explore_run):
    """Every stored probability (computed from the set's rows of the unembedding) is the
    lens's own softmax, and each cell's top-k its k most probable tokens."""
    from iterlens.models.lm import load_model_dir
    from iterlens.probing.extract import ResidualRecorder

    root, _, cells, tokens = explore_run
    model = load_model_dir(root / "model")
    lenses = explore_lenses(model, [root / "lenses"])
    ids = torch.tensor(load_tokenizer(root / "model")(PROMPT)["input_ids"])
    with ResidualRecorder(model) as rec:
        hidden = rec.run(ids[None])[0][0]
    for (lens, layer), rows in tokens.groupby(["lens", "layer"]):
        with torch.no_grad():
            probs = lenses[lens](hidden[:, layer], layer).softmax(-1)
        want = probs[
            torch.tensor(rows["position"].to_numpy()), torch.tensor(rows["token_id"].to_numpy())
        ]
        np.testing.assert_allclose(rows["prob"], want, rtol=1e-4, atol=1e-6)
        top = rows[rows["topk"] >= 0].sort_values(["position", "topk"])
        assert top["token_id"].tolist() == probs.topk(5).indices.reshape(-1).tolist()


def test_a_studied_model_by_name_brings_its_own_lenses(explore_run, tmp_path):
    """``--model lm`` in a run's directory: its model folder and its tuned and shared lenses."""
    root = explore_run[0]
    run = tmp_path / "run"
    shutil.copytree(root / "model", run / "results" / "models" / "lm")
    shutil.copytree(root / "lenses", run / "results" / "probed" / "lm" / "lenses")
    page = tmp_path / "lm.html"
    argv = ["explore", "--quiet", "--model", "lm", "--workdir", str(run), "--prompt", PROMPT]
    assert main([*argv, "--top-k", "3", "--out", str(page)]) == 0
    cells = pd.read_parquet(table_paths(page)[0])
    assert list(dict.fromkeys(cells["lens"])) == ["logit", "tuned", "shared"]
    assert '"model":"lm"' in page.read_text()
