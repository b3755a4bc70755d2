"""The figures of the paper: their order, their group, and their ``snakemake --report`` caption.

The paper shows every figure of the run with the same caption the report gives it
(``workflow/report/<name>.rst``), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Figure groups, in the order the paper shows them.
GROUPS = [
    ("lm_", "The language model"),
    ("cnn_plain_", "The plain CNN"),
    ("cnn_residual_", "The residual CNN"),
    ("", "Across models"),
]


def caption_of(stem: str, captions: str | Path) -> str:
    """The ``snakemake --report`` caption of a figure, as plain text (``rst`` literals unquoted).

    A figure ``<family>_<name>.png`` takes ``<name>.rst``; ``<stem>.rst`` wins if it exists.
    """
    folder = Path(captions)
    names = [stem] + [stem[len(p) :] for p, _ in GROUPS if p and stem.startswith(p)]
    for name in names:
        if (folder / f"{name}.rst").exists():
            return " ".join((folder / f"{name}.rst").read_text().replace("``", "").split())
    raise FileNotFoundError(f"no caption for figure '{stem}' in {folder} (add {stem}.rst)")


FIGURE_ORDER = ["training", "lens_curves", "shared_lens", "transfer", "prediction_depth", "ranks"]


def _figure_order(fig: dict[str, str]) -> tuple[int, int, str]:
    group = [title for _, title in GROUPS].index(fig["group"])
    rank = next(
        (i for i, name in enumerate(FIGURE_ORDER) if fig["stem"].endswith(name)), len(FIGURE_ORDER)
    )
    return group, rank, fig["stem"]


def figure_entries(
    figures: Sequence[str], root: str | Path, captions: str | Path
) -> list[dict[str, str]]:
    """One entry (path under ``root``, stem, group, caption) per figure, in the paper's order."""
    return sorted((_figure(f, root, captions) for f in figures), key=_figure_order)


def _figure(path: str, root: str | Path, captions: str | Path) -> dict[str, str]:
    rel = Path(path).resolve().relative_to(Path(root).resolve())
    stem = rel.stem
    prefix, group = next((p, title) for p, title in GROUPS if stem.startswith(p))
    model = f"[{prefix[:-1]}] " if prefix else ""
    return {
        "path": rel.as_posix(),
        "stem": stem,
        "group": group,
        "caption": model + caption_of(stem, captions),
    }
