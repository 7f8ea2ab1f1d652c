"""The uncertainty chart is readable: the legend never covers a bar, value labels are horizontal
and >= 8 pt, the title carries no file name (utils/experiments/figures.uncertainty_chart)."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from utils.experiments.figures import uncertainty_chart, uncertainty_title

DATA = {
    "u0": 0.2,
    "words": [f"attribute {k}" for k in range(18)],
    "u": list(np.linspace(0.9, 0.05, 18)),
    "path": "identification/h012/3.png",
    "label": 12,
    "pred": 12,
    "score": 0.97,
}


def test_legend_outside_bars_labels_readable_title_without_file_name():
    title = uncertainty_title(DATA)
    assert "3.png" not in title and "identity 12" in title and "u = 0.2000" in title
    fig = uncertainty_chart(DATA, None, title, (12.0, 5.0), note="h012/3.png")
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[1]
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 19  # the original and 18 attributes
    assert not any(legend.overlaps(b.get_window_extent(renderer)) for b in bars)
    assert legend.y0 >= ax.get_window_extent(renderer).y1 - 1  # above the plotting area
    values = [t for t in ax.texts if isinstance(t, Text) and t.get_text().startswith("0.")]
    assert len(values) == 19
    assert all(t.get_fontsize() >= 8 and t.get_rotation() == 0 for t in values)
    # value labels stay inside the axes (the x range leaves room for them) and do not overlap
    box = ax.get_window_extent(renderer)
    extents = [t.get_window_extent(renderer) for t in values]
    assert all(e.x1 <= box.x1 for e in extents)
    assert not any(a.overlaps(b) for i, a in enumerate(extents) for b in extents[i + 1 :])
    assert all(t.get_fontsize() >= 8 for t in ax.get_yticklabels())
    assert fig.axes[0].get_xlabel() == "h012/3.png"
