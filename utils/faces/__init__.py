"""Reading, detecting and aligning faces; pair and image lists. Imports only ``utils.base``."""
