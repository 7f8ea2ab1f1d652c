"""Analysis scripts that read the per-pair JSON records (never a network).

Each script runs from the repo root (``python results/<script>.py``), from inside ``results/``
(``cd results; python <script>.py``) or as a module (``python -m results.<script>``); run as a file,
it first imports ``_bootstrap`` (:mod:`results._bootstrap`), which puts the repository root on
``sys.path``.
"""
