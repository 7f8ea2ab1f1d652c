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

Which random streams are used for what (identity ``i`` of a family is drawn
from ``default_rng([seed, family, i])``, image ``k`` of it with nuisance
``default_rng([seed, 3, stream, i, k])``; ``seed`` = 0 for everything committed):

=============================  =================  ==========================================
use                            identity family    nuisance stream
=============================  =================  ==========================================
training (R, V, E)             1 (200 ids)        0 (32 images each)
training (A)                   10 (3200 ids)      5 (2 images each)
tuning (design choices, only   1 (200 ids);       1500 (4 each);
``--tuning-set``)              13 (60 ids)        2500 (6 each)
reported held-out metrics      1 (200 ids);       1000 (4 each);
                               2 (60 ids)         2000 (6 each)
xCos head training             1                  5000
demo pairs (data/face_world)   12 (candidates)    1201, 1202 (100 x family + 1, 2)
identification list            1 (first 50)       3000
twin check (ground_truth)      8                  4000
=============================  =================  ==========================================

Settings (architectures, epochs, learning rate) are chosen on the tuning
images only; the reported numbers are measured once on the held-out ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn
from tqdm import tqdm

from models import get_network
from models.attributes import ATTRIBUTES
from utils.face_world import Nuisance, render, sample_identity, sample_nuisance
from utils.face_world.losses import ArcFaceHead, edl_loss
from utils.base.seeding import seed_everything

DEMO_NETWORKS = (
    "FaceWorld-recognition",
    "FaceWorld-attribute",
    "FaceWorld-verification",
    "FaceWorld-evidential",
)
# Epochs per network over the shared pool (the attribute net's 30 heads converge slowest;
# the ArcFace verification net converges fastest).
DEFAULT_EPOCHS = {
    "FaceWorld-recognition": 16,
    "FaceWorld-attribute": 24,
    "FaceWorld-verification": 8,
    "FaceWorld-evidential": 16,
}
# Share of those epochs run at TrainConfig.low_res_size (64 px) before the rest at the net's own
# input size (progressive resizing): the 128 px trunk of R and A costs 4x per image at full size,
# the convolutions and the global pooling do not depend on the size, and the last epochs at 128 px
# adapt the filters and BatchNorm statistics to it. The attribute net spends half of its epochs at
# 128 px (its mouth, lip and brow heads need the detail); nets of at most 64 px skip it.
DEFAULT_LOW_RES_FRACTION = {"FaceWorld-recognition": 0.75, "FaceWorld-attribute": 0.5}


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
        return self.family_identities(1, self.num_identities)

    def attribute_identities(self) -> list:
        """Many identities for the attribute net: attributes must be learnt from the face, not
        through the identity (with the 200 classifier identities the net memorises them)."""
        return self.family_identities(10, self.num_attribute_identities)

    def heldout_identities(self) -> list:
        """Identities outside the training classes (the reported verification metrics)."""
        return self.family_identities(2, self.num_heldout_identities)

    def tuning_identities(self) -> list:
        """Identities outside the training classes kept for design choices (never reported)."""
        return self.family_identities(13, self.num_heldout_identities)

    def family_identities(self, family: int, num: int) -> list:
        """``num`` identities of a family: ``default_rng([seed, family, i])`` (module docstring)."""
        return [sample_identity(np.random.default_rng([self.seed, family, i])) for i in range(num)]

    def nuisance(self, stream: int, i: int, k: int) -> Nuisance:
        """Nuisance of image ``k`` of identity ``i`` in nuisance stream ``stream``."""
        return sample_nuisance(np.random.default_rng([self.seed, 3, stream, i, k]))

    def render_samples(
        self, identities: list, per_identity: int, stream: int, with_masks: bool = False
    ) -> list:
        """``per_identity`` :class:`utils.face_world.FaceSample` of every identity (position ``i``
        in the list), image ``k`` with :meth:`nuisance` ``(stream, i, k)``."""
        return [
            render(ident, self.nuisance(stream, i, k), size=self.size, with_masks=with_masks)
            for i, ident in enumerate(identities)
            for k in range(per_identity)
        ]

    def render_images(
        self, identities: list, per_identity: int, stream: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render ``per_identity`` images of every identity with nuisance stream ``stream``.

        Returns:
            images (N, size, size, 3) uint8 BGR, identity ids (N,), attribute labels (N, 30).
        """
        samples = self.render_samples(identities, per_identity, stream)
        ids = np.repeat(np.arange(len(identities), dtype=np.int64), per_identity)
        return (
            np.stack([s.image for s in samples]),
            ids,
            np.stack([s.labels for s in samples]).astype(np.int64),
        )


@dataclass
class TrainConfig:
    """Optimisation settings shared by the four networks.

    ``epochs=None``: :data:`DEFAULT_EPOCHS`; ``low_res_fraction=None``:
    :data:`DEFAULT_LOW_RES_FRACTION` (0 for the nets not listed there).
    """

    epochs: int | None = None
    low_res_fraction: float | None = None
    low_res_size: int = 64
    images_per_identity: int = 32
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    arc_scale: float = 32.0
    arc_margin: float = 0.3
    threads: int = 1
    extra: dict = field(default_factory=dict)


def schedule(name: str, cfg: TrainConfig, input_size: int) -> tuple[int, int]:
    """(epochs, epochs at ``cfg.low_res_size`` first) of network ``name``.

    ``input_size`` is the side of the network's input in pixels.
    """
    epochs = cfg.epochs or DEFAULT_EPOCHS[name]
    fraction = cfg.low_res_fraction
    if fraction is None:
        fraction = DEFAULT_LOW_RES_FRACTION.get(name, 0.0)
    return epochs, (int(round(epochs * fraction)) if input_size > cfg.low_res_size else 0)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    # drop the last partial batch (BatchNorm1d)
    for start in range(0, n - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


def _loss_fn(name: str, net: nn.Module, head: nn.Module | None) -> Callable:
    if name == "FaceWorld-recognition":
        return lambda x, ids, attrs, epoch_frac: F.cross_entropy(net(x), ids)
    if name == "FaceWorld-attribute":
        return lambda x, ids, attrs, epoch_frac: sum(
            F.cross_entropy(o, attrs[:, j]) for j, o in enumerate(net(x))
        )
    if name == "FaceWorld-verification":
        return lambda x, ids, attrs, epoch_frac: F.cross_entropy(head(net(x), ids), ids)
    if name == "FaceWorld-evidential":
        return lambda x, ids, attrs, epoch_frac: edl_loss(
            net(x), ids, kl_weight=min(1.0, epoch_frac)
        )
    raise ValueError(f"no training recipe for {name!r}; expected one of {DEMO_NETWORKS}")


def render_pool(split: WorldSplit, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training pool: ``cfg.images_per_identity`` images of every training identity.

    The nuisances come from stream 0.
    """
    return split.render_images(split.identities(), cfg.images_per_identity, stream=0)


def render_attribute_pool(
    split: WorldSplit, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The attribute net's pool: as many images as :func:`render_pool`, spread over
    ``split.num_attribute_identities`` identities (nuisance stream 5)."""
    per = max(1, cfg.images_per_identity * split.num_identities // split.num_attribute_identities)
    return split.render_images(split.attribute_identities(), per, stream=5)


def train_network(
    name: str,
    split: WorldSplit,
    cfg: TrainConfig,
    pool: tuple[np.ndarray, np.ndarray, np.ndarray],
    log: Callable[[str], None] = print,
) -> nn.Module:
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
    overrides = (
        {}
        if name in ("FaceWorld-attribute", "FaceWorld-verification")
        else {"num_classes": classes}
    )
    # channels-last convolutions are about 1.3x faster on CPU; the weights are saved contiguous
    net = get_network(name, weights=False, **overrides).to(memory_format=torch.channels_last)
    head = None
    if name == "FaceWorld-verification":
        head = ArcFaceHead(net.embedding_size, classes, scale=cfg.arc_scale, margin=cfg.arc_margin)
    params = [p for p in net.parameters() if p.requires_grad] + (
        [] if head is None else list(head.parameters())
    )
    opt = torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )
    loss_fn = _loss_fn(name, net, head)
    images, ids, attrs = pool
    full_size, low_size = net.preprocess.input_size, (cfg.low_res_size, cfg.low_res_size)
    epochs, low_epochs = schedule(name, cfg, min(full_size))
    low = replace(net.preprocess, input_size=low_size) if low_epochs else net.preprocess
    x_all = low(images).contiguous(memory_format=torch.channels_last)
    if low_epochs:
        log(f"{name}: epochs 1-{low_epochs} at {low_size[0]} px, then {full_size[0]} px")
    ids_t, attrs_t = torch.from_numpy(ids), torch.from_numpy(attrs)
    steps_per_epoch = len(ids) // cfg.batch_size
    total = epochs * steps_per_epoch
    warmup = max(1, steps_per_epoch // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        ),
    )
    rng = np.random.default_rng([split.seed, 4])
    net.train()
    start = time.time()
    for epoch in range(epochs):
        if low_epochs and epoch == low_epochs:
            del x_all  # free the low-resolution copy first
            x_all = net.preprocess(images).contiguous(memory_format=torch.channels_last)
        running, count = 0.0, 0
        bar = tqdm(
            list(_batches(len(ids), cfg.batch_size, rng)),
            desc=f"{name} epoch {epoch + 1}/{epochs}",
            leave=False,
        )
        for b, idx in enumerate(bar):
            idx_t = torch.from_numpy(idx)
            x = x_all[idx_t].contiguous(memory_format=torch.channels_last)
            progress = (epoch + b / steps_per_epoch) / max(1, epochs // 2)
            loss = loss_fn(x, ids_t[idx_t], attrs_t[idx_t], progress)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss)
            count += 1
            bar.set_postfix(loss=f"{running / count:.3f}")
        log(
            f"{name}: epoch {epoch + 1}/{epochs} loss {running / max(count, 1):.4f} "
            f"({time.time() - start:.0f} s)"
        )
    return net.to(memory_format=torch.contiguous_format).eval()


@torch.inference_mode()
def _forward_all(net: nn.Module, images: np.ndarray, batch_size: int = 256):
    outs = []
    for start in range(0, len(images), batch_size):
        outs.append(net(net.preprocess(images[start : start + batch_size])))
    if isinstance(outs[0], (list, tuple)):
        return [torch.cat([o[j] for o in outs]) for j in range(len(outs[0]))]
    return torch.cat(outs)


def tar_at_far(labels: np.ndarray, scores: np.ndarray, far: float) -> float:
    """True accept rate at the largest ROC point whose false accept rate is <= ``far``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    ok = fpr <= far + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def evaluate(
    nets: dict[str, nn.Module],
    split: WorldSplit,
    heldout_per_identity: int = 4,
    verification_per_identity: int = 6,
    tuning: bool = False,
) -> dict:
    """Held-out metrics of the demo networks (see the README table).

    ``tuning=True`` measures the same quantities on the tuning images instead
    (nuisance streams 1500 / 2500, identity family 13; see the module docstring):
    what design choices may look at.

    * identification top-1 of the recognition net, and attribute accuracy per
      head, on fresh images of the training identities (nuisance stream 1000,
      never used in training); attribute accuracy also on the held-out
      identities (never seen in training);
    * verification ROC AUC and TAR at FAR 1e-2 of the verification net over
      all image pairs of the held-out identities (cosine similarity);
    * identification top-1 of the evidential net and its mean uncertainty.
    """
    unseen = split.tuning_identities() if tuning else split.heldout_identities()
    images, ids, attrs = split.render_images(
        split.identities(), heldout_per_identity, stream=1500 if tuning else 1000
    )
    v_images, v_ids, v_attrs = split.render_images(
        unseen, verification_per_identity, stream=2500 if tuning else 2000
    )
    metrics: dict = {
        "split": asdict(split),
        "evaluation_set": "tuning" if tuning else "held-out",
        "heldout_images": int(len(ids)),
        "heldout_identity_images": int(len(v_ids)),
    }
    if "FaceWorld-recognition" in nets:
        logits = _forward_all(nets["FaceWorld-recognition"], images)
        metrics["identification_top1"] = float((logits.argmax(1).numpy() == ids).mean())
    if "FaceWorld-attribute" in nets:
        outs = _forward_all(nets["FaceWorld-attribute"], images)
        per_head = {
            ATTRIBUTES[j]: float((o.argmax(1).numpy() == attrs[:, j]).mean())
            for j, o in enumerate(outs)
        }
        metrics["attribute_accuracy"] = per_head
        metrics["attribute_mean_accuracy"] = float(np.mean(list(per_head.values())))
        metrics["attribute_min_accuracy"] = float(min(per_head.values()))
        # identity-level attributes of training identities can be learnt through the identity:
        # also measure on identities never seen in training
        outs = _forward_all(nets["FaceWorld-attribute"], v_images)
        unseen = {
            ATTRIBUTES[j]: float((o.argmax(1).numpy() == v_attrs[:, j]).mean())
            for j, o in enumerate(outs)
        }
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
        metrics["verification_pairs"] = {
            "genuine": int(labels.sum()),
            "impostor": int((1 - labels).sum()),
        }
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
        lines.append(
            f"identification top-1 (held-out images, {metrics['heldout_images']}): "
            f"{metrics['identification_top1']:.4f}"
        )
    if "attribute_mean_accuracy" in metrics:
        lines.append(
            f"attribute accuracy: mean {metrics['attribute_mean_accuracy']:.4f}, "
            f"min {metrics['attribute_min_accuracy']:.4f} "
            "(held-out images of training identities); "
            f"mean {metrics['attribute_mean_accuracy_unseen_identities']:.4f}, "
            f"min {metrics['attribute_min_accuracy_unseen_identities']:.4f} (unseen identities, "
            f"{metrics['heldout_identity_images']} images)"
        )
        lines.append(f"    {'head':<24s} {'seen ids':>8s} {'unseen ids':>10s}")
        for name, acc in metrics["attribute_accuracy"].items():
            unseen = metrics["attribute_accuracy_unseen_identities"][name]
            lines.append(f"    {name:<24s} {acc:8.4f} {unseen:10.4f}")
    if "verification_auc" in metrics:
        p = metrics["verification_pairs"]
        lines.append(
            f"verification (held-out identities, {p['genuine']} genuine / "
            f"{p['impostor']} impostor pairs): "
            f"AUC {metrics['verification_auc']:.4f}, "
            f"TAR@FAR=1e-2 {metrics['verification_tar_at_far_1e-2']:.4f}, "
            f"TAR@FAR=1e-3 {metrics['verification_tar_at_far_1e-3']:.4f}"
        )
    if "evidential_top1" in metrics:
        lines.append(f"evidential net identification top-1: {metrics['evidential_top1']:.4f}")
    return "\n".join(lines)


def load_config(path: Path) -> dict:
    """Read a JSON training config (safe parser)."""
    from utils.base.safejson import load_json_file

    return load_json_file(path)


PAIR_FAMILY = 12  # identity family of the demo pairs' candidates: used by nothing else
EXPRESSION_HEADS = (25, 26)  # Mouth Closed, Smiling: per image, not per identity
IDENTITY_HEADS = tuple(j for j in range(len(ATTRIBUTES)) if j not in EXPRESSION_HEADS)


def nuisance_distance(a: Nuisance, b: Nuisance) -> float:
    """How far apart two images' pose and light are: five terms, each scaled by its range to [0, 1].

    Pose: |rotation difference| / 16 degrees, shift difference (Euclidean) / 8 sqrt(2) units,
    |log scale ratio| / log(1.07 / 0.93). Light: |gain difference| / 0.33, and the difference of
    the light ramps (strength times the unit vector of its direction, Euclidean) / 0.6. Ranges:
    ``sample_nuisance``.
    """
    ramp = (
        np.array([np.cos(a.light_angle), np.sin(a.light_angle)]) * a.light_strength
        - np.array([np.cos(b.light_angle), np.sin(b.light_angle)]) * b.light_strength
    )
    return float(
        abs(a.rotation - b.rotation) / 16.0
        + np.hypot(a.shift[0] - b.shift[0], a.shift[1] - b.shift[1]) / (8 * np.sqrt(2))
        + abs(np.log(a.scale / b.scale)) / np.log(1.07 / 0.93)
        + abs(a.gain - b.gain) / 0.33
        + np.linalg.norm(ramp) / 0.6
    )


def most_similar_pairs(labels: np.ndarray, num: int) -> list[tuple[int, int, int]]:
    """Impostor pairs of identities that share the most identity-level attribute classes.

    All unordered pairs (i < j) are ranked by the number of equal classes over
    :data:`IDENTITY_HEADS` (28 heads), most first, ties by (i, j); pairs are taken greedily in that
    order, each identity at most once. Args: labels (M, 30) one row per identity. Returns (i, j,
    shared) triples.
    """
    lab = labels[:, IDENTITY_HEADS]
    shared = (lab[:, None, :] == lab[None, :, :]).sum(-1)
    i, j = np.triu_indices(len(lab), k=1)
    order = np.lexsort((j, i, -shared[i, j]))
    used: set[int] = set()
    out = []
    for k in order:
        a, b = int(i[k]), int(j[k])
        if a in used or b in used:
            continue
        used.update((a, b))
        out.append((a, b, int(shared[a, b])))
        if len(out) == num:
            break
    if len(out) < num:
        raise ValueError(
            f"only {len(out)} disjoint impostor pairs among {len(lab)} candidates, {num} asked"
        )
    return out


def farthest_nuisances(nuisances: list[Nuisance]) -> tuple[int, int, float]:
    """The images k1 < k2 whose pose and light differ most (:func:`nuisance_distance`)."""
    best = (0, 1, -1.0)
    for a in range(len(nuisances)):
        for b in range(a + 1, len(nuisances)):
            d = nuisance_distance(nuisances[a], nuisances[b])
            if d > best[2]:
                best = (a, b, d)
    return best


def write_demo_data(
    out_dir: Path,
    split: WorldSplit,
    num_genuine: int = 20,
    num_impostor: int = 20,
    num_identification: int = 50,
    num_candidates: int = 200,
    genuine_draws: int = 8,
    family: int = PAIR_FAMILY,
) -> dict:
    """Write the embedded-default data: hard verification pairs and an identification list.

    The pairs are made hard by a fixed rule, decided before and independently of any explanation:

    * candidates: ``num_candidates`` identities of identity family ``family`` (12: never used in
      training, tuning or any reported metric), one image each (nuisance stream
      100 * family + 2, k = 0: 1202);
    * impostor pairs: the ``num_impostor`` disjoint pairs of candidates sharing the most
      identity-level attribute classes (:func:`most_similar_pairs`), compared on those images;
    * genuine pairs: the next ``num_genuine`` candidates not in an impostor pair (index order);
      for each, ``genuine_draws`` images (stream 100 * family + 1: 1201) and the two whose pose
      and light differ most (:func:`farthest_nuisances`).

    Written under ``out_dir``:

    * ``pairs.txt``: ``path1 path2 label`` lines, mates (1) and non-mates (0) interleaved;
      images under ``verification/<candidate>/<stream>-<k>.png``;
    * ``pairs.json``: the rule's settings and, per pair, the shared attributes or the pose/light
      distance;
    * ``identification.txt``: ``path label`` lines, one image (nuisance stream 3000, not used in
      training or evaluation) of each of the first ``num_identification`` *training* identities,
      label = their class id in the recognition and evidential nets; images under
      ``identification/<class>/0.png``;
    * ``attributes.json``: the ground-truth attribute labels of every image.

    Deterministic given the split's seed. Returns the counts.
    """
    from utils.base.atomic import atomic_write_image, atomic_write_json, atomic_write_text

    truth: dict[str, list[int]] = {}

    def save(sample, rel: str) -> str:
        atomic_write_image(out_dir / rel, sample.image)
        truth[rel] = sample.labels.tolist()
        return rel

    candidates = split.family_identities(family, num_candidates)
    genuine_stream, impostor_stream = 100 * family + 1, 100 * family + 2  # per family: own images
    firsts = [
        render(ident, split.nuisance(impostor_stream, c, 0), size=split.size, with_masks=False)
        for c, ident in enumerate(candidates)
    ]
    impostor = most_similar_pairs(np.stack([s.labels for s in firsts]), num_impostor)
    used = {c for a, b, _ in impostor for c in (a, b)}
    genuine_ids = [c for c in range(num_candidates) if c not in used][:num_genuine]
    if len(genuine_ids) < num_genuine:
        raise ValueError(
            f"{num_candidates} candidates leave {len(genuine_ids)} for {num_genuine} genuine pairs"
        )
    rule = (
        "impostor: disjoint candidate pairs sharing the most identity-level attribute classes; "
        "genuine: the two of several images of one candidate whose pose and light differ most"
    )
    info: dict = {
        "rule": rule,
        "identity_family": family,
        "num_candidates": num_candidates,
        "genuine_draws": genuine_draws,
        "genuine": [],
        "impostor": [],
    }
    genuine_lines, impostor_lines = [], []
    for c in genuine_ids:
        nuisances = [split.nuisance(genuine_stream, c, k) for k in range(genuine_draws)]
        k1, k2, dist = farthest_nuisances(nuisances)
        paths = [
            save(
                render(candidates[c], nuisances[k], size=split.size, with_masks=False),
                f"verification/{c:03d}/{genuine_stream}-{k}.png",
            )
            for k in (k1, k2)
        ]
        genuine_lines.append(f"{paths[0]} {paths[1]} 1")
        info["genuine"].append({"pair": paths, "pose_light_distance": round(dist, 4)})
    for a, b, shared in impostor:
        paths = [save(firsts[c], f"verification/{c:03d}/{impostor_stream}-0.png") for c in (a, b)]
        impostor_lines.append(f"{paths[0]} {paths[1]} 0")
        info["impostor"].append(
            {"pair": paths, "shared_identity_attributes": shared, "of": len(IDENTITY_HEADS)}
        )
    lines = [line for g, m in zip(genuine_lines, impostor_lines, strict=False) for line in (g, m)]
    lines += genuine_lines[len(impostor_lines) :] + impostor_lines[len(genuine_lines) :]
    header = (
        "# Face-world demo pairs: hard pairs of identities never used in training "
        "(rule in pairs.json).\n# Written by: python make_face_world_data.py\n"
    )
    atomic_write_text(out_dir / "pairs.txt", header + "\n".join(lines) + "\n")
    atomic_write_json(out_dir / "pairs.json", info)

    train_ids = split.identities()[:num_identification]
    id_lines = []
    for i, sample in enumerate(split.render_samples(train_ids, 1, stream=3000)):
        id_lines.append(f"{save(sample, f'identification/{i:03d}/0.png')} {i}")
    header = (
        "# Face-world identification list: path, class id of FaceWorld-recognition/-evidential.\n"
    )
    atomic_write_text(out_dir / "identification.txt", header + "\n".join(id_lines) + "\n")
    atomic_write_json(
        out_dir / "attributes.json", {"attributes": list(ATTRIBUTES), "labels": truth}, indent=None
    )
    return {"pairs": len(lines), "identification": len(id_lines), "images": len(truth)}


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
    out["identification_top1"] = float(
        (_forward_all(nets["FaceWorld-recognition"], images).argmax(1).numpy() == ids).mean()
    )
    heads = _forward_all(nets["FaceWorld-attribute"], images)
    out["attribute_mean_accuracy"] = float(
        np.mean([(o.argmax(1).numpy() == attrs[:, j]).mean() for j, o in enumerate(heads)])
    )
    out["evidential_top1"] = float(
        (_forward_all(nets["FaceWorld-evidential"], images).argmax(1).numpy() == ids).mean()
    )
    emb = F.normalize(_forward_all(nets["FaceWorld-verification"], v_images), dim=1)
    iu = np.triu_indices(len(v_ids), k=1)
    out["verification_auc"] = float(
        roc_auc_score((v_ids[iu[0]] == v_ids[iu[1]]).astype(int), (emb @ emb.T).numpy()[iu])
    )
    return out
