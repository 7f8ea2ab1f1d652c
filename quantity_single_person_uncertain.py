"""Explain identification with evidential uncertainty (paper Section 4, METHOD.md section 6).

For each ``image_path label`` line of --dataset-list: Grad-CAM of the
recognition net's top-1 class, attribute maps, joint maps, candidate
attributes (present, confidence > --attr-conf), their erased images
(J >= --thresh) and the evidential uncertainty of the original and of each
erased image. Writes one JSON per image and the quantity experiment
(identification accuracy before / after erasing the intersection of the
regions of the --Erase_num most uncertainty-raising attributes, and a random
baseline) as summary.txt / summary.json. All computation: utils/experiments/uncertainty.py.

Example:
    python quantity_single_person_uncertain.py --Erase_num 1 2 3
    cd results; python uncertainty_visualization.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.explain.cam import METHODS
from utils.run.cli import _finite_float, _positive_int, add_network_flags
from utils.explain.erasing import FILLS
from utils.experiments.uncertainty import DEFAULT_DATASET_LIST, DEFAULT_OUTPUT_DIR, DEFAULTS, main


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The script's flags (authors' spelling kept: ``--Erasing-method``, ``--Erase_num``)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Exit status: 0 all images done, 3 some images failed (see failures.jsonl in "
                                       "the run folder), 2 usage error.")
    data = p.add_argument_group("data")
    data.add_argument("--dataset-list", default=str(DEFAULT_DATASET_LIST),
                      help="identification list, one 'image_path label' per line, label = class id of the "
                           "recognition net (default: <repo>/data/face_world/identification.txt)")
    data.add_argument("--dataset-root", default=None,
                      help="root of the relative image paths of the list (default: the list's folder)")
    data.add_argument("--limit", type=_positive_int, default=None, help="only the first N images of the list")

    add_network_flags(p, tuple((role, DEFAULTS[f"{role}_net"]) for role in ("recognition", "attribute", "uncertainty")))

    meth = p.add_argument_group("method")
    meth.add_argument("--heatmap-method", choices=METHODS, default="GradCAM",
                      help="class activation map method (default: %(default)s)")
    meth.add_argument("--thresh", type=_finite_float, default=DEFAULTS["thresh"],
                      help="erase region of attribute j: J[j] >= thresh (default: %(default)s)")
    meth.add_argument("--attr-conf", type=_finite_float, default=DEFAULTS["attr_conf"],
                      help="candidate attributes: present with head confidence > attr-conf (default: %(default)s)")
    meth.add_argument("--evidence-scale", type=_finite_float, default=DEFAULTS["evidence_scale"],
                      help="evidence = ReLU(logits) * scale; u = K / sum(evidence + 1) (default: %(default)s)")
    meth.add_argument("--Erasing-method", choices=FILLS, default="black",
                      help="fill of erased pixels: black 0, white 255, mean 125, random uniform (seeded) "
                           "(default: %(default)s)")
    meth.add_argument("--Erase_num", type=_positive_int, nargs="+", default=list(DEFAULTS["erase_nums"]),
                      metavar="N", help="quantity experiment: erase the intersection of the regions of the N most "
                                        "uncertainty-raising attributes; several values allowed (default: 1 2 3)")
    meth.add_argument("--random-baseline", action=argparse.BooleanOptionalAction, default=True,
                      help="also erase the same number of random candidate attributes (seeded) "
                           "(default: %(default)s)")

    run = p.add_argument_group("run")
    run.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR),
                     help="parent of the run folder uncertainty-<list>-<recognition-net>-<uncertainty-net>-... "
                          "(default: <repo>/outputs)")
    run.add_argument("--device", default=None,
                     help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    run.add_argument("--batch-size", type=_positive_int, default=32,
                     help="images per forward of the evidential net and of the recognition net on erased images "
                          "(>= 31 keeps all erased images of one image in one batch) (default: %(default)s)")
    run.add_argument("--seed", type=int, default=0,
                     help="seed of everything (random fill and random baseline: seed + image index) "
                          "(default: %(default)s)")
    run.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="skip images whose JSON already exists and parses (default: %(default)s)")
    return p


if __name__ == "__main__":
    sys.exit(main(build_parser(prog=Path(sys.argv[0]).name)))
