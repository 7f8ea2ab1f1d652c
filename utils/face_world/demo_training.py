"""Training and evaluation of the face-world demo networks (the embedded default).

Four small members of the paper's network families are trained on the
synthetic face world (:mod:`utils.face_world`):

* ``FaceWorld-recognition``: VGGFace2-style ResNet identity classifier
  (cross-entropy);
* ``FaceWorld-attribute``: the 30-head attribute net (sum of the 30
  cross-entropies);
* ``FaceWorld-verification``: iresnet embedding trained with an ArcFace
  margin head (:class:`utils.face_world.losses.ArcFaceHead`), the head is dropped after
  training;
* ``FaceWorld-evidential``: iresnet + ``fc2`` trained with the EDL loss
  (:func:`utils.face_world.losses.edl_loss`).

The split is fixed by the seed: ``num_identities`` training identities (the
classifier classes), each rendered ``images_per_identity`` times with fresh
nuisance (pose, light, background, expression, noise) into one training pool
shared by the four networks (rendering costs more than a training step on
two cores, so it is done once); held-out *images* of the training identities
(another nuisance stream) for identification and attribute accuracy;
held-out *identities* for verification. Everything is deterministic given
the seed and the thread count.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn
from tqdm import tqdm

from models import get_network
from models.attributes import ATTRIBUTES
from utils.face_world import render, sample_identity, sample_nuisance
from utils.face_world.losses import ArcFaceHead, edl_loss
from utils.base.seeding import seed_everything

DEMO_NETWORKS = ("FaceWorld-recognition", "FaceWorld-attribute", "FaceWorld-verification", "FaceWorld-evidential")
# Epochs per network over the shared pool (the attribute net's 30 heads converge slowest;
# the ArcFace verification net converges fastest).
DEFAULT_EPOCHS = {"FaceWorld-recognition": 16, "FaceWorld-attribute": 24, "FaceWorld-verification": 8,
                  "FaceWorld-evidential": 16}


@dataclass
class WorldSplit:
    """The fixed identities of a training run.

    Attributes:
        seed: base seed; every image seed is derived from it.
        num_identities: training identities (= classifier classes).
        num_heldout_identities: identities never seen in training (verification).
        size: rendered image size.
    """

    seed: int = 0
    num_identities: int = 200
    num_heldout_identities: int = 60
    num_attribute_identities: int = 3200
    size: int = 112

    def identities(self) -> list:
        """Training identities, index = class id."""
        return [sample_identity(np.random.default_rng([self.seed, 1, i])) for i in range(self.num_identities)]

    def attribute_identities(self) -> list:
        """Many identities for the attribute net: attributes must be learnt from the face, not
        through the identity (with the 200 classifier identities the net memorises them)."""
        return [sample_identity(np.random.default_rng([self.seed, 10, i])) for i in range(self.num_attribute_identities)]

    def heldout_identities(self) -> list:
        """Identities outside the training classes."""
        return [sample_identity(np.random.default_rng([self.seed, 2, i])) for i in range(self.num_heldout_identities)]

    def render_images(self, identities: list, per_identity: int, stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render ``per_identity`` images of every identity with nuisance stream ``stream``.

        Returns:
            images (N, size, size, 3) uint8 BGR, identity ids (N,), attribute labels (N, 30).
        """
        images, ids, labels = [], [], []
        for i, ident in enumerate(identities):
            for k in range(per_identity):
                nuisance = sample_nuisance(np.random.default_rng([self.seed, 3, stream, i, k]))
                sample = render(ident, nuisance, size=self.size, with_masks=False)
                images.append(sample.image)
                ids.append(i)
                labels.append(sample.labels)
        return np.stack(images), np.asarray(ids, np.int64), np.stack(labels).astype(np.int64)


@dataclass
class TrainConfig:
    """Optimisation settings shared by the four networks (``epochs=None``: :data:`DEFAULT_EPOCHS`)."""

    epochs: int | None = None
    images_per_identity: int = 32
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    arc_scale: float = 32.0
    arc_margin: float = 0.3
    threads: int = 2
    extra: dict = field(default_factory=dict)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n - batch_size + 1, batch_size):  # drop the last partial batch (BatchNorm1d)
        yield order[start:start + batch_size]


def _loss_fn(name: str, net: nn.Module, head: nn.Module | None) -> Callable:
    if name == "FaceWorld-recognition":
        return lambda x, ids, attrs, epoch_frac: F.cross_entropy(net(x), ids)
    if name == "FaceWorld-attribute":
        return lambda x, ids, attrs, epoch_frac: sum(F.cross_entropy(o, attrs[:, j]) for j, o in enumerate(net(x)))
    if name == "FaceWorld-verification":
        return lambda x, ids, attrs, epoch_frac: F.cross_entropy(head(net(x), ids), ids)
    if name == "FaceWorld-evidential":
        return lambda x, ids, attrs, epoch_frac: edl_loss(net(x), ids, kl_weight=min(1.0, epoch_frac))
    raise ValueError(f"no training recipe for {name!r}; expected one of {DEMO_NETWORKS}")


def render_pool(split: WorldSplit, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training pool: ``cfg.images_per_identity`` images of every training identity (nuisance stream 0)."""
    return split.render_images(split.identities(), cfg.images_per_identity, stream=0)


def render_attribute_pool(split: WorldSplit, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The attribute net's pool: as many images as :func:`render_pool`, spread over
    ``split.num_attribute_identities`` identities (nuisance stream 5)."""
    per = max(1, cfg.images_per_identity * split.num_identities // split.num_attribute_identities)
    return split.render_images(split.attribute_identities(), per, stream=5)


def train_network(name: str, split: WorldSplit, cfg: TrainConfig, pool: tuple[np.ndarray, np.ndarray, np.ndarray],
                  log: Callable[[str], None] = print) -> nn.Module:
    """Train one demo network from scratch on the pool; returns it in eval mode.

    Args:
        name: one of :data:`DEMO_NETWORKS`.
        split: the identities.
        cfg: optimisation settings.
        pool: ``(images, identity ids, attribute labels)`` from :func:`render_pool`.
        log: where progress lines go.
    """
    seed_everything(split.seed, deterministic=False)
    torch.set_num_threads(cfg.threads)
    classes = split.num_identities
    overrides = {} if name == "FaceWorld-attribute" or name == "FaceWorld-verification" else {"num_classes": classes}
    net = get_network(name, weights=False, **overrides)
    head = None
    if name == "FaceWorld-verification":
        head = ArcFaceHead(net.embedding_size, classes, scale=cfg.arc_scale, margin=cfg.arc_margin)
    params = [p for p in net.parameters() if p.requires_grad] + ([] if head is None else list(head.parameters()))
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    loss_fn = _loss_fn(name, net, head)
    epochs = cfg.epochs or DEFAULT_EPOCHS[name]
    images, ids, attrs = pool
    x_all = net.preprocess(images)
    ids_t, attrs_t = torch.from_numpy(ids), torch.from_numpy(attrs)
    steps_per_epoch = len(ids) // cfg.batch_size
    total = epochs * steps_per_epoch
    warmup = max(1, steps_per_epoch // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    rng = np.random.default_rng([split.seed, 4])
    net.train()
    start = time.time()
    for epoch in range(epochs):
        running, count = 0.0, 0
        bar = tqdm(list(_batches(len(ids), cfg.batch_size, rng)), desc=f"{name} epoch {epoch + 1}/{epochs}", leave=False)
        for b, idx in enumerate(bar):
            idx_t = torch.from_numpy(idx)
            loss = loss_fn(x_all[idx_t], ids_t[idx_t], attrs_t[idx_t], (epoch + b / steps_per_epoch) / max(1, epochs // 2))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss)
            count += 1
            bar.set_postfix(loss=f"{running / count:.3f}")
        log(f"{name}: epoch {epoch + 1}/{epochs} loss {running / max(count, 1):.4f} ({time.time() - start:.0f} s)")
    return net.eval()


@torch.inference_mode()
def _forward_all(net: nn.Module, images: np.ndarray, batch_size: int = 256):
    outs = []
    for start in range(0, len(images), batch_size):
        outs.append(net(net.preprocess(images[start:start + batch_size])))
    if isinstance(outs[0], (list, tuple)):
        return [torch.cat([o[j] for o in outs]) for j in range(len(outs[0]))]
    return torch.cat(outs)


def tar_at_far(labels: np.ndarray, scores: np.ndarray, far: float) -> float:
    """True accept rate at the largest ROC point whose false accept rate is <= ``far``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    ok = fpr <= far + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def evaluate(nets: dict[str, nn.Module], split: WorldSplit, heldout_per_identity: int = 4,
             verification_per_identity: int = 6) -> dict:
    """Held-out metrics of the demo networks (see the README table).

    * identification top-1 of the recognition net, and attribute accuracy per
      head, on fresh images of the training identities (nuisance stream 1000,
      never used in training); attribute accuracy also on the held-out
      identities (never seen in training);
    * verification ROC AUC and TAR at FAR 1e-2 of the verification net over
      all image pairs of the held-out identities (cosine similarity);
    * identification top-1 of the evidential net and its mean uncertainty.
    """
    images, ids, attrs = split.render_images(split.identities(), heldout_per_identity, stream=1000)
    v_images, v_ids, v_attrs = split.render_images(split.heldout_identities(), verification_per_identity, stream=2000)
    metrics: dict = {"split": asdict(split), "heldout_images": int(len(ids)),
                     "heldout_identity_images": int(len(v_ids))}
    if "FaceWorld-recognition" in nets:
        logits = _forward_all(nets["FaceWorld-recognition"], images)
        metrics["identification_top1"] = float((logits.argmax(1).numpy() == ids).mean())
    if "FaceWorld-attribute" in nets:
        outs = _forward_all(nets["FaceWorld-attribute"], images)
        per_head = {ATTRIBUTES[j]: float((o.argmax(1).numpy() == attrs[:, j]).mean()) for j, o in enumerate(outs)}
        metrics["attribute_accuracy"] = per_head
        metrics["attribute_mean_accuracy"] = float(np.mean(list(per_head.values())))
        metrics["attribute_min_accuracy"] = float(min(per_head.values()))
        # identity-level attributes of training identities can be learnt through the identity:
        # also measure on identities never seen in training
        outs = _forward_all(nets["FaceWorld-attribute"], v_images)
        unseen = {ATTRIBUTES[j]: float((o.argmax(1).numpy() == v_attrs[:, j]).mean()) for j, o in enumerate(outs)}
        metrics["attribute_accuracy_unseen_identities"] = unseen
        metrics["attribute_mean_accuracy_unseen_identities"] = float(np.mean(list(unseen.values())))
        metrics["attribute_min_accuracy_unseen_identities"] = float(min(unseen.values()))
    if "FaceWorld-evidential" in nets:
        logits = _forward_all(nets["FaceWorld-evidential"], images)
        metrics["evidential_top1"] = float((logits.argmax(1).numpy() == ids).mean())
    if "FaceWorld-verification" in nets:
        emb = F.normalize(_forward_all(nets["FaceWorld-verification"], v_images), dim=1)
        sims = (emb @ emb.T).numpy()
        iu = np.triu_indices(len(v_ids), k=1)
        labels = (v_ids[iu[0]] == v_ids[iu[1]]).astype(int)
        scores = sims[iu]
        metrics["verification_pairs"] = {"genuine": int(labels.sum()), "impostor": int((1 - labels).sum())}
        metrics["verification_auc"] = float(roc_auc_score(labels, scores))
        metrics["verification_tar_at_far_1e-2"] = tar_at_far(labels, scores, 1e-2)
        metrics["verification_tar_at_far_1e-3"] = tar_at_far(labels, scores, 1e-3)
    return metrics


def save_weights(net: nn.Module, path: Path) -> None:
    """Save a state_dict (loadable with ``torch.load(weights_only=True)``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(net.state_dict(), tmp)
    tmp.replace(path)


def write_metrics(metrics: dict, path: Path) -> None:
    """Write the metrics JSON (strict, no NaN)."""
    from utils.base.atomic import atomic_write_json

    atomic_write_json(path, metrics)


def format_metrics(metrics: dict) -> str:
    """A human-readable summary of :func:`evaluate`'s output."""
    lines = []
    if "identification_top1" in metrics:
        lines.append(f"identification top-1 (held-out images, {metrics['heldout_images']}): {metrics['identification_top1']:.4f}")
    if "attribute_mean_accuracy" in metrics:
        lines.append(
            f"attribute accuracy: mean {metrics['attribute_mean_accuracy']:.4f}, min {metrics['attribute_min_accuracy']:.4f} "
            f"(held-out images of training identities); mean {metrics['attribute_mean_accuracy_unseen_identities']:.4f}, "
            f"min {metrics['attribute_min_accuracy_unseen_identities']:.4f} (unseen identities, "
            f"{metrics['heldout_identity_images']} images)")
        lines.append(f"    {'head':<24s} {'seen ids':>8s} {'unseen ids':>10s}")
        for name, acc in metrics["attribute_accuracy"].items():
            lines.append(f"    {name:<24s} {acc:8.4f} {metrics['attribute_accuracy_unseen_identities'][name]:10.4f}")
    if "verification_auc" in metrics:
        p = metrics["verification_pairs"]
        lines.append(
            f"verification (held-out identities, {p['genuine']} genuine / {p['impostor']} impostor pairs): "
            f"AUC {metrics['verification_auc']:.4f}, TAR@FAR=1e-2 {metrics['verification_tar_at_far_1e-2']:.4f}, "
            f"TAR@FAR=1e-3 {metrics['verification_tar_at_far_1e-3']:.4f}"
        )
    if "evidential_top1" in metrics:
        lines.append(f"evidential net identification top-1: {metrics['evidential_top1']:.4f}")
    return "\n".join(lines)


def load_config(path: Path) -> dict:
    """Read a JSON training config (safe parser)."""
    from utils.base.safejson import load_json_file

    return load_json_file(path)


def write_demo_data(out_dir: Path, split: WorldSplit, num_pair_identities: int = 20, images_per_pair_identity: int = 3,
                    num_genuine: int = 20, num_impostor: int = 20, num_identification: int = 50) -> dict:
    """Write the embedded-default data: verification pairs and an identification list.

    * ``pairs.txt``: ``path1 path2 label`` lines over *held-out* identities
      (never seen in training), ``num_genuine`` mates then ``num_impostor``
      non-mates, interleaved; images under ``verification/<id>/<k>.png``.
    * ``identification.txt``: ``path label`` lines, one image (nuisance stream
      3000, not used in training or evaluation) of each of the first
      ``num_identification`` *training* identities, label = their class id in
      the recognition and evidential nets; images under
      ``identification/<class>/0.png``.
    * ``attributes.json``: the ground-truth attribute labels of every image.

    Deterministic given the split's seed. Returns the counts.
    """
    from utils.base.atomic import atomic_write_image, atomic_write_json, atomic_write_text

    rng = np.random.default_rng([split.seed, 5])
    truth: dict[str, list[int]] = {}
    ids = split.heldout_identities()[:num_pair_identities]
    images, id_of, labels = split.render_images(ids, images_per_pair_identity, stream=3000)
    paths = []
    for n, (img, i, lab) in enumerate(zip(images, id_of, labels)):
        rel = f"verification/h{i:03d}/{n % images_per_pair_identity}.png"
        atomic_write_image(out_dir / rel, img)
        paths.append(rel)
        truth[rel] = lab.tolist()
    by_id = {i: [p for p, j in zip(paths, id_of) if j == i] for i in range(len(ids))}
    genuine = [(a, b) for i in range(len(ids)) for k, a in enumerate(by_id[i]) for b in by_id[i][k + 1:]]
    impostor = [(by_id[i][0], by_id[j][1]) for i in range(len(ids)) for j in range(len(ids)) if i != j]
    genuine = [genuine[k] for k in sorted(rng.choice(len(genuine), num_genuine, replace=False))]
    impostor = [impostor[k] for k in sorted(rng.choice(len(impostor), num_impostor, replace=False))]
    lines = []
    for g, m in zip(genuine, impostor):
        lines += [f"{g[0]} {g[1]} 1", f"{m[0]} {m[1]} 0"]
    header = "# Face-world demo pairs (held-out identities). Written by: python make_face_world_data.py\n"
    atomic_write_text(out_dir / "pairs.txt", header + "\n".join(lines) + "\n")

    train_ids = split.identities()[:num_identification]
    images, id_of, labels = split.render_images(train_ids, 1, stream=3000)
    lines = []
    for img, i, lab in zip(images, id_of, labels):
        rel = f"identification/{i:03d}/0.png"
        atomic_write_image(out_dir / rel, img)
        lines.append(f"{rel} {i}")
        truth[rel] = lab.tolist()
    header = "# Face-world identification list: path, class id of FaceWorld-recognition/-evidential.\n"
    atomic_write_text(out_dir / "identification.txt", header + "\n".join(lines) + "\n")
    atomic_write_json(out_dir / "attributes.json", {"attributes": list(ATTRIBUTES), "labels": truth}, indent=None)
    return {"pairs": len(genuine) + len(impostor), "identification": len(lines), "images": len(truth)}


def small_batch_metrics(nets: dict[str, nn.Module], split: WorldSplit | None = None) -> dict:
    """Accuracies on a small fixed batch (fast; the committed values are checked by a test).

    40 unseen images (one each of training identities 0..39, nuisance stream
    1000) for identification and attributes; all pairs of 3 images of 10
    unseen identities for verification.
    """
    split = split or WorldSplit()
    images, ids, attrs = split.render_images(split.identities()[:40], 1, stream=1000)
    v_images, v_ids, _ = split.render_images(split.heldout_identities()[:10], 3, stream=2000)
    out = {}
    out["identification_top1"] = float((_forward_all(nets["FaceWorld-recognition"], images).argmax(1).numpy() == ids).mean())
    heads = _forward_all(nets["FaceWorld-attribute"], images)
    out["attribute_mean_accuracy"] = float(np.mean([(o.argmax(1).numpy() == attrs[:, j]).mean() for j, o in enumerate(heads)]))
    out["evidential_top1"] = float((_forward_all(nets["FaceWorld-evidential"], images).argmax(1).numpy() == ids).mean())
    emb = F.normalize(_forward_all(nets["FaceWorld-verification"], v_images), dim=1)
    iu = np.triu_indices(len(v_ids), k=1)
    out["verification_auc"] = float(roc_auc_score((v_ids[iu[0]] == v_ids[iu[1]]).astype(int), (emb @ emb.T).numpy()[iu]))
    return out
