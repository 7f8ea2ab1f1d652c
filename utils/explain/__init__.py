"""The method: Grad-CAM engine, counterfactual maps, erasing, verification, per-pair figures.

Imports ``models``, ``utils.base`` and ``utils.faces``; never ``utils.run`` or
``utils.experiments``.
"""
