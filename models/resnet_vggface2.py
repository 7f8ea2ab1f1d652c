"""VGGFace2 ResNet-50 and SE-ResNet-50, as converted from Caffe.

Same module names and layout as cydonia999/VGGFace2-pytorch (``resnet.py``,
``senet.py``), so the ``resnet50_*_weight.pkl`` / ``senet50_*_weight.pkl``
files load strictly (manifests in ``../shared/checkpoints/``). Caffe details
that differ from torchvision's ResNet:

* the stride of a bottleneck sits in its 1x1 ``conv1`` (not the 3x3);
* the stem max-pool is 3x3 / stride 2 / padding 0 with ``ceil_mode=True``
  (224 -> 112 -> 56);
* SE blocks (``senet50``) are 1x1 convolutions with bias, ``conv4`` (squeeze,
  reduction 16) and ``conv5`` (excite), applied to the globally averaged
  ``bn3`` output and multiplied in before the residual addition.

The final pooling is adaptive: at 224x224 input the last map is 7x7 and this
equals Caffe's ``AvgPool2d(7, stride=1)``; smaller variants (e.g. 112x112)
work as well. Input: 224x224 BGR, VGGFace2 mean subtracted
(:func:`models.preprocess.vggface2_preprocess`).

Parametrisation: ``layers`` (blocks per stage), ``width`` (stem / first-stage
width, 64 for the paper; stage widths are width * (1, 2, 4, 8), outputs x4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.preprocess import vggface2_preprocess
from models.registry import check_stages, create_from_defaults, last_conv_name, register_network

RESNET50_LAYERS = (3, 4, 6, 3)
VGGFACE2_CLASSES = 8631


class Bottleneck(nn.Module):
    """Caffe bottleneck: 1x1 (stride) -> 3x3 -> 1x1 (x4), optional SE gate.

    Shapes: (N, inplanes, H, W) -> (N, 4 * planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, se: bool = False) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )
            self.downsample[0].cam_excluded = True  # shortcut, not the main path
        self.se = se
        if se:
            self.conv4 = nn.Conv2d(out, out // 16, 1, bias=True)  # squeeze (reduction 16)
            self.conv5 = nn.Conv2d(out // 16, out, 1, bias=True)  # excite
            self.conv4.cam_excluded = True  # gates on a 1x1 map: not a Grad-CAM layer
            self.conv5.cam_excluded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se:
            gate = out.mean(dim=(2, 3), keepdim=True)
            gate = torch.sigmoid(self.conv5(self.relu(self.conv4(gate))))
            out = out * gate
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class VGGFace2ResNet(nn.Module):
    """Caffe-converted VGGFace2 (SE-)ResNet, paper size = ResNet-50.

    Args:
        layers: bottleneck blocks per stage, (3, 4, 6, 3) for ResNet-50.
        width: stem width; stage widths are width * (1, 2, 4, 8).
        num_classes: identities of the classifier head ``fc``.
        se: squeeze-excitation blocks (SE-ResNet-50).
        include_top: keep ``fc`` and return logits; otherwise no ``fc`` and the
            forward returns the pooled feature (an embedding).
        input_size: (H, W) of the input (only sets ``preprocess``; pooling is adaptive).
        stem_pool: keep the stem max-pool (the paper's model, and the face-world
            demo trunk).
        strides: stride of each stage, (1, 2, 2, 2) for the paper; the face-world
            demo trunk uses (1, 2, 1, 1) so that its last map is 16x16.

    Forward: (N, 3, H, W) -> (N, num_classes) logits, or (N, 32 * width) features
    without the top (2048 for the paper size).
    """

    def __init__(
        self,
        layers: Sequence[int] = RESNET50_LAYERS,
        width: int = 64,
        num_classes: int = VGGFACE2_CLASSES,
        se: bool = False,
        include_top: bool = True,
        input_size: int | Sequence[int] = 224,
        stem_pool: bool = True,
        strides: Sequence[int] = (1, 2, 2, 2),
    ) -> None:
        super().__init__()
        check_stages(layers, strides)
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = (
            nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True) if stem_pool else nn.Identity()
        )
        inplanes = width
        for i, (blocks, stride) in enumerate(zip(layers, strides, strict=True), start=1):
            planes = width * 2 ** (i - 1)
            stage = [Bottleneck(inplanes, planes, stride, se)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes, 1, se) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # == Caffe AvgPool2d(7) on the 7x7 map at 224 input
        self.feature_size = inplanes
        self.fc = nn.Linear(inplanes, num_classes) if include_top else None
        _init_weights(self)
        self.kind = "classifier" if include_top else "embedding"
        if include_top:
            self.num_classes = num_classes
        else:
            self.embedding_size = inplanes
        self.preprocess = vggface2_preprocess(input_size)
        self.target_layer = last_conv_name(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> pooled feature (N, 32 * width)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.forward_features(x)
        return feat if self.fc is None else self.fc(feat)


def _init_weights(net: nn.Module) -> None:
    """He init for convolutions, BN to identity (training the small variants)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


_VGGFACE2_WEIGHTS = "resnet50_ft_weight.pkl"

# The face-world demo trunk: one block per stage, width 16, 128x128 input (the
# 112 px face-world images are enlarged, never shrunk, so thin parts such as the
# mouth opening keep their pixels), the paper's stem (7x7 conv / 2, max-pool / 2:
# 128 -> 32) and strides (1, 2, 1, 1) after it, so the last stage and the
# Grad-CAM layer (layer4.0.conv3) are 16x16: one map cell is 8 input pixels, as
# fine as a 4-pixel cell at 64 px, at about 3.3x the multiply-adds of the former
# 64 px / 8x8 trunk (141 M per image, of which layer4 at 16x16 is 97 M). Small
# enough that the four demo networks train on two CPU cores in about an hour.
FACE_WORLD_TRUNK = {
    "layers": (1, 1, 1, 1),
    "width": 16,
    "input_size": 128,
    "stem_pool": True,
    "strides": (1, 2, 1, 1),
}


@register_network("VGGFace2", weights=_VGGFACE2_WEIGHTS, alignment="vggface2-224")
def vggface2(**overrides) -> VGGFace2ResNet:
    """VGGFace2 ResNet-50 identity classifier (8631 classes)."""
    return create_from_defaults(VGGFace2ResNet, {}, overrides)


@register_network("VGGFace2-Se", weights="senet50_ft_weight.pkl", alignment="vggface2-224")
def vggface2_se(**overrides) -> VGGFace2ResNet:
    """VGGFace2 SE-ResNet-50 identity classifier (8631 classes)."""
    return create_from_defaults(VGGFace2ResNet, {"se": True}, overrides)


@register_network("VGGFace2-verification", weights=_VGGFACE2_WEIGHTS, alignment="vggface2-224")
def vggface2_verification(**overrides) -> VGGFace2ResNet:
    """VGGFace2 ResNet-50 whose 2048-d pooled feature is the embedding.

    Loads the classifier ``.pkl``; its ``fc.*`` tensors are dropped
    (``ignored_checkpoint_prefixes``).
    """
    net = create_from_defaults(VGGFace2ResNet, {"include_top": False}, overrides)
    net.ignored_checkpoint_prefixes = ("fc.",)
    return net


@register_network("FaceWorld-recognition", weights="face_world/FaceWorld-recognition.pth")
def faceworld_recognition(**overrides) -> VGGFace2ResNet:
    """Small VGGFace2-style ResNet identity classifier for the face-world demo."""
    return create_from_defaults(VGGFace2ResNet, {**FACE_WORLD_TRUNK, "num_classes": 200}, overrides)
