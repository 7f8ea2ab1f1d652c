"""The V discriminant (Grad-CAM of the pair's cosine through V) against a full-backward Grad-CAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import get_network
from utils.explain.similarity_cam import PairCosine, similarity_discriminant


def _oracle(V, img1, img2, layer, sign, out_size):
    """Textbook Grad-CAM: input with grad, full backward of sign * cos(V(x_i), V(x_j).detach())."""
    store = {}
    handle = V.get_submodule(layer).register_forward_hook(lambda m, i, o: store.update(act=o))
    maps = []
    try:
        for side in (0, 1):
            x = V.preprocess([img1, img2]).clone().requires_grad_(True)
            emb = V(x)
            act = store["act"]
            act.retain_grad()
            other = emb[1 - side].detach()
            score = sign * F.cosine_similarity(emb[side], other, dim=0)
            score.backward()
            w = act.grad[side].mean(dim=(1, 2))
            cam = torch.relu((w[:, None, None] * act[side]).sum(0)).detach()
            cam = (cam - cam.min()) / (cam.max() - cam.min())
            cam = F.interpolate(
                cam[None, None], size=out_size, mode="bilinear", align_corners=False
            )[0, 0]
            maps.append((cam - cam.min()) / (cam.max() - cam.min()))
    finally:
        handle.remove()
    return torch.stack(maps)


@pytest.mark.parametrize("sign", [-1.0, 1.0])
@pytest.mark.parametrize("layer", [None, "layer3"])
def test_similarity_discriminant_equals_full_backward_gradcam(sign, layer):
    torch.manual_seed(3)
    V = get_network(
        "FaceWorld-verification", weights=False, width=4, embedding_size=16, input_size=32
    )
    rng = np.random.default_rng(0)
    img1 = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    img2 = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    got = similarity_discriminant(V, img1, img2, layer=layer, out_size=(24, 24), sign=sign)
    want = _oracle(V, img1, img2, layer or V.target_layer, sign, (24, 24))
    assert got.shape == (2, 24, 24)
    torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=0)
    assert all(p.requires_grad for p in V.parameters() if p is not V.features.weight), (
        "flags restored"
    )


def test_pair_cosine_by_hand():
    out = torch.tensor([[3.0, 4.0], [4.0, 3.0], [0.0, 1.0]], requires_grad=True)
    t = PairCosine((1, 0, 0), sign=-1.0)
    np.testing.assert_allclose(t(out).detach().numpy(), [-24 / 25, -24 / 25, -4 / 5], rtol=1e-6)
    t(out)[2].backward()  # row 0 is only a (detached) reference for row 2: no gradient reaches it
    assert out.grad[0].abs().sum() == 0 and out.grad[2].abs().sum() > 0
    with pytest.raises(ValueError, match="PairCosine expects"):
        t(torch.zeros(2, 2))


def test_explain_pair_uses_the_verification_discriminant():
    from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair

    torch.manual_seed(5)
    nets = Sim2WordNets(
        get_network("FaceWorld-recognition", weights=False, width=4, num_classes=7, input_size=32),
        get_network("FaceWorld-attribute", weights=False, width=4, input_size=32),
        get_network(
            "FaceWorld-verification", weights=False, width=4, embedding_size=16, input_size=32
        ),
        verification_layer="layer3",
    )
    rng = np.random.default_rng(1)
    img1, img2 = (rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(2))
    cfg = Sim2WordConfig(discriminant="verification", thresh=0.3, calculate_similarity=False)
    ex = explain_pair(img1, img2, nets, cfg)
    want = similarity_discriminant(nets.verification, img1, img2, "layer3", out_size=(32, 32))
    for side, d in enumerate(ex.directions):
        np.testing.assert_allclose(d.H_d, want[side].numpy(), atol=1e-6)
        np.testing.assert_allclose(d.J, d.H_d[None] * d.H_attr, atol=1e-6)  # top-k: J as it is
    with pytest.raises(ValueError, match="discriminant"):
        Sim2WordConfig(discriminant="identity")
    nets.verification = None
    with pytest.raises(ValueError, match="needs the verification net"):
        explain_pair(img1, img2, nets, cfg)
