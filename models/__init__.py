"""Face networks used by Sim2Word: architectures, a registry and safe loaders.

Importing the package registers every network (docs/ARCHITECTURE.md,
"Registered names"); build one with :func:`get_network`.

Example:
    >>> import numpy as np
    >>> from models import get_network
    >>> net = get_network("FaceWorld-attribute", weights=False)
    >>> len(net(net.preprocess([np.zeros((60, 50, 3), np.uint8)])))
    30
"""
from models.preprocess import Preprocess
from models.registry import get_network, list_networks, register_network, resolve_layer

# Importing the architecture modules registers their networks.
from models import attribute_net, iresnet, resnet_vggface2  # noqa: E402,F401  isort: skip

__all__ = ["Preprocess", "get_network", "list_networks", "register_network", "resolve_layer"]
