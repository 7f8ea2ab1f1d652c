"""Face networks used by Sim2Word: architectures, a registry and safe loaders.

The public names are imported lazily (PEP 562), so ``models.attributes`` (the
vocabulary, used by the analysis scripts) loads without torch; the networks
register on the first :func:`get_network` / :func:`list_networks` call
(docs/ARCHITECTURE.md, "Registered names").

Example:
    >>> import numpy as np
    >>> from models import get_network
    >>> net = get_network("FaceWorld-attribute", weights=False)
    >>> len(net(net.preprocess([np.zeros((60, 50, 3), np.uint8)])))
    30
"""

import importlib

_EXPORTS = {
    "Preprocess": "models.preprocess",
    "get_network": "models.registry",
    "list_networks": "models.registry",
    "register_network": "models.registry",
    "resolve_layer": "models.registry",
}

__all__ = [  # the names of _EXPORTS, spelled out for static tools
    "Preprocess",
    "get_network",
    "list_networks",
    "register_network",
    "resolve_layer",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
