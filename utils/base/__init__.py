"""Ground floor of ``utils``: atomic file writes, seeding, bounded reading of untrusted files
(``safefile``), the one JSON reader (``safejson``) and where commands may write (``outputs``).
Imports nothing else of ``utils``."""
