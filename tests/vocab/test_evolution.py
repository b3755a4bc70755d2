import pytest
import torch
from conftest import tiny_lm

from iterlens.probing.extract import ResidualRecorder
from iterlens.probing.lenses import LogitLens, make_tuned_lens
from iterlens.probing.readout import readout_from_lm
from iterlens.vocab.evolution import token_evolution

WORDS = [f"w{i}" for i in range(97)]


def lenses_of(model):
    readout = readout_from_lm(model)
    tuned = make_tuned_lens(readout, 3)
    with torch.no_grad():  # a trained-looking lens: translators far from zero
        for p in tuned.layer_translators.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
    return {"logit": LogitLens(readout), "tuned": tuned}


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
def test_last_layer_is_the_models_own_top_k(family):
    torch.manual_seed(0)
    model = tiny_lm(family)
    ids = torch.randint(0, 97, (7,))
    with ResidualRecorder(model) as rec:
        hidden, logits = rec.run(ids[None])
    with torch.no_grad():
        own = model(ids[None]).logits[0]
    top, steps = token_evolution(hidden[0], lenses_of(model), ids, logits[0], 5, WORDS)
    expected = own.softmax(-1).topk(5)
    for lens in ("logit", "tuned"):
        last = top[(top["lens"] == lens) & (top["layer"] == 3)].sort_values(["position", "rank"])
        assert last["token_id"].to_numpy().reshape(7, 5).tolist() == expected.indices.tolist()
        torch.testing.assert_close(
            torch.tensor(last["prob"].to_numpy()).reshape(7, 5),
            expected.values,
            atol=1e-5,
            rtol=1e-4,
        )
        final = steps[(steps["lens"] == lens) & (steps["layer"] == 3)].sort_values("position")
        assert final["top1_id"].tolist() == own.argmax(-1).tolist()
        # rank of the actual next token, hand-counted from the model's logits
        ranks = [int((own[t] > own[t, ids[t + 1]]).sum()) for t in range(6)]
        assert final["next_rank"].tolist() == ranks + [-1]
        assert final["next_id"].tolist() == ids[1:].tolist() + [-1]
    # the two lenses differ below the last layer (the tuned lens is not the logit lens)
    below = steps[steps["layer"] == 0]
    logit0 = below[below["lens"] == "logit"]["top1_prob"].to_numpy()
    assert not (logit0 == below[below["lens"] == "tuned"]["top1_prob"].to_numpy()).all()


def test_settled_layer_by_hand():
    # a fake lens whose top-1 at position 0 per layer is 1, 2, 2, 2 (final top-1 is 2)
    class Fake(torch.nn.Module):
        def forward(self, h, layer):
            out = torch.zeros(h.shape[0], 4)
            out[0, 1 if layer == 0 else 2] = 1.0
            out[1, 3 if layer in (0, 2) else 0] = 1.0
            return out

    hidden = torch.zeros(2, 4, 8)
    final = torch.tensor([[0, 0, 1.0, 0], [1.0, 0, 0, 0]])
    _, steps = token_evolution(
        hidden, {"fake": Fake()}, torch.tensor([1, 2]), final, 2, list("abcd")
    )
    settled = steps[steps["layer"] == 0].sort_values("position")["settled_layer"].tolist()
    assert settled == [1, 3]
