"""The rendered paper: its numbers against their tables, its pages, its figures, its HTML."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, write_fake_results
from test_paper_layout import layout_problems

from iterlens.io import write_json
from iterlens.report.findings import plain
from iterlens.report.paper import render
from iterlens.report.paper_values import collect
from iterlens.report.values import evaluate, fmt

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None,
    reason="pdftotext/pdftoppm (Debian poppler-utils) not installed",
)
# A printed value: 2 or 3 decimals, not part of a version or section number ("0.1.0", "3.3.1").
DECIMAL = re.compile(r"(?<![\d.])-?\d+\.\d{2,}(?![.\d])")
CONFIG = {
    "seed": 0,
    "tokenizer": {"vocab_size": 512},
    "lm": {
        "model": "reference",
        "n_layer": 4,
        "n_embd": 32,
        "n_head": 2,
        "steps": 10,
        "batch_size": 2,
        "seq_len": 8,
    },
    "extract": {"lensfit_tokens": 100, "eval_tokens": 50},
    "lens": {"steps": 30, "batch_size": 16, "lr": 0.01, "holdout_fraction": 0.1},
    "probe": {"steps": 40, "batch_size": 16, "lr": 0.01, "holdout_fraction": 0.1},
}


def pdf_text(pdf: Path, layout: bool = False) -> str:
    """The PDF's text but its list of references: the main text before it and the appendix
    after it, whitespace collapsed (``layout``: one line a row)."""
    text = subprocess.run(
        ["pdftotext", *(["-layout"] if layout else []), str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    main, heading, rest = text.rpartition("References")
    if heading:  # the references end where the appendix begins (if the paper has one)
        text = main + (rest[rest.index("Appendix") :] if "Appendix" in rest else "")
    if layout:
        return "\n".join(" ".join(line.split()) for line in text.splitlines())
    return " ".join(text.split())


def build_fake(tmp_path: Path, **kwargs) -> tuple[dict, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = write_fake_results(tmp_path / "run", **kwargs)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0], color="tab:red")
    fig.savefig(root / "results" / "figures" / "lm_transfer.png")
    plt.close(fig)
    values = collect(
        root,
        [str(root / "results" / "figures" / "lm_transfer.png")],
        ROOT / "workflow/report",
        CONFIG,
    )
    write_json(values, tmp_path / "values.json")
    render(
        ROOT / "paper",
        tmp_path / "values.json",
        root,
        ROOT / "CITATION.cff",
        tmp_path / "paper.pdf",
        tmp_path / "paper.html",
    )
    return values, pdf_text(tmp_path / "paper.pdf")


def check_numbers(values: dict, text: str, root: Path, pdf: Path) -> None:
    """Each value recomputes from its table; each decimal in the text is one of the values."""
    for name, entry in values["values"].items():
        assert fmt(evaluate(entry["spec"], root), entry["digits"]) == entry["text"], name
    printed = {e["text"] for e in values["values"].values()}
    # pdftotext may glue a table's row label to its first cell ("cnn_plain_s1" "3.71" ->
    # "cnn_plain_s13.71"): take the model names, which end in digits, out first
    for model in sorted(values["models"], key=len, reverse=True):
        text = text.replace(model, " ")
    stray = [x for x in DECIMAL.findall(text) if x not in printed]
    assert not stray, f"numbers in the PDF that are no named value: {stray}"
    # a layer table has a row per layer; tables side by side share a line of the layout text
    lines = [f" {line} " for line in pdf_text(pdf, layout=True).splitlines()]
    for table in values["layer_tables"]:
        for layer in range(table["n_layers"] + 1):
            # a value left out prints as n.i. for a model that is not informative (KL of an
            # untrained net), as an en dash for one that is (a layer without a free probe)
            absent = "n.i." if table["model"] in values.get("not_informative", []) else "–"
            cells = " ".join(
                values["values"][name]["text"] if name in values["values"] else absent
                for name in (row["names"][layer] for row in table["rows"])
            )
            assert any(f" {layer} {cells} " in line for line in lines), (table["model"], layer)


def squeezed_pages(pdf: Path) -> list[str]:
    """The text of every page with all whitespace taken out."""
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return ["".join(page.split()) for page in text.split("\f")]


def reads(pdf: Path | list[str], phrase: str) -> bool:
    """Whether the PDF reads ``phrase`` as written (whitespace aside): on one page, or begun at
    the foot of one page's text and ended at the head of the next, with whatever floats
    (figures, tables) the page break has between them."""
    pages = squeezed_pages(pdf) if isinstance(pdf, Path) else pdf
    want = "".join(phrase.split())
    if any(want in page for page in pages):
        return True
    return any(
        want[:cut] in first and want[cut:] in second
        for first, second in zip(pages, pages[1:], strict=False)
        for cut in range(1, len(want))
    )


def check_findings(values: dict, pdf: Path) -> None:
    """Each finding of ``values.json`` is in the PDF as written (line and page breaks aside)."""
    assert values["findings"]
    pages = squeezed_pages(pdf)
    for finding in values["findings"]:
        assert reads(pages, plain(finding["text"])), finding["key"]


@needs_poppler
def test_fake_paper_numbers_and_sentences(tmp_path):
    values, text = build_fake(tmp_path, intervals=True)
    check_numbers(values, text, tmp_path / "run", tmp_path / "paper.pdf")
    v = values["values"]
    adj = "cnn_residual.transfer_ce_penalty_adjacent_bits"
    assert (
        f"its twin with identity skips does better, the intervals apart ({v[adj]['text']} "
        f"[{v[adj + '_lo']['text']}, {v[adj + '_hi']['text']}] bits)"
    ) in text
    assert "Eval accuracy of the CNN twins: plain 0.656, residual 0.337 (1762 and 1762" in text
    check_findings(values, tmp_path / "paper.pdf")
    assert "This run has no vocabulary-space analysis" in text
    assert "This run has no rotated twins" in text
    assert "Its lenses and probes are trained on 100 lens-fit tokens" in text
    assert "with AdamW, 30 steps of 16 examples (40 for probes) unless a model" in text
    assert "Intervals are shown as value [low, high]" in text
    assert layout_problems(tmp_path / "paper.pdf") == []


@needs_poppler
def test_fake_paper_without_vision_or_intervals(tmp_path):
    values, text = build_fake(tmp_path, vision=False)
    check_numbers(values, text, tmp_path / "run", tmp_path / "paper.pdf")
    assert "The vision control is disabled in this run." in text
    assert "carry no bootstrap intervals" in text
    assert "cnn_plain" not in text
    check_findings(values, tmp_path / "paper.pdf")
    assert layout_problems(tmp_path / "paper.pdf") == []  # no main figures: still a paper


@needs_poppler
def test_fake_paper_sentence_follows_a_reversed_result(tmp_path):
    import pandas as pd

    root = write_fake_results(tmp_path / "first")
    headline = pd.read_csv(root / "results/tables/headline.csv")
    plain = headline.loc[headline.model == "cnn_plain", "transfer_ce_penalty_adjacent_bits"]
    headline.loc[headline.model == "cnn_residual", "transfer_ce_penalty_adjacent_bits"] = (
        float(plain.iloc[0]) + 1
    )
    headline.to_csv(root / "results/tables/headline.csv", index=False)
    values = collect(root, [], ROOT / "workflow/report", CONFIG)
    write_json(values, tmp_path / "v.json")
    render(
        ROOT / "paper",
        tmp_path / "v.json",
        root,
        ROOT / "CITATION.cff",
        tmp_path / "p.pdf",
        tmp_path / "p.html",
    )
    text = pdf_text(tmp_path / "p.pdf")
    assert "its twin with identity skips does not do better" in text
    assert "does better" not in text
    check_findings(values, tmp_path / "p.pdf")


# ----------------------------------------------------------------------- the smoke run's paper
@pytest.mark.slow
@needs_poppler
def test_smoke_paper_numbers_match_tables(smoke_run):
    paper = smoke_run / "results" / "paper"
    values = json.loads((paper / "values.json").read_text())
    text = pdf_text(paper / "paper.pdf")
    check_numbers(values, text, smoke_run, paper / "paper.pdf")
    check_findings(values, paper / "paper.pdf")  # the rotated twins' and dose response's too
    import pandas as pd

    headline = pd.read_csv(smoke_run / "results/tables/headline.csv").set_index("model")
    lm_adj = fmt(headline.loc["lm", "transfer_ce_penalty_adjacent_frac"], 2)
    assert f"adjacent layer, loses {lm_adj} of the model" in text
    figures = sorted(p.name for p in (smoke_run / "results/figures").glob("*.png"))
    assert sorted(Path(f["path"]).name for f in values["figures"]) == figures


@pytest.mark.slow
@needs_poppler
def test_smoke_paper_pages_and_figures(smoke_run, tmp_path):
    import numpy as np
    from PIL import Image

    pdf = smoke_run / "results/paper/paper.pdf"
    values = json.loads((smoke_run / "results/paper/values.json").read_text())
    listing = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    image_pages = [int(line.split()[0]) for line in listing if line.split()[2] == "image"]
    assert len(image_pages) == len(values["figures"]) > 0
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        rgb = np.asarray(Image.open(page).convert("RGB")).astype(int)
        ink = (rgb.min(axis=2) < 200).mean()
        colour = (rgb.max(axis=2) - rgb.min(axis=2) > 40).mean()  # text is grey, plots are not
        distinct = len(np.unique(rgb.reshape(-1, 3), axis=0))
        assert ink > 0.01, f"page {number} is blank"
        if number in image_pages:
            # (a flat bar chart has some 250 colours; a page of text none but grey)
            assert colour > 5e-4 and distinct > 200, f"page {number}: no figure drawn"
        else:
            assert colour == 0 and distinct <= 256, f"page {number}: colour without an image"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium (Debian) not installed")
def test_smoke_paper_html_loads_every_figure(smoke_run, tmp_path):
    html = (smoke_run / "results/paper/paper.html").read_text()
    assert 'src="http' not in html and "<img" in html  # self-contained
    probe = (
        "<script>window.addEventListener('load', () => { for (const img of "
        "document.images) img.setAttribute('data-loaded', img.complete && "
        "img.naturalWidth > 0 ? String(img.naturalWidth) : 'no'); });</script>"
    )
    page = tmp_path / "paper.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    values = json.loads((smoke_run / "results/paper/values.json").read_text())
    loaded = re.findall(r'data-loaded="([^"]*)"', dom)
    assert len(loaded) == len(values["figures"]) > 0, dom[-2000:]
    assert all(w.isdigit() and int(w) > 100 for w in loaded), loaded
    assert "Bibliography" in dom or "References" in dom


@pytest.mark.slow
def test_smoke_paper_html_links_every_lens_explorer_page(smoke_run):
    """The paper's HTML links each LM's vocabulary page and lens explorer for every prompt."""
    import re

    paper = smoke_run / "results/paper"
    links = set(re.findall(r'href="([^"#]+\.html)"', (paper / "paper.html").read_text()))
    explore = {link for link in links if "/explore-" in link}
    expected = {
        page.relative_to(smoke_run / "results").as_posix()
        for page in (smoke_run / "results/vocab").glob("*/explore-*.html")
    }
    assert expected and {(paper / link).resolve() for link in explore} == {
        (smoke_run / "results" / page).resolve() for page in expected
    }
