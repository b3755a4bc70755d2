"""Render the paper (``paper/*.typ``) to PDF and self-contained HTML with the ``typst`` wheel.

The manuscript source, the generated ``values.json`` and the figures it names are copied into
one build folder (Typst reads files only under its root), then compiled offline; the HTML
export inlines every figure as a data URI, so the page stands alone.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from iterlens.io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

MAIN = "paper.typ"


def citation_meta(citation: str | Path) -> dict[str, Any]:
    """Title, version and author names of a ``CITATION.cff``, the paper's front matter."""
    cff = yaml.safe_load(Path(citation).read_text())
    authors = [
        a.get("name") or f"{a.get('given-names', '')} {a.get('family-names', '')}".strip()
        for a in cff["authors"]
    ]
    return {"title": cff["title"], "version": str(cff["version"]), "authors": authors}


def render(
    source: str | Path,
    values: str | Path,
    workdir: str | Path,
    citation: str | Path,
    pdf: str | Path,
    html: str | Path,
) -> None:
    """Compile the paper in ``source`` with ``values`` (figures read under ``workdir``).

    Args:
        source: folder of the manuscript (``paper.typ`` and what it includes).
        values: the ``values.json`` written by :func:`iterlens.report.paper_values.collect`.
        workdir: the run's directory, which the figure paths in ``values`` are relative to.
        citation: ``CITATION.cff``, for title, version and authors.
        pdf: output PDF path.
        html: output HTML path (self-contained).
    """
    import typst

    source, workdir = Path(source), Path(workdir)
    if not (source / MAIN).exists():
        raise FileNotFoundError(f"no manuscript: {source / MAIN}")
    data = read_json(values)
    data["meta"] = citation_meta(citation)
    with tempfile.TemporaryDirectory(prefix="iterlens-paper-") as tmp:
        build = Path(tmp)
        for path in source.iterdir():
            if path.suffix in (".typ", ".bib", ".css"):
                shutil.copy2(path, build / path.name)
        for fig in data["figures"]:
            target = build / fig["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (workdir / fig["path"]).exists():
                raise FileNotFoundError(f"figure missing: {workdir / fig['path']}")
            shutil.copy2(workdir / fig["path"], target)
        write_json(data, build / "values.json")
        for out, fmt in ((pdf, "pdf"), (html, "html")):
            with atomic_path(out) as part:
                _, warnings = typst.compile_with_warnings(
                    str(build / MAIN),
                    output=str(part),
                    root=str(build),
                    format=fmt,
                    ignore_system_fonts=True,
                )
            for warning in warnings:  # HTML export drops page layout, by design
                quiet = fmt == "html" and re.search(
                    r"under active development|ignored during "
                    r"HTML export",
                    str(warning),
                )
                log.log(logging.DEBUG if quiet else logging.WARNING, "typst (%s): %s", fmt, warning)
