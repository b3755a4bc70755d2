"""The findings: one list of sentences, picked by the claims, that the README and paper share."""

import re

import pytest
from conftest import ROOT, write_fake_results

from iterlens.report.findings import findings, markdown, plain
from iterlens.report.paper_values import collect
from iterlens.report.readme import results_block

PAPER = (ROOT / "paper" / "paper.typ").read_text()


def fake_values(tmp_path, **kwargs):
    root = write_fake_results(tmp_path / "run", **kwargs)
    return collect(root, [], ROOT / "workflow" / "report")


def controls_values(holds=True):
    """A values dict with one rotated twin and one dose-response grid, its values absent."""
    claims = {
        name: {"holds": holds}
        for name in (
            "lm_rotated_tuned_matches",
            "lm_rotated_logit_fails",
            "lm_rotated_transfer_worse",
            "lm_dose_monotone",
        )
    }
    return {
        "values": {
            "lm.informative": {"value": 1.0, "text": "1"},
            "lm.rotated.tuned_kl_mean": {"value": 0.5, "text": "0.50"},
        },
        "claims": claims,
        "roles": {},
        "models": ["lm"],
        "has": {"vision": False},
        "rotated_families": ["lm"],
        "dose_families": ["lm"],
        "dose_t": {"lm": [{"t": 0.0, "key": "t000"}, {"t": 1.0, "key": "t100"}]},
    }


def paper_prefixes() -> set[str]:
    """The key prefixes whose findings paper.typ prints."""
    return set(re.findall(r'\b(?:say|findings)\("([^"]+)"\)', PAPER))


def paper_prints(key: str) -> bool:
    """Whether paper.typ prints the finding ``key``: by its prefix (``say``), or, for a
    language model's (``lm.``, ``lm.<name>.``), by its last part (``say-lms``)."""
    if any(key.startswith(p) for p in paper_prefixes()):
        return True
    lms = set(re.findall(r'\bsay-lms\("([^"]+)"\)', PAPER))
    return key.startswith("lm.") and key.rsplit(".", 1)[-1] in lms


def test_readme_and_paper_print_the_same_findings(tmp_path):
    values = fake_values(tmp_path, intervals=True)
    stored = values["findings"]
    assert stored == findings(values)  # values.json holds what the function says
    assert [f["key"] for f in stored][:3] == ["lm.tuned_vs_logit", "lm.transfer", "lm.shared"]
    assert len({f["key"] for f in stored}) == len(stored)
    # the README prints exactly the stored sentences, in order, as Markdown bullets
    said = "\n".join(["What the run says:", ""] + [f"- {markdown(f['text'])}" for f in stored])
    assert results_block(values).endswith(said + "\n")
    # the paper prints every stored finding (by its key's prefix) and words none itself
    for f in stored + findings(controls_values()):
        assert paper_prints(f["key"]), f["key"]
    assert "claim(" not in PAPER
    for name in values["claims"]:
        assert name not in PAPER, name
    # numbers come from the values: every decimal in a sentence is a named value's text
    printed = {e["text"] for e in values["values"].values()}
    for f in stored:
        for number in re.findall(r"-?\d+\.\d+", f["text"]):
            assert number in printed, (f["key"], number)


def test_readme_refuses_values_without_findings(tmp_path):
    values = fake_values(tmp_path)
    del values["findings"]
    with pytest.raises(ValueError, match="rerun iterlens paper-values"):
        results_block(values)


@pytest.mark.parametrize(
    ("claim", "key", "holds", "flipped"),
    [
        ("tuned_beats_logit", "lm.tuned_vs_logit", "lens beats the", "does not beat the"),
        ("lm_far_worse", "lm.transfer", "grows with distance", "does not grow with distance"),
        ("logit_beats_shared", "lm.shared", "yet at", "at none of them"),
        ("residual_transfers_better", "vision.transfer", "skips does better", "not do better"),
        ("plain_probe_rises", "vision.probes", "Free probes rise", "do not rise"),
    ],
)
def test_flipping_a_claim_flips_the_sentence(tmp_path, claim, key, holds, flipped):
    values = fake_values(tmp_path)
    values["claims"][claim]["holds"] = True
    before = next(f["text"] for f in findings(values) if f["key"] == key)
    values["claims"][claim]["holds"] = False
    values["findings"] = findings(values)
    after = next(f["text"] for f in values["findings"] if f["key"] == key)
    assert holds in before and holds not in after
    assert flipped in after and flipped not in before
    assert markdown(after) in results_block(values)
    values["claims"][claim]["holds"] = None  # undecided: neither direction is stated
    undecided = next(f["text"] for f in findings(values) if f["key"] == key)
    if claim != "plain_probe_rises":  # (that one reads "do not rise in both": true as said)
        assert holds not in undecided and flipped not in undecided
        assert "not decided" in undecided or "not compared" in undecided


def test_controls_findings_follow_their_claims():
    yes, no = (findings(controls_values(h)) for h in (True, False))
    assert [f["key"] for f in yes] == ["rotated.lm", "dose.lm"]
    rotated, dose = (f["text"] for f in yes)
    assert rotated.startswith("Rotated twin of `lm`: the tuned lens reads it as well as")
    assert "mean KL 0.50 vs – bits" in rotated  # absent on an informative model: undefined
    assert "the logit lens fails" in rotated and rotated.endswith("the shared lens – vs –.")
    assert "t = 0, 1): shared-lens penalty –, – bits" in dose
    assert "both rise with t" in dose
    rotated, dose = (f["text"] for f in no)
    assert "at only – of – layers" in rotated and "does not fail" in rotated
    assert rotated.endswith("shared no more than a random basis gives.")
    assert "they do not rise steadily with t" in dose
    undecided = controls_values(None)
    assert "no trend is read" in findings(undecided)[1]["text"]
    undecided["values"].pop("lm.informative")
    assert "mean KL 0.50 vs n.i. bits" in findings(undecided)[0]["text"]


def test_markup_is_code_spans_only():
    text = "Rotated twin of `cnn_plain_s1`: a *b* c_d <e> | f."
    assert markdown(text) == r"Rotated twin of `cnn_plain_s1`: a \*b\* c\_d \<e> \| f."
    assert plain(text) == "Rotated twin of cnn_plain_s1: a *b* c_d <e> | f."
    assert markdown("no code") == "no code"


def test_tuned_beats_logit_with_intervals_apart_is_read_from_the_paired_bounds(tmp_path):
    import pandas as pd

    root = write_fake_results(tmp_path / "run", intervals=True)
    path = root / "results" / "tables" / "lm" / "lens_metrics.csv"
    table = pd.read_csv(path)
    tuned = table["lens"] == "tuned"
    upper = [-0.5, -0.25, -0.125, -0.0625, 0.75]  # layers 0..3 below zero; layer L not read
    table.loc[tuned, "kl_minus_logit_bits_hi"] = upper
    table.to_csv(path, index=False)
    values = collect(root, [], ROOT / "workflow" / "report")
    assert values["values"]["lm.tuned_minus_logit_kl_hi_max"]["value"] == -0.0625
    assert values["claims"]["tuned_beats_logit_clear"]["holds"] is True
    text = next(f["text"] for f in values["findings"] if f["key"] == "lm.tuned_vs_logit")
    assert text.startswith(
        "The tuned lens beats the logit lens at every layer 0..L-1 of `lm`, the paired 95% "
        "interval of the difference below zero at each"
    )
    values["claims"]["tuned_beats_logit_clear"]["holds"] = False
    text = next(f["text"] for f in findings(values) if f["key"] == "lm.tuned_vs_logit")
    assert "though at some layer the paired 95% interval of the difference reaches zero" in text
    values["claims"]["tuned_beats_logit"]["holds"] = False  # no interval clause without it
    text = next(f["text"] for f in findings(values) if f["key"] == "lm.tuned_vs_logit")
    assert "does not beat" in text and "interval of the difference" not in text


def test_every_language_model_gets_its_findings_and_claims(tmp_path):
    values = fake_values(tmp_path, intervals=True)
    values["lms"] = ["lm", "other"]
    for name in ("tuned_beats_logit", "lm_far_worse", "logit_beats_shared"):
        values["claims"][f"other.{name}"] = {"holds": not values["claims"][name]["holds"]}
    got = {f["key"]: f["text"] for f in findings(values)}
    assert {"lm.tuned_vs_logit", "lm.other.tuned_vs_logit", "lm.other.transfer"} <= set(got)
    assert "of `other`" in got["lm.other.tuned_vs_logit"]
    assert ("does not beat" in got["lm.other.tuned_vs_logit"]) == (
        "does not beat" not in got["lm.tuned_vs_logit"]
    )  # each LM's sentence follows its own claim
    assert got["lm.other.transfer"].startswith("The transfer penalty of `other`")
