"""The engine gives the same records as the authors' way (benchmarks/reference.py).

The engine is utils.explain.sim2word.explain_pair.

Small face-world-architecture networks with random weights (BatchNorm statistics
calibrated on the test images so that maps and embeddings depend on the input).
The reference shares no Grad-CAM / class-set / discriminant / joint-map code with
the engine; it does one full forward + backward per target and one image per
verification forward. Records must agree to 1e-4, and the pass counts show the
reference really is the slow way (so the benchmark compares the right things).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.common import calibrate_batchnorm, calibration_batch, face_pairs
from benchmarks.reference import ReferenceSim2Word, compare_records
from utils.run.records import make_record
from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair

ARCH = {
    "FaceWorld-recognition": {"width": 4, "num_classes": 7, "input_size": 48},
    "FaceWorld-attribute": {"width": 4, "input_size": 48},
    "FaceWorld-verification": {"width": 4, "embedding_size": 16, "input_size": 32},
}


@pytest.fixture(scope="module")
def setup():
    from models import get_network

    # with this seed R gives pairs with the same and with different top-1 classes
    torch.manual_seed(4)
    pairs = face_pairs(3, size=72, seed=1)
    # non-square raw images of different sizes
    pairs[2] = (
        pairs[2][0][:, 5:65],
        pairs[2][1][3:70],
        pairs[2][2],
    )
    images = [im for p in pairs for im in p[:2]]
    nets = []
    for name, arch in ARCH.items():
        net = get_network(name, weights=False, **arch)
        nets.append(calibrate_batchnorm(net, calibration_batch(net, images)))
    return Sim2WordNets(*nets), pairs


def record(ex, config, n):
    return make_record(
        ex,
        config,
        datasets="t",
        recognition_net="R",
        attribute_net="A",
        verification_net="V",
        image_path1="a.png",
        image_path2="b.png",
        match=1,
        pair_index=n,
    )


CONFIGS = [
    Sim2WordConfig(strategy="topk", topk=2, thresh=0.3, batch_size=5),
    Sim2WordConfig(
        strategy="threshold",
        id_thresh=0.3,
        heatmap_method="GradCAM++",
        erasing_method="random",
        thresh=0.4,
    ),
    Sim2WordConfig(
        strategy="sameid", ablation="no-counterfactual", erasing_method="white", thresh=0.5
    ),
]


@pytest.mark.parametrize(
    "config", CONFIGS, ids=["topk2", "threshold-gradcampp-random", "sameid-nocf-white"]
)
def test_engine_records_equal_reference(setup, config):
    nets, pairs = setup
    erased_any, same_top1 = 0, set()
    for n, (img1, img2, _) in enumerate(pairs):
        ex = explain_pair(img1, img2, nets, config, pair_index=n)
        ref = ReferenceSim2Word(nets, config)
        rx = ref(img1, img2, pair_index=n)
        worst, bad = compare_records(record(ex, config, n), record(rx, config, n), tol=1e-4)
        assert not bad, f"pair {n}: {len(bad)} mismatches, first: {bad[:5]}"
        for d, r in zip(ex.directions, rx.directions, strict=True):
            np.testing.assert_allclose(
                d.J, r.J, atol=1e-4, err_msg=f"pair {n} side {d.side}: joint maps differ"
            )
            assert (d.masks != r.masks).mean() < 1e-3, f"pair {n} side {d.side}: masks differ"
            erased_any += int(d.masks.any())
        same_top1.add(ex.same_top1)
        # the reference is the slow way: a full pass per target, one image per verification forward
        n_heads = len(nets.attribute.head_sizes)
        assert ref.counts.backward["A"] == ref.counts.forward["A"] == 2 * n_heads
        assert ref.counts.backward["R"] == 2 * (len(ex.class1) + len(ex.class2))
        assert ref.counts.forward["V"] == 2 + 2 * n_heads >= ex.n_verified
    assert erased_any >= 3, (
        "no attribute region was erased: the comparison would not exercise erasing"
    )
    assert same_top1 == {True, False}, (
        "the pairs should cover both equal and different top-1 classes"
    )


def test_engine_runs_each_network_once_per_pair(setup):
    nets, pairs = setup
    calls = {"R": 0, "A": 0, "V": 0}
    handles = [
        net.register_forward_hook(lambda m, i, o, k=k: calls.__setitem__(k, calls[k] + 1))
        for k, net in zip("RAV", (nets.recognition, nets.attribute, nets.verification), strict=True)
    ]
    try:
        ex = explain_pair(*pairs[0][:2], nets, Sim2WordConfig(thresh=0.3, batch_size=64))
    finally:
        for h in handles:
            h.remove()
    # one batched forward each (CAM forward also gives the classes)
    assert calls == {"R": 1, "A": 1, "V": 1}, calls
    assert ex.n_verified <= 62


def test_compare_records_reports_differences():
    a = {"similarity": 0.5, "class1": [3], "attributes-image1": {"image1-f_attr_0": [0.1, 0.2]}}
    assert compare_records(a, a) == (0.0, [])
    b = {
        "similarity": 0.5 + 2e-4,
        "class1": [3],
        "attributes-image1": {"image1-f_attr_0": [0.1, 0.2]},
    }
    worst, bad = compare_records(a, b)
    assert worst == pytest.approx(2e-4) and len(bad) == 1 and "similarity" in bad[0]
    assert compare_records(a, {**a, "class1": [4]})[1] == ["record['class1'][0]: 3 vs 4"]
    assert "keys differ" in compare_records(a, {k: v for k, v in a.items() if k != "class1"})[1][0]
    assert compare_records(a, {**a, "attributes-image1": {"image1-f_attr_0": [0.1]}})[1]
