"""Sim2Word maps for the comparison (METHOD.md section 3), through
:func:`utils.explain.sim2word.explain_pair`.

The probe is explained against its counter image (the non-mate; the mate if
no non-mate is given), direction "I1 against I2":

* ``Sim2Word-top1``: the joint map J[j*] of the top-1 word j* = the present
  attribute whose erasing makes the probe most similar to the counter image
  (largest cos(V(E1j), V(I2)), step 8).
* ``Sim2Word-union``: max over the present attributes of J[j]. Its level set
  at theta (``thresh``) is exactly the union of the regions Sim2Word erases;
  the max keeps a ranking inside and outside that union.

``info["word"]`` is the top-1 word (shown under each column of the figure).
"""

from __future__ import annotations

import numpy as np

from utils.explain.sim2word import PAPER_THETA, Sim2WordConfig, Sim2WordNets, explain_pair

from .base import ComparisonNets, Explainer
from .registry import register_method


class _Sim2Word(Explainer):
    needs = ()
    nets_needed = ("verification", "recognition", "attribute")

    def __init__(
        self,
        thresh: float = PAPER_THETA,
        heatmap_method: str = "GradCAM",
        erasing_method: str = "black",
        topk: int = 1,
    ) -> None:
        self.config = Sim2WordConfig(
            strategy="topk",
            topk=int(topk),
            thresh=float(thresh),
            heatmap_method=heatmap_method,
            erasing_method=erasing_method,
        )

    def _direction(self, probe, mate, nonmate, nets: ComparisonNets):
        counter = nonmate if nonmate is not None else mate
        if counter is None:
            raise ValueError(
                f"method {self.name!r} needs a non-mate (or mate) image to explain the probe "
                "against"
            )
        s2w = Sim2WordNets(nets.recognition, nets.attribute, nets.verification)
        ex = explain_pair(probe, counter, s2w, self.config)
        d = ex.directions[0]
        vocab = s2w.vocabulary
        present = np.array([vocab.is_present(j, int(c)) for j, c in enumerate(d.attr_class)])
        if not present.any():
            raise ValueError("no attribute is present in the probe; Sim2Word has no word to report")
        order = [j for j in np.argsort(-d.sim_other, kind="stable") if present[j]]
        top = int(order[0])
        info = {
            "word": vocab.word_for(top, int(d.attr_class[top])),
            "attribute": top,
            "similarity": float(ex.similarity),
            "erased_similarity": float(d.sim_other[top]),
        }
        return d, present, top, info


@register_method("Sim2Word-top1")
class Sim2WordTop1(_Sim2Word):
    """Joint map of the top-1 word."""

    def _explain(self, probe, mate, nonmate, nets):
        d, present, top, info = self._direction(probe, mate, nonmate, nets)
        return d.J[top], info


@register_method("Sim2Word-union")
class Sim2WordUnion(_Sim2Word):
    """Max of the joint maps of the present attributes (thresholded at theta: the union of erased
    regions)."""

    def _explain(self, probe, mate, nonmate, nets):
        d, present, top, info = self._direction(probe, mate, nonmate, nets)
        return d.J[present].max(axis=0), info
