"""Analysis scripts that read the per-pair JSON records (never a network).

Each script runs from the repo root (``python results/<script>.py``) or from
inside ``results/`` (``cd results; python <script>.py``).
"""
