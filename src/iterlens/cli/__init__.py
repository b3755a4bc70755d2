"""The ``iterlens`` command line: one subcommand per workflow stage.

Every command reads its inputs from explicit paths and writes its outputs atomically, so the
Snakemake rules in ``workflow/rules`` stay one line each. Config sections are passed as JSON
(``--cfg``) or a YAML file (``--config``) and validated against the schema. Commands live in
one module per group (:data:`GROUPS`), each declaring its arguments beside it with
:func:`command` and :func:`arg`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("iterlens")

GROUPS = ("data", "models", "probing", "controls", "geometry", "report", "vocab", "hub", "paper")
"""Modules of :mod:`iterlens.cli` that define commands, in ``--help`` order."""


@dataclass
class Command:
    """A registered subcommand: its function, help line and arguments."""

    fn: Callable[[argparse.Namespace], None]
    help: str
    args: list[tuple[tuple[str, ...], dict]] = field(default_factory=list)


COMMANDS: dict[str, Command] = {}


def arg(*flags: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    """One argument of a command, as ``argparse.ArgumentParser.add_argument`` takes it."""
    return flags, kwargs


def command(name: str, help_: str, *args: tuple[tuple[str, ...], dict]):
    """Register a subcommand with its arguments (see :func:`arg`)."""

    def wrap(fn):
        COMMANDS[name] = Command(fn, help_, list(args))
        return fn

    return wrap


def load_cfg(args: argparse.Namespace) -> dict:
    """The validated config of a command: ``--config`` file, with ``--cfg`` JSON merged over."""
    from iterlens.config import load_config, validate

    overrides = json.loads(args.cfg) if args.cfg else None
    if args.config:
        return load_config(args.config, overrides)
    return validate(overrides or {})


def device_of(args: argparse.Namespace):
    """The torch device a command runs on (``--device``; see :mod:`iterlens.device`)."""
    from iterlens.device import resolve_device

    return resolve_device(args.device)


def set_threads(n: int | None) -> None:
    """Limit torch's intra-op threads (the rule's ``threads``)."""
    import torch

    if n:
        torch.set_num_threads(n)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    for group in GROUPS:
        importlib.import_module(f"iterlens.cli.{group}")
    parser = argparse.ArgumentParser(
        prog="iterlens",
        description="Logit lens, tuned lens, transfer penalties and probes for LMs and CNNs: "
        "one subcommand per workflow stage (see docs/cli.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        p.add_argument("--config", help="YAML config file (defaults are filled in)")
        p.add_argument("--cfg", help="config as a JSON string (merged over --config)")
        p.add_argument("--threads", type=int, default=None, help="torch threads")
        p.add_argument(
            "--device", default="auto", help="auto (CUDA where present), cpu, cuda or cuda:N"
        )
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        for flags, kwargs in cmd.args:
            p.add_argument(*flags, **kwargs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iterlens`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    set_threads(args.threads)
    try:
        COMMANDS[args.command].fn(args)
    except (ValueError, FileNotFoundError, OSError, NotImplementedError, RuntimeError) as err:
        print(f"iterlens {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
