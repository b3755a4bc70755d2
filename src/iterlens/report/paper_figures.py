"""The figures of the paper: their order, their group, and their ``snakemake --report`` caption.

The paper shows every figure of the run with the same caption the report gives it
(``workflow/report/<name>.rst``), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ACROSS = ("", "Across models")  # the group of figures that are no one model's
# The paper's main figures, in the order the paper numbers them: the one list of them.
# iterlens.report.figures draws these at the text width (its PAPER_FIGURES is this list), the
# workflow has a rule for each (workflow/rules/figures.smk); the paper places each in its
# section, every other figure goes to the appendix.
MAIN_FIGURES = [
    "paper_lenses",
    "paper_transfer",
    "paper_shared",
    "paper_controls",
    "paper_dose",
]


def figure_groups(studied: Sequence[dict]) -> list[tuple[str, str]]:
    """``(file-name prefix, title)`` of each figure group, in the paper's order.

    One group per studied model (:meth:`iterlens.models.studied.Study.describe`), then the
    figures of no one model.
    """
    return [(f"{m['name']}_", m["title"]) for m in studied] + [ACROSS]


def _group_of(stem: str, groups: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The group of a figure: the longest prefix it starts with."""
    return max((g for g in groups if stem.startswith(g[0])), key=lambda g: len(g[0]))


def caption_of(stem: str, captions: str | Path) -> str:
    """The ``snakemake --report`` caption of a figure, as plain text (``rst`` literals unquoted).

    A figure ``<model>_<name>.png`` takes ``<name>.rst`` (the longest such ``<name>`` that has
    a caption); ``<stem>.rst`` wins if it exists.
    """
    folder = Path(captions)
    parts = stem.split("_")
    names = ["_".join(parts[i:]) for i in range(len(parts))]
    for name in names:
        if (folder / f"{name}.rst").exists():
            return " ".join((folder / f"{name}.rst").read_text().replace("``", "").split())
    raise FileNotFoundError(f"no caption for figure '{stem}' in {folder} (add {stem}.rst)")


FIGURE_ORDER = ["training", "lens_curves", "shared_lens", "transfer", "prediction_depth", "ranks"]


def _figure_order(fig: dict, groups: Sequence[tuple[str, str]]) -> tuple[int, int, str]:
    if fig["main"]:
        return -1, MAIN_FIGURES.index(fig["stem"]), fig["stem"]
    group = [title for _, title in groups].index(fig["group"])
    rank = next(
        (i for i, name in enumerate(FIGURE_ORDER) if fig["stem"].endswith(name)), len(FIGURE_ORDER)
    )
    return group, rank, fig["stem"]


def figure_entries(
    figures: Sequence[str],
    root: str | Path,
    captions: str | Path,
    groups: Sequence[tuple[str, str]],
) -> list[dict]:
    """One entry (path under ``root``, stem, group, caption, main) per figure, in order.

    The main figures (:data:`MAIN_FIGURES`, ``main`` true) come first, in the argument's
    order; then the others by group. ``groups`` are :func:`figure_groups`' (a figure named for
    no studied model is "Across models").
    """
    groups = [*groups, ACROSS] if ACROSS not in groups else list(groups)
    entries = [_figure(f, root, captions, groups) for f in figures]
    return sorted(entries, key=lambda fig: _figure_order(fig, groups))


def _figure(
    path: str, root: str | Path, captions: str | Path, groups: Sequence[tuple[str, str]]
) -> dict:
    rel = Path(path).resolve().relative_to(Path(root).resolve())
    stem = rel.stem
    main = stem in MAIN_FIGURES
    prefix, group = ACROSS if main else _group_of(stem, groups)
    model = f"[{prefix[:-1]}] " if prefix else ""
    return {
        "path": rel.as_posix(),
        "stem": stem,
        "group": group,
        "caption": model + caption_of(stem, captions),
        "main": main,
    }
