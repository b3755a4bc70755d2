"""`snakemake --report` on the smoke run: every figure and the paper, each with its caption."""

import pytest
from conftest import ROOT, snakemake


@pytest.mark.slow
def test_report_has_every_figure_with_its_caption(smoke_run, tmp_path):
    report = tmp_path / "report.html"
    result = snakemake(smoke_run, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text()
    figures = sorted((smoke_run / "results" / "figures").glob("*.png"))
    assert figures
    for png in figures:
        assert png.name in html, png.name
    for rst in sorted((ROOT / "workflow" / "report").glob("*.rst")):
        first_words = " ".join(rst.read_text().split()[:6])
        assert first_words in html, rst.name
    assert "paper.pdf" in html
