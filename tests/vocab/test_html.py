"""End to end: `iterlens vocab` on a saved tiny model, pages checked in headless Chromium."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import torch

from iterlens.cli import main
from iterlens.data.text import load_tokenizer, train_tokenizer
from iterlens.models.lm import save_model
from iterlens.probing.lenses import make_tuned_lens, save_lens
from iterlens.probing.readout import readout_from_lm
from iterlens.vocab.analysis import TABLES
from iterlens.vocab.html import page_table_ids

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
PROMPTS = ["The people of the Union", "We must protect the freedom"]
TEXTS = [
    "The people of the Union are strong and free.",
    "We must protect the freedom of the people.",
    "The Congress of the United States must act.",
] * 20
N_LAYERS, N_HEADS, TOP_NEURONS = 3, 2, 8


def chromium(*args: str, tmp: Path) -> str:
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Tables(HTMLParser):
    """Every table of a DOM by its data-table id: a list of rows, each a list of cells."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[dict]]] = {}
        self.current: str | None = None
        self.cell: dict | None = None
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.urls += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "table":
            self.current = attrs.get("data-table")
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current:
            self.cell = {"tag": tag, "class": attrs.get("class", ""), "text": ""}
            self.tables[self.current][-1].append(self.cell)

    def handle_endtag(self, tag):
        if tag == "table":
            self.current = None
        elif tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


def rendered(page: Path, tmp: Path) -> Tables:
    parser = Tables()
    parser.feed(chromium("--dump-dom", page.resolve().as_uri(), tmp=tmp))
    return parser


@pytest.fixture(scope="module")
def vocab_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    train_tokenizer(TEXTS, 300, root / "tokenizer")
    tok = load_tokenizer(root / "tokenizer")
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_layer=N_LAYERS, n_embd=32, n_head=N_HEADS, n_positions=64)
    ).eval()
    save_model(model, tok, root / "model")
    readout = readout_from_lm(model)
    lens = make_tuned_lens(readout, N_LAYERS)
    with torch.no_grad():
        for p in lens.layer_translators.parameters():
            p.normal_(0, 0.1)
    save_lens(lens, root / "tuned", readout, N_LAYERS)
    base = [
        "vocab",
        "--quiet",
        "--model",
        str(root / "model"),
        "--lens",
        str(root / "tuned"),
        "--prompt",
        PROMPTS[0],
        "--prompt",
        PROMPTS[1],
        "--name",
        "tiny",
    ]
    assert main([*base, "--out", str(root / "out" / "tiny")]) == 0
    # every token high-bias: every match list must show as (high bias)
    assert main([*base, "--bias-threshold", "-100", "--out", str(root / "out" / "biased")]) == 0
    assert (
        main(
            [
                "vocab-index",
                "--models",
                str(root / "out" / "tiny"),
                str(root / "out" / "biased"),
                "--out",
                str(root / "out" / "index.html"),
            ]
        )
        == 0
    )
    return root


def test_tables_are_written(vocab_run):
    out = vocab_run / "out" / "tiny"
    for name in TABLES:
        assert (out / f"{name}.parquet").exists(), name
    prompts = pd.read_parquet(out / "prompts.parquet")
    assert sorted(prompts["text"].unique()) == sorted(PROMPTS)
    evolution = pd.read_parquet(out / "evolution.parquet")
    assert set(evolution["lens"]) == {"logit", "tuned"}


@needs_chromium
def test_every_table_is_in_the_rendered_page(vocab_run, tmp_path):
    out = vocab_run / "out" / "tiny"
    prompts = pd.read_parquet(out / "prompts.parquet")
    for p in range(len(PROMPTS)):
        n_pos = int((prompts["prompt"] == p).sum())
        dom = rendered(out / f"prompt-{p}.html", tmp_path)
        assert list(dom.tables) == page_table_ids(["logit", "tuned"], N_LAYERS)
        assert not {"script", "link", "img", "iframe"} & set(dom.tags)
        assert not [u for u in dom.urls if "//" in u]  # nothing outside the page
        shape = {
            name: (len(rows) - 1, {len(r) for r in rows[1:]}) for name, rows in dom.tables.items()
        }  # body rows, cells per row
        for lens in ("logit", "tuned"):
            assert shape[f"evolution-{lens}"] == (N_LAYERS + 3, {n_pos + 1})
            assert shape[f"rank-{lens}"] == (N_LAYERS + 1, {n_pos + 1})
        assert shape["attention-first"] == (N_LAYERS, {N_HEADS + 1})
        for layer in range(N_LAYERS):
            assert shape[f"heads-{layer}"] == (2 * N_HEADS, {n_pos + 1})
            assert shape[f"attention-{layer}"] == (N_HEADS * n_pos, {n_pos + 1})
            assert shape[f"neurons-{layer}"] == (TOP_NEURONS, {n_pos + 3})
        assert shape["position0"][0] >= 1
        # the last layer's row of the logit lens shows the model's own top-1 tokens
        steps = pd.read_parquet(out / "evolution.parquet")
        final = steps[
            (steps["prompt"] == p) & (steps["lens"] == "logit") & (steps["layer"] == N_LAYERS)
        ].sort_values("position")
        top_row = [c["text"].rstrip(" \u2713") for c in dom.tables["evolution-logit"][1][1:]]
        shown = [t.replace(" ", "\u2423") or "\u2205" for t in final["top1"]]
        assert top_row == shown


@needs_chromium
def test_high_bias_lists_are_greyed(vocab_run, tmp_path):
    dom = rendered(vocab_run / "out" / "biased" / "prompt-0.html", tmp_path)
    cells = [c for row in dom.tables["heads-0"][1:] for c in row if c["tag"] == "td"]
    assert cells and all(c["text"] == "(high bias)" and "hb" in c["class"] for c in cells)
    plain = rendered(vocab_run / "out" / "tiny" / "prompt-0.html", tmp_path)
    assert not any("hb" in c["class"] for row in plain.tables["heads-0"] for c in row)


@needs_chromium
def test_index_links_every_page(vocab_run, tmp_path):
    index = vocab_run / "out" / "index.html"
    dom = rendered(index, tmp_path)
    assert len(dom.tables["index"]) == 1 + 2 * len(PROMPTS)
    assert len(dom.urls) == 2 * len(PROMPTS)
    assert all((index.parent / url).exists() for url in dom.urls)


@needs_chromium
def test_page_screenshot_is_not_blank(vocab_run, tmp_path):
    shot = tmp_path / "page.png"
    chromium(
        f"--screenshot={shot}",
        "--window-size=1000,700",
        (vocab_run / "out" / "tiny" / "prompt-0.html").resolve().as_uri(),
        tmp=tmp_path,
    )
    from PIL import Image

    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20  # text and heat-map shades, not one colour
