"""Sim2Word on hand-computable networks: class sets, H_t/H_f, H_d, joint maps, masks, erasing,
similarities.

The networks see 4x4 inputs (raw images are 8x8 made of 2x2 blocks, so the
bilinear resize to 4x4 is exact). With P[i, j] = 4i + j and Q = P^T:

* R: A = (B, G) channels (1x1 identity conv, the Grad-CAM layer);
  logits = W @ mean(A) + u * mean(R - 128), W = [[1, 0], [0, 1], [.5, .5]], u = [1, -1, 0].
  Grad-CAM of class 0 = minmax(B), class 1 = minmax(G), class 2 = minmax(B + G).
* A: two heads on mean(A): head 0 logits [mean B, 0] (-> class 0, map minmax(B)),
  head 1 logits [0, (mean B + mean G) / 2] (-> class 1, map minmax(B + G)).
* V: embedding = per-channel mean of the preprocessed image.

Image 1: B = P, G = Q, R = 148 -> logits [27.5, -12.5, 7.5], top-1 class 0.
Image 2: B = Q, G = flipud(P), R = 108 -> logits [-12.5, 27.5, 7.5], top-1 class 1.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from models.preprocess import Preprocess
from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, class_set, explain_pair

I, J_ = np.mgrid[0:4, 0:4]  # noqa: E741 (row index i of the text)
P = (4 * I + J_).astype(float)
Q = P.T.copy()
PRE = Preprocess((4, 4), "BGR", (0.0, 0.0, 128.0), (1.0, 1.0, 1.0))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets: one intra-op thread avoids OpenMP oversubscription on shared CI cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class HandR(nn.Module):
    kind, num_classes, target_layer = "classifier", 3, "conv"

    def __init__(self):
        super().__init__()
        self.preprocess = PRE
        self.conv = nn.Conv2d(2, 2, 1)
        self.fc = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
            self.conv.bias.zero_()
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
        self.register_buffer("u", torch.tensor([1.0, -1.0, 0.0]))

    def forward(self, x):
        return (
            self.fc(self.conv(x[:, :2]).mean(dim=(2, 3)))
            + self.u * x[:, 2].mean(dim=(1, 2))[:, None]
        )


class HandA(nn.Module):
    kind, head_sizes, target_layer = "attribute", (2, 2), "conv"

    def __init__(self):
        super().__init__()
        self.preprocess = PRE
        self.conv = nn.Conv2d(2, 2, 1)
        self.h0, self.h1 = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
            self.conv.bias.zero_()
            self.h0.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
            self.h1.weight.copy_(torch.tensor([[0.0, 0.0], [0.5, 0.5]]))

    def forward(self, x):
        f = self.conv(x[:, :2]).mean(dim=(2, 3))
        return [self.h0(f), self.h1(f)]


class HandV(nn.Module):
    kind, embedding_size = "embedding", 3

    def __init__(self):
        super().__init__()
        self.preprocess = PRE

    def forward(self, x):
        return x.mean(dim=(2, 3))


def raw_image(b, g, r):
    img = np.stack([b, g, np.full((4, 4), r)], axis=-1).astype(np.uint8)
    return np.kron(img, np.ones((2, 2, 1))).astype(np.uint8)  # 8x8, 2x2 blocks


IMG1 = raw_image(P, Q, 148)
IMG2 = raw_image(Q, P[::-1], 108)
NETS = Sim2WordNets(HandR(), HandA(), HandV())


def embed(img):
    return img.reshape(-1, 3).astype(float).mean(axis=0) - np.array([0.0, 0.0, 128.0])


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_class_sets_by_hand():
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    assert class_set(logits, "topk", topk=2) == [1, 2]
    assert class_set(logits, "threshold", id_thresh=0.4) == [1]
    # two equal logits: softmax exactly [0.5, 0.5]; 0.5 is not MORE than 0.5 -> both (ties keep
    # index order)
    assert class_set(torch.tensor([1.0, 1.0]), "threshold", id_thresh=0.5) == [0, 1]
    assert class_set(torch.tensor([1.0, 1.0]), "threshold", id_thresh=0.49) == [0]
    assert class_set(logits, "threshold", id_thresh=0.6) == [1, 2]
    assert class_set(logits, "threshold", id_thresh=0.85) == [1, 2, 0]
    assert class_set(logits, "sameid", topk=5) == [1]
    assert class_set(logits, "topk", topk=10) == [1, 2, 0]


def test_topk1_maps_masks_erasing_and_similarities_by_hand():
    ex = explain_pair(
        IMG1, IMG2, NETS, Sim2WordConfig(thresh=0.3, erasing_method="black"), pair_index=7
    )
    assert ex.class1 == [0] and ex.class2 == [1] and not ex.same_top1
    d1, d2 = ex.directions
    # Direction 1 (I1 vs I2): H_t = class-0 map on I1 = P/15, H_f = class-1 map on I1 = Q/15.
    np.testing.assert_allclose(d1.H_t, P / 15, atol=1e-6)
    np.testing.assert_allclose(d1.H_f, Q / 15, atol=1e-6)
    # H_d = minmax(P/15 * (1 - Q/15)) = P (15 - Q) / 144 (max 12 * 12 at (3, 0), min 0 at (0, 0)).
    np.testing.assert_allclose(d1.H_d, P * (15 - Q) / 144, atol=1e-6)
    assert d1.H_d[3, 0] == pytest.approx(1.0) and d1.H_d[2, 0] == pytest.approx(104 / 144, abs=1e-6)
    # Direction 2 (I2 vs I1): H_t = flipud(P)/15, H_f = Q/15 -> H_d = (12 - 4i + j)(15 - Q)/180.
    np.testing.assert_allclose(d2.H_t, P[::-1] / 15, atol=1e-6)
    np.testing.assert_allclose(d2.H_d, (12 - 4 * I + J_) * (15 - Q) / 180, atol=1e-6)
    # Attribute maps: I1 head 0 = P/15, head 1 = (P + Q)/30; I2 head 0 = Q/15, head 1 = (5j - 3i +
    # 9)/24.
    np.testing.assert_allclose(d1.H_attr[0], P / 15, atol=1e-6)
    np.testing.assert_allclose(d1.H_attr[1], (P + Q) / 30, atol=1e-6)
    np.testing.assert_allclose(d2.H_attr[1], (5 * J_ - 3 * I + 9) / 24, atol=1e-6)
    assert d1.attr_class.tolist() == [0, 1] and d2.attr_class.tolist() == [0, 1]
    np.testing.assert_allclose(d1.attr_conf, [1 / (1 + np.exp(-7.5))] * 2, rtol=1e-9)
    # Joint maps (top-k: not renormalised): J[3, 0] of head 0 = 1 * 12/15, J[3, 1] = (13*8/144) *
    # 13/15.
    np.testing.assert_allclose(d1.J[0], d1.H_d * P / 15, atol=1e-6)
    assert d1.J[0][3, 0] == pytest.approx(0.8, abs=1e-6) and d1.J[0][3, 1] == pytest.approx(
        104 / 144 * 13 / 15, abs=1e-6
    )
    # Regions J > 0.3, worked out from the values above.
    assert sorted(map(tuple, np.argwhere(d1.masks[0]))) == [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    assert sorted(map(tuple, np.argwhere(d1.masks[1]))) == [(3, 0), (3, 1), (3, 2)]
    assert not d2.masks[0].any()  # max of J2[0] is 0.29 at (0, 2)
    assert sorted(map(tuple, np.argwhere(d2.masks[1]))) == [(0, 0), (0, 1), (0, 2)]
    # Erasing (black) at the raw 8x8 size: each 4x4 map pixel is a 2x2 block.
    e = d1.erased(0)
    expected = IMG1.copy()
    expected[4:8, 0:4] = 0
    expected[6:8, 4:6] = 0
    np.testing.assert_array_equal(e, expected)
    np.testing.assert_array_equal(d2.erased(0), IMG2)  # empty mask: unchanged
    # Similarities against embeddings computed directly from the images.
    v1, v2 = embed(IMG1), embed(IMG2)
    assert ex.similarity == pytest.approx(cos(v1, v2), abs=1e-6)
    for j in range(2):
        e1, e2 = embed(d1.erased(j)), embed(d2.erased(j))
        assert d1.sim_own[j] == pytest.approx(cos(e1, v1), abs=1e-6)
        assert d1.sim_other[j] == pytest.approx(cos(e1, v2), abs=1e-6)
        assert d2.sim_own[j] == pytest.approx(cos(e2, v2), abs=1e-6)
        assert d2.sim_other[j] == pytest.approx(cos(e2, v1), abs=1e-6)
        assert ex.both_masked[j] == pytest.approx(cos(e1, e2), abs=1e-6)
    # Two originals + two distinct I1 masks + one I2 mask (the empty one reuses the original).
    assert ex.n_verified == 5
    assert d2.sim_own[0] == pytest.approx(1.0, abs=1e-6)


def test_threshold_strategy_renormalises_joint_maps():
    ex = explain_pair(
        IMG1, IMG2, NETS, Sim2WordConfig(strategy="threshold", id_thresh=0.5, thresh=0.6)
    )
    d1 = ex.directions[0]
    assert ex.class1 == [0] and ex.class2 == [1]  # softmax of class 0 is 1 - 2e-9
    # J[0] = H_d * P/15 has max 0.8 and min 0 -> renormalised = that / 0.8; > 0.6 <=> raw > 0.48.
    np.testing.assert_allclose(d1.J[0], d1.H_d * P / 15 / 0.8, atol=1e-6)
    assert sorted(map(tuple, np.argwhere(d1.masks[0]))) == [(3, 0), (3, 1)]


def test_topk2_means_over_class_sets():
    ex = explain_pair(IMG1, IMG2, NETS, Sim2WordConfig(topk=2, calculate_similarity=False))
    assert ex.class1 == [0, 2] and ex.class2 == [1, 2]
    d1 = ex.directions[0]
    np.testing.assert_allclose(d1.H_t, (P / 15 + (P + Q) / 30) / 2, atol=1e-6)
    np.testing.assert_allclose(d1.H_f, (Q / 15 + (P + Q) / 30) / 2, atol=1e-6)
    raw = d1.H_t * (d1.H_f.max() - d1.H_f)
    np.testing.assert_allclose(d1.H_d, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    assert ex.similarity is None and d1.sim_own is None


def test_sameid_uses_H_t_alone_when_top1_agrees():
    img2 = raw_image(Q, P[::-1], 148)  # red channel up: top-1 becomes class 0 as for image 1
    ex = explain_pair(
        IMG1, img2, NETS, Sim2WordConfig(strategy="sameid", calculate_similarity=False)
    )
    assert ex.class1 == ex.class2 == [0] and ex.same_top1
    np.testing.assert_allclose(ex.directions[0].H_d, P / 15, atol=1e-6)
    np.testing.assert_allclose(
        ex.directions[1].H_d, Q / 15, atol=1e-6
    )  # class-0 map on image 2 = B = Q
    # top-k with k = 1 on the same pair: H_d = minmax(H_t * (max H_f - H_f)) with H_f = H_t
    ex_k = explain_pair(
        IMG1, img2, NETS, Sim2WordConfig(strategy="topk", calculate_similarity=False)
    )
    raw = (P / 15) * (1 - P / 15)
    np.testing.assert_allclose(ex_k.directions[0].H_d, raw / raw.max(), atol=1e-6)


def test_sameid_renormalises_joint_maps_like_the_authors():
    """Scores-sameid.py (Segmantically_Attributes_Interpretable_v2) min-max normalises J again."""
    img2 = raw_image(Q, P[::-1], 148)  # same top-1 class: H_d = H_t = P/15
    d1 = explain_pair(
        IMG1, img2, NETS, Sim2WordConfig(strategy="sameid", thresh=0.6, calculate_similarity=False)
    ).directions[0]
    # head 0: J = P/15 * P/15 = P^2/225, max 1 -> unchanged;
    # head 1: P/15 * (P + Q)/30, max 1 at (3, 3) too.
    np.testing.assert_allclose(d1.J[0], P**2 / 225, atol=1e-6)
    np.testing.assert_allclose(d1.J[1], P * (P + Q) / 450, atol=1e-6)
    # different top-1 (IMG2): J[0] = H_d * P/15 has max 0.8 (see the top-k test) -> divided by 0.8
    d1 = explain_pair(
        IMG1, IMG2, NETS, Sim2WordConfig(strategy="sameid", thresh=0.6, calculate_similarity=False)
    ).directions[0]
    np.testing.assert_allclose(d1.J[0], d1.H_d * P / 15 / 0.8, atol=1e-6)
    assert sorted(map(tuple, np.argwhere(d1.masks[0]))) == [(3, 0), (3, 1)]
    top = explain_pair(
        IMG1, IMG2, NETS, Sim2WordConfig(strategy="topk", thresh=0.6, calculate_similarity=False)
    ).directions[0]
    assert top.masks[0].sum() == 2 and np.isclose(top.J[0].max(), 0.8)  # top-k: J as it is


def test_ablations():
    cf = explain_pair(
        IMG1, IMG2, NETS, Sim2WordConfig(ablation="no-counterfactual", calculate_similarity=False)
    )
    np.testing.assert_allclose(cf.directions[0].J, cf.directions[0].H_attr, atol=0)
    na = explain_pair(IMG1, IMG2, NETS, Sim2WordConfig(ablation="no-attribute", thresh=0.3))
    for d in na.directions:
        for j in range(2):
            np.testing.assert_array_equal(d.J[j], d.H_d)
        np.testing.assert_array_equal(d.sim_other[0], d.sim_other[1])
    # one region per image: two originals + one erased image per side
    assert na.n_verified == 4


def test_random_fill_is_seeded_by_pair_and_seed():
    cfg = Sim2WordConfig(erasing_method="random", thresh=0.3, calculate_similarity=False)
    a = explain_pair(IMG1, IMG2, NETS, cfg, pair_index=3).directions[0].erased(0)
    b = explain_pair(IMG1, IMG2, NETS, cfg, pair_index=3).directions[0].erased(0)
    c = explain_pair(IMG1, IMG2, NETS, cfg, pair_index=4).directions[0].erased(0)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    np.testing.assert_array_equal(a[:4], IMG1[:4])  # rows 0-3 are outside the region
    assert (a[4:8, 0:4] != IMG1[4:8, 0:4]).any()


def test_wrong_network_kind_is_refused():
    with pytest.raises(ValueError, match="attribute"):
        Sim2WordNets(HandR(), HandR(), HandV())
    with pytest.raises(ValueError, match="strategy"):
        Sim2WordConfig(strategy="top5")


def test_record_keys_values_and_nan_refusal():
    from utils.run.records import REQUIRED_KEYS, make_record

    cfg = Sim2WordConfig(thresh=0.3)
    ex = explain_pair(IMG1, IMG2, NETS, cfg, pair_index=2)
    meta = dict(
        datasets="D",
        recognition_net="R",
        attribute_net="A",
        verification_net="V",
        image_path1="a.png",
        image_path2="b.png",
        match=0,
        pair_index=2,
    )
    rec = make_record(ex, cfg, **meta)
    assert set(REQUIRED_KEYS) | {"topk"} <= set(rec) and "id_thresh" not in rec
    d1, d2 = ex.directions
    assert rec["attributes-image1"]["image1-f_attr_1"] == [d1.sim_own[1], d1.sim_other[1]]
    assert rec["attributes-image2"]["image2-f_attr_0"] == [d2.sim_own[0], d2.sim_other[0]]
    assert rec["attributes-both-masked"]["Both_masked-f_attr_0"] == ex.both_masked[0]
    assert (
        rec["class1"] == [0]
        and rec["Attribute2-class"] == [0, 1]
        and rec["mask-fraction1"] == [5 / 16, 3 / 16]
    )
    ex.directions[0].sim_other[1] = float("nan")
    with pytest.raises(FloatingPointError, match="image1-f_attr_1"):
        make_record(ex, cfg, **meta)


# ----------------------------------------------------------------------------- region heads
# (interface 2)
def _region_vocab():
    from models.attributes import Vocabulary

    return Vocabulary(
        name="test-hand-region", attributes=("head0", "head1", "Nose"), region_heads=frozenset({2})
    )


class RegionA(HandA):
    """HandA plus head 2, a region head: its logit ignores the image; its map is the green channel
    / 15."""

    head_sizes = (2, 2, 1)

    def __init__(self):
        super().__init__()
        self.vocabulary = _region_vocab()
        self.seen = []

    def forward(self, x):
        return [*super().forward(x), torch.zeros(x.shape[0], 1)]

    def region_maps(self, images, out_size):
        self.seen.append(images)
        # the 8x8 images are 2x2 blocks of a 4x4 pattern: the area resize gives the pattern exactly
        return np.stack(
            [
                [
                    np.zeros(out_size),
                    np.zeros(out_size),
                    cv2.resize(img[:, :, 1], out_size[::-1], interpolation=cv2.INTER_AREA) / 15.0,
                ]
                for img in images
            ]
        )


def test_region_head_maps_come_from_the_net_not_from_gradcam():
    A = RegionA()
    ex = explain_pair(
        IMG1, IMG2, Sim2WordNets(HandR(), A, HandV()), Sim2WordConfig(thresh=0.3), pair_index=7
    )
    assert len(A.seen) == 1 and A.seen[0][0] is IMG1 and A.seen[0][1] is IMG2  # the canvas images
    d1, d2 = ex.directions
    # Grad-CAM of the region logit would be all zeros (it does not depend on the layer); the map
    # is G / 15.
    np.testing.assert_allclose(d1.H_attr[2], Q / 15, atol=1e-6)
    np.testing.assert_allclose(d2.H_attr[2], P[::-1] / 15, atol=1e-6)
    # the other heads are unchanged, and the joint map uses the region map like any H_attr
    np.testing.assert_allclose(d1.H_attr[0], P / 15, atol=1e-6)
    np.testing.assert_allclose(d1.J[2], P * (15 - Q) / 144 * Q / 15, atol=1e-6)
    # J[2] = P (15 - Q) Q / 2160 > 0.3 <=> P Q (15 - Q) > 648: only (3, 1): 13*7*8 = 728; next are
    # (3, 2): 14*11*4 = 616, (2, 2): 10*10*5 = 500, (2, 1): 9*6*9 = 486
    assert sorted(map(tuple, np.argwhere(d1.masks[2]))) == [(3, 1)]
    # a region head is present, class 0 with confidence 1, worded by its name
    assert d1.attr_class[2] == 0 and d1.attr_conf[2] == 1.0
    assert ex.vocabulary.is_present(2, 0) and ex.vocabulary.word_for(2, 0) == "Nose"


def test_region_maps_are_checked():
    class BadShape(RegionA):
        def region_maps(self, images, out_size):
            return np.zeros((len(images), 2, *out_size))

    with pytest.raises(ValueError, match="region_maps returned shape"):
        explain_pair(IMG1, IMG2, Sim2WordNets(HandR(), BadShape(), HandV()), Sim2WordConfig())

    class OutOfRange(RegionA):
        def region_maps(self, images, out_size):
            return super().region_maps(images, out_size) * 3

    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        explain_pair(IMG1, IMG2, Sim2WordNets(HandR(), OutOfRange(), HandV()), Sim2WordConfig())


def test_region_heads_in_the_uncertainty_path():
    from utils.experiments.uncertainty import UncertaintyConfig, UncertaintyNets, explain_image

    class HandE(HandV):
        kind, num_classes = "evidential", 3

    A = RegionA()
    ex = explain_image(IMG1, UncertaintyNets(HandR(), A, HandE()), UncertaintyConfig(thresh=0.5))
    # head 0 present (class 0, confidence 0.9994 > 0.8); head 1 absent (binary class 1); head 2 a
    # region head
    assert ex.candidates == [0, 2] and ex.vocabulary.name == "test-hand-region"
    np.testing.assert_allclose(ex.H_attr[1], Q / 15, atol=1e-6)
    # H_t = class-0 map = P / 15; J = minmax(H_t * H_attr): P^2 / 225 and P Q / 225 (both have min
    # 0, max 1)
    np.testing.assert_allclose(ex.J[0], P**2 / 225, atol=1e-6)
    np.testing.assert_allclose(ex.J[1], P * Q / 225, atol=1e-6)
