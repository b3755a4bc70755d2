"""The README and docs/: short README, working links and anchors, pages true to the code.

Every relative link ``[text](path)`` or ``[text](path#anchor)`` of README.md and docs/*.md must
point to a file that exists (relative to the page that holds the link), and every anchor to a
heading of its target, named the way GitHub names it. Links into ``results/`` (written by a run,
absent from a fresh clone) must name a path the workflow writes (``iterlens.artifacts``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

from iterlens import artifacts
from iterlens.cli import COMMANDS, build_parser

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
MAX_README_LINES = 220

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`[^`\n]*`")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown page outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(text: str) -> list[str]:
    """Every link target of a page, outside code blocks and code spans."""
    found = []
    for line in prose_lines(text):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            found.append(match.group(2))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text, lower case, punctuation but '-' and '_' dropped,
    spaces to hyphens (code spans lose their backticks, links keep their text)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def workflow_patterns() -> list[re.Pattern]:
    """Every path the workflow writes under results/, as a regex (a folder of one matches too)."""
    out = []
    for value in vars(artifacts).values():
        if isinstance(value, str) and value.startswith("results/"):
            parts = re.split(r"(\{[^}]*\})", value)
            body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
            out.append(re.compile(f"{body}(/.*)?"))
    return out


def problems(page: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the links of one page in the repository at ``root`` (empty: nothing)."""
    text = page.read_text()
    bad = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http(s), mailto: not checked here
            continue
        path, _, anchor = target.partition("#")
        if not path:
            dest = page
        else:
            dest = (page.parent / path).resolve()
            try:
                inside = dest.relative_to(root.resolve()).as_posix()
            except ValueError:
                bad.append(f"{target}: outside the repository")
                continue
            if inside.startswith("results/"):
                if not any(p.fullmatch(inside.rstrip("/")) for p in workflow_patterns()):
                    bad.append(f"{target}: not a path the workflow writes")
                continue
            if not dest.exists():
                bad.append(f"{target}: no such file")
                continue
        if anchor:
            if dest.suffix != ".md":
                bad.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest.read_text()):
                bad.append(f"{target}: no heading '#{anchor}' in {dest.name}")
    return bad


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move a section to docs/"


def test_there_are_pages_and_the_readme_links_every_one():
    assert len(PAGES) > 1
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README.read_text())}
    for page in PAGES[1:]:
        assert page.resolve() in linked, f"README.md does not link {page.relative_to(ROOT)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_and_anchor_resolves(page):
    assert problems(page) == []


def test_the_checks_catch_broken_links(tmp_path):
    """The checker itself: a missing file, a missing anchor, a stray results/ path, ../ out."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text(
        "# A page\n\n## The `x` section (y)\n\n## Again\n## Again\n"
    )
    page = root / "README.md"
    good = [
        "[a](docs/a.md)",
        "[x](docs/a.md#the-x-section-y)",
        "[again](docs/a.md#again-1)",
        "[top](#top)",
        "[fig](results/figures/paper_lenses.png)",
        "[web](https://example.org/#nothing)",
        "`[code](not/checked.md)`",
    ]
    page.write_text("# Top\n\n" + "\n".join(good) + "\n\n```\n[fenced](nope.md)\n```\n")
    assert problems(page, root) == []
    for broken in [
        "[gone](docs/b.md)",
        "[anchor](docs/a.md#no-such-section)",
        "[self](#nowhere)",
        "[out](../shared/DESIGN.md)",
        "[run](results/nothing/here.txt)",
    ]:
        page.write_text(f"# Top\n\n{broken}\n")
        assert len(problems(page, root)) == 1, broken


def test_slugs_follow_github():
    assert slug("Gemma 3 270M (`config/gemma3.yaml`)") == "gemma-3-270m-configgemma3yaml"
    assert slug("Intervals, the common scale and honest controls") == (
        "intervals-the-common-scale-and-honest-controls"
    )
    assert slug("The `iterlens` command") == "the-iterlens-command"
    assert slug("lens_metrics.csv") == "lens_metricscsv"


def sections(text: str, level: str) -> dict[str, str]:
    """The sections of a page at one heading level, by heading text."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_the_command_page_has_one_section_per_command_and_only_real_options():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    found = {
        h.strip("`"): body for h, body in sections((DOCS / "cli.md").read_text(), "###").items()
    }
    assert sorted(found) == sorted(COMMANDS)
    for name, body in found.items():
        known = set(subparsers[name]._option_string_actions)
        own = re.sub(r"`snakemake[^`]*`", "", body)  # a Snakemake command's options are its own
        named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", own))
        assert named <= known, (name, named - known)


def test_the_layout_names_every_module_and_only_those():
    text = (DOCS / "layout.md").read_text()
    block = next(
        b for b in re.findall(r"```\n(.*?)```", text, re.S) if b.startswith("src/iterlens/")
    )
    named: dict[str, set[str]] = {}
    package = ""
    for line in block.splitlines()[1:]:
        top = re.match(r"^  (\w+)/", line)
        sub = re.match(r"^    (\w+)/", line)
        module = re.match(r"^  (\w+\.py)", line)
        if top:
            package = top.group(1)
        elif sub:
            package = f"{package.split('/')[0]}/{sub.group(1)}"
        elif module:
            package = ""
        named.setdefault(package, set()).update(re.findall(r"\b(\w+\.py)\b", line))
    src = ROOT / "src" / "iterlens"
    actual: dict[str, set[str]] = {}
    for f in src.rglob("*.py"):
        folder = f.parent.relative_to(src).as_posix()
        actual.setdefault("" if folder == "." else folder, set()).add(f.name)
    for folder in src.rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__":
            actual.setdefault(folder.relative_to(src).as_posix(), set())
    assert sorted(named) == sorted(actual)
    for folder, files in actual.items():  # a package's __init__.py need not be named
        assert named[folder] - {"__init__.py"} == files - {"__init__.py"}, folder or "iterlens"
