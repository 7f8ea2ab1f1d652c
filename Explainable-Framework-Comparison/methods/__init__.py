"""Explanation methods compared with Sim2Word (METHOD.md section 7), one small class each.

Example:
    >>> from methods import ComparisonNets, create_method, list_methods
    >>> m = create_method("GradCAM-sim")
    >>> sal = m.explain(probe, mate, nonmate, ComparisonNets(verification=V))  # (H, W) in [0, 1]
"""

from . import generic, sim2word, xcos, xfr  # noqa: F401  (registration)
from .base import ComparisonNets, CosineTarget, Explainer, Explanation, finish_map
from .registry import create_method, list_methods, register_method

__all__ = [
    "ComparisonNets",
    "CosineTarget",
    "Explainer",
    "Explanation",
    "create_method",
    "finish_map",
    "list_methods",
    "register_method",
]
