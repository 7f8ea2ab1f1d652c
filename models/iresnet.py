"""insightface iresnet family (arcface_torch ``backbones/iresnet.py``) and two classifiers.

Module names follow arcface_torch so that ``backbone.pth`` files (ArcFace
MS1MV3, CosFace Glint360K) load strictly. The block is ``IBasicBlock``:
BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (stride) -> BN, plus the (1x1 conv
+ BN) shortcut, no activation after the addition. After ``layer4``: BN
(``bn2``), flatten, dropout, ``fc`` to the embedding, ``features``
(BatchNorm1d). Input 112x112 RGB, (x - 127.5) / 127.5.

Parametrisation: ``layers`` (blocks per stage; 18/34/50/100/200 below),
``width`` (64 for the paper; stage widths width * (1, 2, 4, 8)),
``embedding_size`` (512), ``input_size``, ``strides`` (of the first block of
each stage, (2, 2, 2, 2) as arcface_torch); ``fc`` takes
8 * width * ceil(H / 16) * ceil(W / 16) inputs with the default strides (25088
at the paper size), in general 8 * width * h * w with h x w the last map.

Classifiers built on the same trunk (keys of the trunk unchanged):

* :class:`IResNetArcFace` (``VGGFace2-ArcFace``): an extra ``weight``
  (num_classes, embedding_size) ArcFace class-centre matrix. Logits are the
  cosines between the L2-normalised embedding and the L2-normalised rows of
  ``weight``, multiplied by ``logit_scale`` (default 1, so logits are raw
  cosines in [-1, 1]; the ArcFace margin is a training-time term and is not
  applied at inference).
* :class:`IResNetEvidential` (``VGGFace2-evidential``): ``fc2`` =
  Linear(embedding_size, num_classes) on the ``features`` output; the logits
  become evidence in ``utils`` (ReLU(logits) * scale, METHOD.md section 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.preprocess import _as_size, iresnet_preprocess
from models.registry import check_stages, create_from_defaults, last_conv_name, register_network

IRESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
VGGFACE2_CLASSES = 8631


class IBasicBlock(nn.Module):
    """arcface_torch IBasicBlock. (N, inplanes, H, W) -> (N, planes, ceil(H/s), ceil(W/s))."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=1e-5),
            )
            self.downsample[0].cam_excluded = True  # shortcut, not the main path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """insightface iresnet embedding network.

    Args:
        layers: IBasicBlocks per stage, e.g. (3, 4, 14, 3) for iresnet50.
        width: stem / first-stage width (64); stages width * (1, 2, 4, 8).
        embedding_size: output dimension (512).
        input_size: (H, W) of the input, fixes the ``fc`` input size.
        dropout: dropout before ``fc`` (arcface_torch default 0).
        strides: stride of the first block of each stage (its second 3x3 conv and
            shortcut), (2, 2, 2, 2) for arcface_torch; 1 keeps the resolution.

    Forward: (N, 3, H, W) -> (N, embedding_size) raw (un-normalised) embedding.
    """

    kind = "embedding"

    def __init__(
        self,
        layers: Sequence[int] = IRESNET_LAYERS[50],
        width: int = 64,
        embedding_size: int = 512,
        input_size: int | Sequence[int] = 112,
        dropout: float = 0.0,
        strides: Sequence[int] = (2, 2, 2, 2),
    ) -> None:
        super().__init__()
        check_stages(layers, strides)
        h, w = _as_size(input_size)
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-5)
        self.prelu = nn.PReLU(width)
        inplanes = width
        for i, (blocks, stride) in enumerate(zip(layers, strides, strict=True), start=1):
            planes = width * 2 ** (i - 1)
            stage = [IBasicBlock(inplanes, planes, stride)]
            stage += [IBasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            inplanes = planes
            if stride == 2:
                h, w = (h + 1) // 2, (w + 1) // 2  # 3x3 conv, stride 2, padding 1
        self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(inplanes * h * w, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)
        for m in self.modules():  # arcface_torch initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad = False  # as arcface_torch: the BN1d scale is frozen
        self.embedding_size = embedding_size
        self.preprocess = iresnet_preprocess(input_size)
        self.target_layer = last_conv_name(self)

    def forward_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, embedding_size) raw embedding."""
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_embedding(x)


class IResNetArcFace(IResNet):
    """iresnet + ArcFace class centres ``weight``; logits = scale * cos(embedding, centre).

    Forward: (N, 3, H, W) -> (N, num_classes) in [-logit_scale, logit_scale].
    """

    kind = "classifier"

    def __init__(
        self, num_classes: int = VGGFACE2_CLASSES, logit_scale: float = 1.0, **trunk
    ) -> None:
        super().__init__(**trunk)
        self.weight = nn.Parameter(torch.empty(num_classes, self.embedding_size))
        nn.init.normal_(self.weight, 0, 0.01)
        self.num_classes = num_classes
        self.logit_scale = float(logit_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = F.normalize(self.forward_embedding(x), dim=1)
        return self.logit_scale * F.linear(emb, F.normalize(self.weight, dim=1))


class IResNetEvidential(IResNet):
    """iresnet + ``fc2`` = Linear(embedding_size, num_classes): evidential identity logits.

    Forward: (N, 3, H, W) -> (N, num_classes) logits (evidence = ReLU(logits) * scale in utils).
    """

    kind = "evidential"

    def __init__(self, num_classes: int = VGGFACE2_CLASSES, **trunk) -> None:
        super().__init__(**trunk)
        self.fc2 = nn.Linear(self.embedding_size, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.forward_embedding(x))


def _register_iresnet(name: str, depth: int, weights: str) -> None:
    """iresnet``depth`` embedding net, input aligned to the ArcFace 112 template."""

    def entry(**overrides) -> IResNet:
        return create_from_defaults(IResNet, {"layers": IRESNET_LAYERS[depth]}, overrides)

    entry.__name__ = entry.__qualname__ = name.replace("-", "_").lower()
    entry.__doc__ = f"insightface iresnet{depth} embedding network (512-d)."
    register_network(name, weights=weights, alignment="arcface-112")(entry)


for _depth in IRESNET_LAYERS:
    _register_iresnet(f"iresnet{_depth}", _depth, f"iresnet{_depth}/backbone.pth")
for _depth in (50, 100):
    _register_iresnet(f"ArcFace-r{_depth}", _depth, f"ms1mv3_arcface_r{_depth}_fp16/backbone.pth")
    _register_iresnet(
        f"CosFace-r{_depth}", _depth, f"glint360k_cosface_r{_depth}_fp16_0.1/backbone.pth"
    )


@register_network(
    "VGGFace2-ArcFace", weights="vggface2_arcface_iresnet50.pth", alignment="arcface-112"
)
def vggface2_arcface(**overrides) -> IResNetArcFace:
    """iresnet50 ArcFace identity classifier on VGGFace2 (recognition net of Section 4)."""
    return create_from_defaults(IResNetArcFace, {"layers": IRESNET_LAYERS[50]}, overrides)


@register_network(
    "VGGFace2-evidential", weights="vggface2_evidential_iresnet50.pth", alignment="arcface-112"
)
def vggface2_evidential(**overrides) -> IResNetEvidential:
    """iresnet50 evidential (EDL) identity classifier on VGGFace2."""
    return create_from_defaults(IResNetEvidential, {"layers": IRESNET_LAYERS[50]}, overrides)


# Face-world demo iresnets: one block per stage, width 16, 128-d, 64x64 input
# (the 112 px images are shrunk with Pillow's antialiased bilinear). The
# verification net keeps its last stage at stride 1, so its last feature grid
# (Grad-CAM layer layer4.0.conv2, ``bn2``: the grid of xCos and xFR) is 8x8, not
# 4x4; its ``fc`` then takes 128 * 8 * 8 inputs (1.05 M weights, 4 MB). A 16x16
# grid would need a 16 MB ``fc``. The evidential net only gives the uncertainty
# u (its maps are never used; Grad-CAM in Section 4 comes from the recognition
# net), so it keeps the plain 4x4 trunk (fc 128 * 4 * 4 -> 128).
_SMALL = {"layers": (1, 1, 1, 1), "width": 16, "embedding_size": 128, "input_size": 64}
_SMALL_VERIFICATION = {**_SMALL, "strides": (2, 2, 2, 1)}


@register_network("FaceWorld-verification", weights="face_world/FaceWorld-verification.pth")
def faceworld_verification(**overrides) -> IResNet:
    """Small iresnet embedding net (ArcFace loss) for the face-world demo."""
    return create_from_defaults(IResNet, _SMALL_VERIFICATION, overrides)


@register_network("FaceWorld-evidential", weights="face_world/FaceWorld-evidential.pth")
def faceworld_evidential(**overrides) -> IResNetEvidential:
    """Small iresnet evidential classifier (200 identities) for the face-world demo."""
    return create_from_defaults(IResNetEvidential, {**_SMALL, "num_classes": 200}, overrides)
