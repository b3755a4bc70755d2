"""Push the staged release: one ``HfApi.upload_folder`` call per repo, tagged with the version.

The token comes from ``HF_TOKEN`` or the login cache (``huggingface_hub.get_token``) and is
never printed or written. The endpoint follows ``HF_ENDPOINT``. Every staged folder is
checked, the token is verified (``whoami``) and every repo is created before the first
upload, so a bad token, an offline machine or a broken folder uploads nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi

from iterlens import artifacts as A
from iterlens.hub.cards import package_version
from iterlens.io import read_json

log = logging.getLogger(__name__)
OFF = ("", "0", "false", "False", "no")
SKIP = [".snakemake_timestamp"]  # Snakemake's marker in directory outputs: never uploaded


class PushError(RuntimeError):
    """The release cannot be pushed; the message says why. Nothing was uploaded."""


@dataclass
class RepoPlan:
    """One staged folder and the Hub repo it goes to."""

    repo_id: str
    repo_type: str
    folder: Path
    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Total bytes of the staged files."""
        return sum(size for _, size in self.files)


def plan_release(release_dir: str | Path) -> list[RepoPlan]:
    """Read every staged folder (one ``release.json`` each) under ``release_dir``."""
    release_dir = Path(release_dir)
    folders = sorted(p.parent for p in release_dir.glob(f"*/{A.RELEASE_META}"))
    if not folders:
        raise PushError(
            f"nothing staged under {release_dir} (no */{A.RELEASE_META}); run "
            f"`iterlens stage-release` or the Snakemake workflow first"
        )
    plans = []
    for folder in folders:
        meta = read_json(folder / A.RELEASE_META)
        if not (folder / "README.md").exists():
            raise PushError(f"staged folder {folder} has no README.md (card)")
        files = sorted(
            (p.relative_to(folder).as_posix(), p.stat().st_size)
            for p in folder.rglob("*")
            if p.is_file() and p.name not in SKIP
        )
        plans.append(RepoPlan(meta["repo_id"], meta["repo_type"], folder, files))
    return plans


def describe(plans: list[RepoPlan]) -> str:
    """The dry-run listing: each repo, its files and sizes."""
    lines = []
    for p in plans:
        lines.append(
            f"{p.repo_type} {p.repo_id}  <- {p.folder}  "
            f"({len(p.files)} files, {p.size / 2**20:.2f} MiB)"
        )
        lines += [f"    {size:>12,d}  {name}" for name, size in p.files]
    total = sum(p.size for p in plans)
    lines.append(f"{len(plans)} repos, {total / 2**20:.2f} MiB in all")
    return "\n".join(lines)


def endpoint() -> str:
    """The Hub endpoint: ``HF_ENDPOINT`` if set, else the library default."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def push_release(
    release_dir: str | Path,
    *,
    dry_run: bool = False,
    private: bool = False,
    token: str | None = None,
    api_factory: Callable[..., HfApi] = HfApi,
) -> list[RepoPlan]:
    """Create the repos where missing and upload each staged folder, tagged ``v<version>``.

    Args:
        release_dir: ``results/release`` (one staged folder per repo).
        dry_run: list the repos, files and sizes; touch no network.
        token: a Hub token; by default ``HF_TOKEN`` or the login cache.
        api_factory: builds the ``HfApi`` client (tests pass an autospec).

    Raises:
        PushError: offline, no token, a rejected token, or a broken staged folder.
    """
    plans = plan_release(release_dir)
    if dry_run:
        print(describe(plans))
        return plans
    if os.environ.get("HF_HUB_OFFLINE", "") not in OFF:
        raise PushError(
            "HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it to "
            "push (nothing was uploaded)"
        )
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise PushError(
            "no Hugging Face token: set HF_TOKEN or log in with `hf auth login` "
            "(nothing was uploaded)"
        )
    api = api_factory(endpoint=endpoint(), token=token)
    version = package_version()
    try:
        user = api.whoami()
        log.info(
            "pushing as %s to %s",
            user.get("name", "?") if isinstance(user, dict) else "?",
            endpoint(),
        )
        for p in plans:
            api.create_repo(p.repo_id, repo_type=p.repo_type, private=private, exist_ok=True)
    except Exception as err:  # HTTP, connection and auth errors; never echo the token
        raise PushError(
            f"the Hub at {endpoint()} refused or could not be reached "
            f"({type(err).__name__}); nothing was uploaded"
        ) from None
    for p in plans:
        log.info("uploading %s (%d files, %.2f MiB)", p.repo_id, len(p.files), p.size / 2**20)
        api.upload_folder(
            repo_id=p.repo_id,
            folder_path=str(p.folder),
            repo_type=p.repo_type,
            commit_message=f"iterlens {version} release",
            commit_description=f"Staged by iterlens {version}.",
            ignore_patterns=SKIP,
        )
        api.create_tag(
            p.repo_id,
            tag=f"v{version}",
            repo_type=p.repo_type,
            exist_ok=True,
            tag_message=f"iterlens {version}",
        )
    return plans
