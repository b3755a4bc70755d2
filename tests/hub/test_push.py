import logging
from unittest.mock import Mock, create_autospec

import pytest
from huggingface_hub import HfApi

from iterlens.hub.cards import package_version
from iterlens.hub.push import PushError, push_release

TOKEN = "hf_SecretTokenThatMustNeverBePrinted123"


@pytest.fixture
def release(tmp_path):
    """Two staged folders, as `iterlens stage-release` leaves them."""
    for name, rtype in (("org/iterlens-lm", "model"), ("org/iterlens-results", "dataset")):
        folder = tmp_path / "release" / name.split("/")[1]
        (folder / "lens" / "m").mkdir(parents=True)
        (folder / "README.md").write_text("---\nlicense: mit\n---\n# card\n")
        (folder / "lens" / "m" / "params.pt").write_bytes(b"x" * 1000)
        (folder / ".snakemake_timestamp").write_text("")
        (folder / "release.json").write_text(f'{{"repo_id": "{name}", "repo_type": "{rtype}"}}')
    return tmp_path / "release"


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.test")
    client = create_autospec(HfApi, instance=True)
    client.whoami.return_value = {"name": "someone"}
    return Mock(return_value=client), client


def test_push_uploads_each_folder_once_tagged_with_the_version(release, api, capsys, caplog):
    factory, client = api
    caplog.set_level(logging.DEBUG)
    push_release(release, api_factory=factory)
    factory.assert_called_once_with(endpoint="https://hub.example.test", token=TOKEN)
    assert client.create_repo.call_count == 2
    client.create_repo.assert_any_call(
        "org/iterlens-lm", repo_type="model", private=False, exist_ok=True
    )
    client.create_repo.assert_any_call(
        "org/iterlens-results", repo_type="dataset", private=False, exist_ok=True
    )
    assert client.upload_folder.call_count == 2
    calls = {c.kwargs["repo_id"]: c.kwargs for c in client.upload_folder.call_args_list}
    assert calls["org/iterlens-lm"]["folder_path"] == str(release / "iterlens-lm")
    assert calls["org/iterlens-results"]["repo_type"] == "dataset"
    assert all(package_version() in c["commit_message"] for c in calls.values())
    assert all(c["ignore_patterns"] == [".snakemake_timestamp"] for c in calls.values())
    client.create_tag.assert_any_call(
        "org/iterlens-lm",
        tag=f"v{package_version()}",
        repo_type="model",
        exist_ok=True,
        tag_message=f"iterlens {package_version()}",
    )
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err + caplog.text


def test_dry_run_lists_repos_files_and_sizes_without_network(release, api, capsys):
    factory, client = api
    push_release(release, dry_run=True, api_factory=factory)
    factory.assert_not_called()
    out = capsys.readouterr().out
    assert "model org/iterlens-lm" in out and "dataset org/iterlens-results" in out
    assert "1,000  lens/m/params.pt" in out
    assert "2 repos" in out and TOKEN not in out
    assert ".snakemake_timestamp" not in out


def test_no_token_refuses_and_says_so(release, api, monkeypatch, capsys):
    import huggingface_hub

    factory, client = api
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(PushError, match="no Hugging Face token.*HF_TOKEN"):
        push_release(release, api_factory=factory)
    factory.assert_not_called()


def test_offline_refuses_and_says_so(release, api, monkeypatch):
    factory, client = api
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PushError, match="HF_HUB_OFFLINE is set"):
        push_release(release, api_factory=factory)
    factory.assert_not_called()


def test_a_rejected_token_uploads_nothing_and_is_not_echoed(release, api, capsys):
    factory, client = api
    client.whoami.side_effect = RuntimeError(f"401 Unauthorized for token {TOKEN}")
    with pytest.raises(PushError, match="nothing was uploaded") as err:
        push_release(release, api_factory=factory)
    assert TOKEN not in str(err.value)
    client.upload_folder.assert_not_called()
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err


def test_cli_push_dry_run_and_missing_release(release, tmp_path, capsys, monkeypatch):
    from iterlens.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", "--release", str(release), "--dry-run"]) == 0
    assert "org/iterlens-lm" in capsys.readouterr().out
    assert main(["push", "--release", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "nothing staged" in err and TOKEN not in err
