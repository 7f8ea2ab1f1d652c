"""Multi-task attribute net: VGGFace2-style ResNet trunk + one linear head per attribute.

Forward: (N, 3, H, W) -> list of 30 logit tensors, head ``j`` of shape
(N, HEAD_SIZES[j]) in the order of :data:`models.attributes.ATTRIBUTES`
(2, 3, 3, then binary heads, 5 for Hair color). Input: the VGGFace2
preprocessing (224x224 BGR, mean subtracted) at the paper size.

State-dict format (ours; no public checkpoint exists):

* ``backbone.<name>``: a :class:`models.resnet_vggface2.VGGFace2ResNet`
  without its ``fc`` (``include_top=False``), i.e. exactly the VGGFace2
  ``.pkl`` names minus ``fc.*`` with the prefix ``backbone.``, plus
  ``num_batches_tracked`` entries;
* ``heads.<j>.weight`` (HEAD_SIZES[j], 32 * width) and ``heads.<j>.bias``
  (HEAD_SIZES[j],) for j = 0..29 (2048 inputs at the paper size).

Save it with ``torch.save(net.state_dict(), path)``; ``get_network`` loads it
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.attributes import CELEBA30, HEAD_SIZES
from models.registry import create_from_defaults, last_conv_name, register_network
from models.resnet_vggface2 import FACE_WORLD_TRUNK, RESNET50_LAYERS, VGGFace2ResNet


class AttributeNet(nn.Module):
    """Multi-task ResNet attribute classifier.

    Args:
        layers: bottleneck blocks per stage of the trunk, (3, 4, 6, 3) = ResNet-50.
        width: trunk stem width (64).
        head_sizes: classes per head (default :data:`models.attributes.HEAD_SIZES`).
        input_size: (H, W) of the input (sets ``preprocess``).
        se: SE-ResNet trunk.

    ``vocabulary`` is the paper's 30-attribute :data:`models.attributes.CELEBA30`.
    """

    kind = "attribute"
    vocabulary = CELEBA30

    def __init__(
        self,
        layers: Sequence[int] = RESNET50_LAYERS,
        width: int = 64,
        head_sizes: Sequence[int] = HEAD_SIZES,
        input_size: int | Sequence[int] = 224,
        se: bool = False,
        stem_pool: bool = True,
        strides: Sequence[int] = (1, 2, 2, 2),
    ) -> None:
        super().__init__()
        if not head_sizes or min(head_sizes) < 2:
            raise ValueError(
                f"head_sizes must be a non-empty list of ints >= 2, got {tuple(head_sizes)}"
            )
        self.backbone = VGGFace2ResNet(
            layers,
            width,
            se=se,
            include_top=False,
            input_size=input_size,
            stem_pool=stem_pool,
            strides=strides,
        )
        feat = self.backbone.feature_size
        self.heads = nn.ModuleList(nn.Linear(feat, int(n)) for n in head_sizes)
        self.head_sizes = tuple(int(n) for n in head_sizes)
        self.preprocess = self.backbone.preprocess
        self.target_layer = last_conv_name(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feat = self.backbone.forward_features(x)
        return [head(feat) for head in self.heads]


@register_network("attribute-net", weights="attribute_net_resnet50.pth", alignment="vggface2-224")
def attribute_net(**overrides) -> AttributeNet:
    """Paper-size attribute net: ResNet-50 trunk, 30 heads, 224x224 input."""
    return create_from_defaults(AttributeNet, {}, overrides)


@register_network("FaceWorld-attribute", weights="face_world/FaceWorld-attribute.pth")
def faceworld_attribute(**overrides) -> AttributeNet:
    """Small attribute net for the face-world demo (trunk: ``FACE_WORLD_TRUNK``)."""
    return create_from_defaults(AttributeNet, dict(FACE_WORLD_TRUNK), overrides)
