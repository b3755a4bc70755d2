"""The finding sentences of a run, one list that both the README and the paper print.

:func:`findings` turns the named values and claims of ``values.json`` (see
:mod:`iterlens.report.paper_values`) into an ordered list of ``{"key", "text"}``. Each
sentence that states a direction is picked by a computed claim; each number in it is the
printed text of a named value, so no sentence carries a number typed by hand. A value the run
lacks prints as ``n.i.`` (its model is not informative) or ``–`` (undefined, too few layers),
as in the headline table.

Keys are dotted, their first part saying where the sentence belongs: ``lm.`` (the trained
language model), ``untrained.`` (its untrained control), ``vision.`` (the CNN twins),
``rotated.`` and ``dose.`` (the rotated-twin and dose-response controls, one per family). The
paper selects its findings by these prefixes; the README prints them all, in order.

Markup rule: a text is plain characters with code spans between backticks (model names);
nothing else is markup. :func:`markdown` escapes the characters Markdown would read in the
plain parts; the paper prints the plain parts as literal strings and the code spans as
``raw`` (so ``#``, ``$``, ``*``, ``_``, ``@`` or ``<`` never reach typst markup).
:func:`plain` drops the backticks, giving the text a reader sees.
"""

from __future__ import annotations

import re
from typing import Any

from iterlens.models.studied import LM_ROLE
from iterlens.report.control_values import DOSE_METRICS

Finding = dict[str, str]
"""One finding: ``{"key": ..., "text": ...}``."""


def missing(v: dict[str, Any], model: str) -> str:
    """What a value the run lacks prints as: not informative, or undefined (an en dash)."""
    informative = v["values"].get(f"{model}.informative", {}).get("value", False)
    return "–" if informative else "n.i."


def printed(v: dict[str, Any], name: str, absent: str | None = None) -> str:
    """The printed text of the named value ``name``.

    Args:
        v: the contents of ``values.json``.
        name: the value's name.
        absent: what a value the run lacks prints as; by default :func:`missing` of the model
            the name starts with (the longest of ``v["models"]``, as a name may hold dots).
    """
    entry = v["values"].get(name)
    if entry is not None:
        return entry["text"]
    if absent is not None:
        return absent
    models = [m for m in v.get("models", []) if name.startswith(f"{m}.")]
    return missing(v, max(models, key=len) if models else name.split(".")[0])


def _finding(key: str, sentence: str) -> Finding:
    return {"key": key, "text": sentence}


def with_ci(v: dict[str, Any], name: str) -> str:
    """A value with its 95% interval ``[lo, hi]`` when the tables carry one."""
    out, vals = printed(v, name), v["values"]
    if f"{name}_lo" in vals and f"{name}_hi" in vals:
        out += f" [{vals[name + '_lo']['text']}, {vals[name + '_hi']['text']}]"
    return out


def _claim(v: dict[str, Any], name: str) -> bool | None:
    return v["claims"].get(name, {}).get("holds")


def _pick(v: dict[str, Any], name: str, holds: str, fails: str, undecided: str) -> str:
    """``holds`` or ``fails`` by the claim ``name``, ``undecided`` when the run cannot decide.

    So a sentence never states a direction its numbers do not give (a value is missing).
    """
    decided = _claim(v, name)
    return undecided if decided is None else holds if decided else fails


def markdown(finding_text: str) -> str:
    """A finding's text as Markdown: code spans kept, Markdown characters escaped elsewhere."""
    parts = finding_text.split("`")
    return "`".join(
        part if i % 2 else re.sub(r"([\\*_<|])", r"\\\1", part) for i, part in enumerate(parts)
    )


def plain(finding_text: str) -> str:
    """A finding's text as a reader sees it (the backticks of code spans dropped)."""
    return finding_text.replace("`", "")


def findings(v: dict[str, Any]) -> list[Finding]:
    """The run's findings, in the order the README prints them.

    Args:
        v: the contents of ``values.json`` (values, claims, roles, ``has`` and the families
            of the controls), as :func:`iterlens.report.paper_values.collect` returns them.
    """
    roles = v.get("roles", {})
    out: list[Finding] = []
    if LM_ROLE in roles:
        for lm in v.get("lms") or [roles[LM_ROLE]]:
            out += _lm(v, lm, roles[LM_ROLE])
    if v["has"]["vision"] and "plain" in roles and "residual" in roles:
        out += _vision(v, roles["plain"], roles["residual"])
    out += [_rotated(v, fam) for fam in v.get("rotated_families", [])]
    out += [_dose(v, fam) for fam in v.get("dose_families", [])]
    return out


def _lm(v: dict[str, Any], lm: str, lead: str) -> list[Finding]:
    """The findings on one language model (means over layers 1..L-1).

    The lead LM's (the table's first) keys are ``lm.<finding>`` and its claims the plain names;
    another LM's are ``lm.<name>.<finding>`` and ``<name>.<claim>``.
    """
    key = (lambda k: f"lm.{k}") if lm == lead else (lambda k: f"lm.{lm}.{k}")
    claim = (lambda c: c) if lm == lead else (lambda c: f"{lm}.{c}")
    better = _pick(
        v,
        claim("tuned_beats_logit"),
        "The tuned lens beats the logit lens at every layer",
        "The tuned lens does not beat the logit lens at every layer",
        "Which of the tuned and the logit lens is closer is not decided at every layer "
        "(a value is missing)",
    )
    clear = ""
    if _claim(v, claim("tuned_beats_logit")):
        clear = {
            True: ", the paired 95% interval of the difference below zero at each",
            False: ", though at some layer the paired 95% interval of the difference reaches zero",
        }.get(_claim(v, claim("tuned_beats_logit_clear")), "")
    out = [
        _finding(
            key("tuned_vs_logit"),
            f"{better} 0..L-1 of `{lm}`{clear} "
            f"(mean KL over layers 1..L-1: {with_ci(v, f'{lm}.tuned_kl_mean_bits')} vs "
            f"{with_ci(v, f'{lm}.logit_kl_mean_bits')} bits; at the embeddings, layer 0, "
            f"{with_ci(v, f'{lm}.tuned_kl_layer0_bits')} vs "
            f"{with_ci(v, f'{lm}.logit_kl_layer0_bits')}).",
        )
    ]
    trend = _pick(
        v,
        claim("lm_far_worse"),
        "grows with distance",
        "does not grow with distance",
        "is not decided between near and far layers (a value is missing)",
    )
    out.append(
        _finding(
            key("transfer"),
            f"The transfer penalty of `{lm}` {trend}: a layer's tuned lens "
            "moved one layer deeper loses "
            f"{with_ci(v, f'{lm}.transfer_ce_penalty_adjacent_up_bits')} bits, one layer "
            f"shallower {with_ci(v, f'{lm}.transfer_ce_penalty_adjacent_down_bits')}, to far "
            f"layers {with_ci(v, f'{lm}.transfer_ce_penalty_far_bits')} (translator layers "
            f"1..L-1). Adjacent, that is {printed(v, f'{lm}.transfer_ce_penalty_adjacent_frac')} "
            "of the information gain over the unigram but "
            f"{printed(v, f'{lm}.transfer_ce_penalty_adjacent_blocks')} of what the blocks add "
            f"to the embeddings; the moved lens keeps {with_ci(v, f'{lm}.transfer_kept_adjacent')} "
            "of its own lens's gain.",
        )
    )
    beaten = (
        f"; yet at {printed(v, f'{lm}.logit_beats_shared_layers')} of them the parameter-free "
        "logit lens is closer to the final distribution (paired 95% intervals), so a small "
        "shared-lens penalty there says little"
        if _claim(v, claim("logit_beats_shared"))
        else ", and the logit lens is closer to the final distribution at none of them "
        "(paired 95% intervals)"
        if _claim(v, claim("logit_beats_shared")) is False
        else " (its comparison with the logit lens is not decided: a value is missing)"
    )
    out.append(
        _finding(
            key("shared"),
            f"One shared translator of `{lm}`, fitted on layers 1..L-1, serves them within "
            f"{printed(v, f'{lm}.shared_penalty_inner_min')}–"
            f"{printed(v, f'{lm}.shared_penalty_inner_max')} bits of their own tuned lenses"
            f"{beaten}. At the embeddings (layer 0), where it is not fitted, the shared lens "
            f"costs {printed(v, f'{lm}.shared.ce_bits_penalty.layer0')} bits.",
        )
    )
    if f"{lm}_random.probe_best_top1_acc" in v["values"]:
        out.append(
            _finding(
                "untrained.lm" if lm == lead else f"untrained.lm.{lm}",
                f"The untrained twin of `{lm}` has a final distribution with almost no information "
                "beyond the unigram prior, so every number derived from it (KL to final, the "
                "tuned and shared lenses fitted to it, transfer) is reported as not "
                "informative (n.i.), never as a number; its free probes, which need no final "
                "distribution, reach top-1 "
                f"{printed(v, f'{lm}_random.probe_best_top1_acc')}.",
            )
        )
    return out


def _vision(v: dict[str, Any], plain_net: str, resid: str) -> list[Finding]:
    """The findings on the plain CNN and its twin with identity skips."""
    residual, clear = _claim(v, "residual_transfers_better"), None
    verdict = _pick(
        v, "residual_transfers_better", "does better", "does not do better", "is not compared"
    )
    if residual:
        clear = _claim(v, "residual_transfers_better_clear")
        if clear is not None:
            verdict += ", the intervals apart" if clear else ", but the intervals overlap"
    out = [
        _finding(
            "vision.transfer",
            "The plain CNN's lenses lose "
            f"{with_ci(v, f'{plain_net}.transfer_ce_penalty_adjacent_bits')} bits between "
            f"adjacent blocks; its twin with identity skips {verdict} "
            f"({with_ci(v, f'{resid}.transfer_ce_penalty_adjacent_bits')} bits)."
            + _over_seeds(v, plain_net, resid),
        )
    ]
    for net, role in ((plain_net, "plain"), (resid, "residual")):
        if _claim(v, f"{role}_transfer_beyond_gain"):
            out.append(
                _finding(
                    f"vision.beyond_gain.{role}",
                    f"For `{net}` that is "
                    f"{printed(v, f'{net}.transfer_ce_penalty_adjacent_frac')} of the information "
                    "gain: the moved lens does worse than guessing the class prior, so the "
                    "penalty measures how confidently wrong it is (it keeps "
                    f"{printed(v, f'{net}.transfer_kept_adjacent')} of its own lens's gain).",
                )
            )
    if LM_ROLE in v.get("roles", {}) and _claim(v, "lm_transfers_better_than_plain") is not None:
        lm = v["roles"][LM_ROLE]
        less = "less" if _claim(v, "lm_transfers_better_than_plain") else "no less"
        out.append(
            _finding(
                "vision.lm_vs_plain",
                f"On the normalised scale only, `{lm}` loses {less} of its information "
                "gain between adjacent layers "
                f"({printed(v, f'{lm}.transfer_ce_penalty_adjacent_frac')}) than the plain CNN "
                f"({printed(v, f'{plain_net}.transfer_ce_penalty_adjacent_frac')}).",
            )
        )
    rise = _claim(v, "plain_probe_rises") and _claim(v, "residual_probe_rises")
    out.append(
        _finding(
            "vision.probes",
            (
                "Free probes rise with depth in both CNNs alike"
                if rise
                else "Free probes do not rise with depth in both CNNs"
            )
            + f" ({printed(v, f'{plain_net}.probe_top1_acc_first')} to "
            f"{printed(v, f'{plain_net}.probe_top1_acc_last')}; "
            f"{printed(v, f'{resid}.probe_top1_acc_first')} to "
            f"{printed(v, f'{resid}.probe_top1_acc_last')})"
            + (
                (
                    ": rising probe accuracy does not tell the twins apart"
                    + ("; transfer does" if clear else "")
                )
                if rise
                else ""
            )
            + ".",
        )
    )
    if f"vision_summary.{plain_net}.eval_acc" in v["values"]:
        out.append(
            _finding(
                "vision.accuracy",
                "Eval accuracy of the CNN twins: plain "
                f"{printed(v, f'vision_summary.{plain_net}.eval_acc')}, residual "
                f"{printed(v, f'vision_summary.{resid}.eval_acc')} "
                f"({printed(v, f'vision_summary.{plain_net}.n_params')} and "
                f"{printed(v, f'vision_summary.{resid}.n_params')} parameters).",
            )
        )
    return out


def _over_seeds(v: dict[str, Any], plain_net: str, resid: str) -> str:
    """The CNN transfer sentence's tail over seeds (the recipe), where both have several."""
    metric = "seeds.transfer_ce_penalty_adjacent_bits"
    if not all(f"{net}.{metric}" in v["values"] for net in (plain_net, resid)):
        return ""
    apart = _pick(
        v,
        "residual_transfers_better_over_seeds",
        "the skips' interval lies below",
        "the intervals overlap or the skips' lies above",
        "the intervals are incomplete",
    )
    return (
        f" Over {printed(v, f'{plain_net}.seeds.n')} and {printed(v, f'{resid}.seeds.n')} "
        "seeds, a statement about the recipe rather than one checkpoint (the 95% interval "
        "holds the spread over seeds and the eval sampling): "
        f"{with_ci(v, f'{plain_net}.{metric}')} "
        f"and {with_ci(v, f'{resid}.{metric}')} bits; {apart}."
    )


def _rotated(v: dict[str, Any], fam: str) -> Finding:
    """The finding on the rotated twin of ``fam``."""
    r, o = f"{fam}.rotated.", f"{fam}.original."
    tuned = (
        "reads it as well as the model (inside the model's 95% interval at every layer 0..L-1)"
        if _claim(v, f"{fam}_rotated_tuned_matches")
        else "reads it inside the model's 95% interval at only "
        f"{printed(v, r + 'tuned_in_interval_layers')} of {printed(v, r + 'layers_checked')} "
        "layers"
    )
    logit = "fails" if _claim(v, f"{fam}_rotated_logit_fails") else "does not fail"
    ending = (
        "."
        if _claim(v, f"{fam}_rotated_transfer_worse") is not False
        else ": rotation does not raise the transfer penalty, so this network's lenses "
        "shared no more than a random basis gives."
    )
    return _finding(
        f"rotated.{fam}",
        f"Rotated twin of `{fam}`: the tuned lens {tuned}, mean KL "
        f"{printed(v, r + 'tuned_kl_mean')} vs {printed(v, o + 'tuned_kl_mean')} bits; the "
        f"logit lens {logit} (KL at least {printed(v, r + 'logit_kl_frac_min')} times the "
        "information gain); adjacent-layer transfer costs "
        f"{printed(v, r + 'transfer_ce_penalty_adjacent_frac')} of the information gain "
        f"vs {printed(v, o + 'transfer_ce_penalty_adjacent_frac')} on the model, the "
        f"shared lens {printed(v, r + 'shared_kl_penalty_frac')} vs "
        f"{printed(v, o + 'shared_kl_penalty_frac')}{ending}",
    )


def _dose(v: dict[str, Any], fam: str) -> Finding:
    """The finding on the dose-response grid (partial rotations) of ``fam``."""
    grid = v.get("dose_t", {}).get(fam, [])
    shared, adjacent = (
        ", ".join(printed(v, f"{fam}.dose.{metric}.{g['key']}") for g in grid)
        for metric in DOSE_METRICS  # the shared-lens, then the adjacent transfer penalty
    )
    holds = _claim(v, f"{fam}_dose_monotone")
    verdict = (
        "both rise with t and never fall within their 95% intervals, so a penalty of a "
        "given size can be read against the departure from one basis that produces it"
        if holds
        else "they do not rise steadily with t, so the size of a penalty cannot be read as "
        "a departure from one basis"
        if holds is False
        else "the intervals are missing, so no trend is read"
    )
    return _finding(
        f"dose.{fam}",
        f"Dose response of `{fam}` (layers rotated by expm(t log Q), t = "
        + ", ".join(f"{g['t']:g}" for g in grid)
        + f"): shared-lens penalty {shared} bits, adjacent transfer {adjacent} bits; "
        f"{verdict}.",
    )
