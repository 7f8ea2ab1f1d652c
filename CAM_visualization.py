"""Class activation maps of a pair list: identity, attribute and counterfactual maps per pair.

The counterpart of the authors' CAM_visualization.py, CAM_visualization_attribute.py
(--mode attribute --present-only) and CAM_visualization_counterfactual.py
(--mode counterfactual). Thin entry point: the flags and the work live in
utils/experiments/cam_figures.py. Run `python CAM_visualization.py --help`.

Example:
    python CAM_visualization.py --mode identity counterfactual --limit 5
"""

import sys
from pathlib import Path

from utils.experiments.cam_figures import main

if __name__ == "__main__":
    sys.exit(main(prog=Path(sys.argv[0]).name))
