"""Real networks on real photos: detection, landmark agreement, verification AUC, identification.

On ``../shared/data/real_faces`` (82 raw photos of 28 identities, ``pairs.csv``
with 1614 labelled pairs), for our PyTorch ``dlib-ResNet29`` and ``SFace``:

1. faces found per landmarker (YuNet, dlib HOG + 5 points, Haar) and the
   agreement of YuNet's and dlib's eye centres (in inter-ocular distances);
2. each net's photos aligned from the raw files by ``align_for(image,
   net.alignment, --align)`` and embedded by our torch module; the ROC AUC of
   the cosine similarity against ``same`` over all pairs of ``pairs.csv``
   (pairs with a photo that could not be aligned count as failures and are
   listed);
3. leave-one-out top-1 of the identity-mean classifier (``<net>-gallery``)
   over the photos of identities with at least two photos;
4. ``--reference``: the packages' own descriptors on the same aligned crops
   (dlib's ``face_recognition_model_v1``, OpenCV's ``FaceRecognizerSF``):
   largest difference to ours and their AUC.

Example:
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/real_faces_auc.py --reference
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "real_faces"
NETS = ("dlib-ResNet29", "SFace")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 done, 1 a net's AUC is below --min-auc, 2 usage error.",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder of photos, one sub-folder per identity (default: ../shared/data/real_faces)",
    )
    p.add_argument("--pairs", type=Path, default=None, help="pair list (default: <data>/pairs.csv)")
    p.add_argument(
        "--nets", nargs="+", default=list(NETS), help="embedding nets (default: %(default)s)"
    )
    p.add_argument(
        "--align",
        default="auto",
        choices=("auto", "dlib", "yunet", "haar", "none"),
        help="landmarker for every net's template (default: %(default)s: the template's own, then "
        "fallbacks)",
    )
    p.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run the packages' own descriptors on our aligned crops (needs dlib, OpenCV)",
    )
    p.add_argument(
        "--detection",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="section 1: faces found per landmarker and YuNet/dlib agreement (default: on)",
    )
    p.add_argument(
        "--min-auc", type=float, default=0.99, help="exit 1 if a net's AUC is below (default: 0.99)"
    )
    p.add_argument("--output", type=Path, default=None, help="also write the numbers as JSON here")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        p.error(f"--data {args.data} is not a folder")
    args.pairs = args.pairs or args.data / "pairs.csv"
    if not args.pairs.is_file():
        p.error(f"--pairs {args.pairs} does not exist")
    return args


def detection_section(items: list[tuple[str, str]], root: Path) -> dict:
    from utils.faces.image_io import read_image
    from utils.faces.templates import eye_disagreement, main_face

    found = {"yunet": 0, "dlib": 0, "haar": 0}
    cpu = dict.fromkeys(found, 0.0)
    agreement, missed = [], {k: [] for k in found}
    for path, _ in items:
        image = read_image(path)
        faces = {}
        for method in found:
            start = time.process_time()
            faces[method], _ = main_face(image, method)
            cpu[method] += time.process_time() - start
            if faces[method] is None:
                missed[method].append(Path(path).relative_to(root).as_posix())
            else:
                found[method] += 1
        if faces["yunet"] is not None and faces["dlib"] is not None:
            agreement.append(eye_disagreement(faces["yunet"], faces["dlib"]))
    a = np.asarray(agreement)
    return {
        "photos": len(items),
        "found": found,
        "missed": missed,
        "cpu_s_per_photo": {k: v / len(items) for k, v in cpu.items()},
        "eye_disagreement_iod": {
            "photos": len(a),
            "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95)),
            "max": float(a.max()),
        },
    }


def _reference_descriptors(name: str, aligned: list[np.ndarray]) -> np.ndarray:
    """The packages' own descriptors of aligned BGR crops."""
    from models.packages import package_file

    if name == "dlib-ResNet29":
        import dlib

        rec = dlib.face_recognition_model_v1(str(package_file("dlib-resnet")))
        return np.array(
            [rec.compute_face_descriptor(np.ascontiguousarray(a[:, :, ::-1])) for a in aligned]
        )
    import cv2

    rec = cv2.FaceRecognizerSF.create(str(package_file("sface")), "")
    return np.stack([rec.feature(a).reshape(-1) for a in aligned])


def net_section(name: str, items, pairs, align: str, reference: bool) -> dict:
    from sklearn.metrics import roc_auc_score

    from models import get_network
    from utils.explain.verification import cosine
    from utils.faces.gallery import embed_photos, leave_one_out_top1
    from utils.faces.image_io import read_image
    from utils.faces.templates import align_for

    start = time.process_time()
    net = get_network(name)
    load_s = time.process_time() - start
    start = time.process_time()
    photos = embed_photos(net, items, align=align, progress=False)
    embed_s = time.process_time() - start
    index = {p: i for i, p in enumerate(photos.paths)}
    usable = [q for q in pairs if q.path1 in index and q.path2 in index]
    labels = np.array([q.label for q in usable])

    def auc(emb: np.ndarray) -> float:
        import torch

        e = torch.from_numpy(np.asarray(emb, np.float32))
        sims = cosine(
            e[[index[q.path1] for q in usable]], e[[index[q.path2] for q in usable]]
        ).numpy()
        return float(roc_auc_score(labels, sims))

    correct, evaluated, _ = leave_one_out_top1(photos.embeddings, photos.identities)
    methods: dict[str, int] = {}
    for m in photos.methods:
        methods[m] = methods.get(m, 0) + 1
    out = {
        "net": name,
        "alignment": net.alignment,
        "align": align,
        "photos_embedded": len(photos.paths),
        "photo_failures": photos.failures,
        "align_methods": methods,
        "fallbacks": int(sum(photos.fallbacks)),
        "pairs": len(pairs),
        "pairs_scored": len(usable),
        "genuine": int(labels.sum()),
        "auc": auc(photos.embeddings),
        "loo_top1": [correct, evaluated],
        "cpu_s_load": load_s,
        "cpu_s_align_embed_per_photo": embed_s / max(len(items), 1),
    }
    if reference:
        aligned = [align_for(read_image(p), net.alignment, align)[0] for p in photos.paths]
        ref = _reference_descriptors(name, aligned)
        out["reference_max_abs_diff"] = float(np.abs(ref - photos.embeddings).max())
        out["reference_auc"] = auc(ref)
    return out


def markdown(det: dict | None, nets: list[dict], command: str) -> str:
    lines = []
    if det:
        f, c, e = det["found"], det["cpu_s_per_photo"], det["eye_disagreement_iod"]
        lines += ["| landmarker | faces found | CPU s/photo |", "|---|---|---|"]
        lines += [f"| {k} | {f[k]}/{det['photos']} | {c[k]:.3f} |" for k in f]
        lines += [
            "",
            f"YuNet vs dlib eye centres ({e['photos']} photos both found), distance in "
            f"inter-ocular distances: median {e['median']:.3f}, 95th percentile "
            f"{e['p95']:.3f}, max {e['max']:.3f}",
            "",
        ]
    head = [
        "net",
        "template",
        "aligned by",
        "photos",
        "pairs scored",
        "ROC AUC",
        "LOO top-1",
        "CPU s/photo (align+embed)",
    ]
    if any("reference_auc" in r for r in nets):
        head += ["max abs diff to package", "package AUC"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in nets:
        cells = [
            r["net"],
            r["alignment"],
            ", ".join(f"{k} {v}" for k, v in r["align_methods"].items()),
            f"{r['photos_embedded']}/{r['photos_embedded'] + len(r['photo_failures'])}",
            f"{r['pairs_scored']}/{r['pairs']}",
            f"{r['auc']:.5f}",
            f"{r['loo_top1'][0]}/{r['loo_top1'][1]}",
            f"{r['cpu_s_align_embed_per_photo']:.3f}",
        ]
        if "reference_auc" in r:
            cells += [f"{r['reference_max_abs_diff']:.1e}", f"{r['reference_auc']:.5f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nCommand: `{command}`\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from utils.faces.data import read_pair_list
    from utils.faces.gallery import gallery_items

    torch.set_num_threads(1)
    items = gallery_items(args.data)
    pairs = read_pair_list(args.pairs, args.data)
    bad = [q for q in pairs if q.error]
    if bad:
        print(
            f"error: {len(bad)} unusable lines in {args.pairs}, first: line "
            f"{bad[0].line_no}: {bad[0].error}",
            file=sys.stderr,
        )
        return 2
    det = detection_section(items, args.data) if args.detection else None
    nets = [net_section(n, items, pairs, args.align, args.reference) for n in args.nets]
    command = "python benchmarks/real_faces_auc.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print(markdown(det, nets, command))
    for r in nets:
        for path, reason in r["photo_failures"]:
            print(f"  {r['net']}: left out {path}: {reason}")
    if args.output:
        from utils.base.atomic import atomic_write_json

        atomic_write_json(args.output, {"command": command, "detection": det, "nets": nets})
    low = [r["net"] for r in nets if r["auc"] < args.min_auc]
    if low:
        print(f"AUC below {args.min_auc}: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
