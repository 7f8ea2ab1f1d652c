"""CAM_visualization.py (utils/experiments/cam_figures.py): the maps of each mode, drawn on the
image they were computed on, and the run loop's resume."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.helpers import TINY_ARCH, load_tiny_net, save_tiny_nets

ROLES = {k: TINY_ARCH[k] for k in ("recognition", "attribute")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cam")
    flags = save_tiny_nets(root, ROLES)
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(70, 60), (64, 64), (50, 80)]):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(root / f"f{i}.png"), img)
    (root / "pairs.txt").write_text("f0.png f1.png 1\nf2.png f0.png 0\n")
    return root, [
        "--pair-list",
        str(root / "pairs.txt"),
        "--device",
        "cpu",
        "--no-progress",
        *flags,
    ]


def test_modes_draw_the_maps_of_the_explanation(setup, tmp_path):
    from utils.experiments.cam_figures import main
    from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair
    from utils.explain.visualize import overlay_with_scale
    from utils.faces.image_io import read_image

    root, common = setup
    assert main([*common, "--output-dir", str(tmp_path)]) == 0
    run = tmp_path / "CAM-pairs-FaceWorld-recognition-topk-1"
    rec = json.loads((run / "json" / "1.json").read_text())
    assert rec["modes"] == ["identity", "attribute", "counterfactual"] and rec["match"] == 0
    assert len(rec["files"]) == 2 * (1 + 30 + 4) and all((run / f).is_file() for f in rec["files"])

    nets = Sim2WordNets(
        load_tiny_net(root, "recognition", ROLES), load_tiny_net(root, "attribute", ROLES)
    )
    img2, img0 = read_image(root / "f2.png"), read_image(root / "f0.png")
    ex = explain_pair(img2, img0, nets, Sim2WordConfig(calculate_similarity=False))
    d = ex.directions[0]

    def diff(rel, heat):  # mean absolute difference to the overlay drawn here (file is a JPEG)
        drawn = cv2.imread(str(run / rel)).astype(float)
        return np.abs(drawn - overlay_with_scale(img2, heat)).mean()

    assert cv2.imread(str(run / "identity/1-1.jpg")).shape == (50, 80 + 2 + 6, 3)  # strip 80 // 12
    # the file is the overlay of H_t (JPEG noise only), far from the overlay of another map
    assert diff("identity/1-1.jpg", d.H_t) < 6
    assert diff("identity/1-1.jpg", d.H_t) < diff("identity/1-1.jpg", 1 - d.H_t) / 3
    hf = "counterfactual/1-n1-n2/1-H_f.jpg"
    assert diff(hf, 1 - d.H_f) < 6 and diff(hf, 1 - d.H_f) < diff(hf, d.H_f) / 3
    # rerun: both pairs resumed, nothing recomputed
    assert main([*common, "--output-dir", str(tmp_path)]) == 0
    assert json.loads((run / "summary.json").read_text())["skipped"] == 2


def test_present_only_attribute_mode(setup, tmp_path):
    from utils.experiments.cam_figures import main
    from utils.explain.sim2word import Sim2WordConfig, Sim2WordNets, explain_pair
    from utils.faces.image_io import read_image

    root, common = setup
    assert (
        main(
            [
                *common,
                "--output-dir",
                str(tmp_path),
                "--mode",
                "attribute",
                "--present-only",
                "--limit",
                "1",
            ]
        )
        == 0
    )
    run = tmp_path / "CAM-pairs-FaceWorld-recognition-topk-1-attribute-present"
    nets = Sim2WordNets(
        load_tiny_net(root, "recognition", ROLES), load_tiny_net(root, "attribute", ROLES)
    )
    ex = explain_pair(
        read_image(root / "f0.png"),
        read_image(root / "f1.png"),
        nets,
        Sim2WordConfig(calculate_similarity=False),
    )
    for i, d in enumerate(ex.directions, start=1):
        present = {j for j, c in enumerate(d.attr_class) if ex.vocabulary.is_present(j, int(c))}
        drawn = {int(p.name[:2]) for p in (run / "attribute" / f"0-{i}").iterdir()}
        assert drawn == present and {0, 1, 2, 8} <= drawn
    assert not (run / "identity").exists()
