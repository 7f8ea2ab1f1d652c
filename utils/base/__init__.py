"""Ground floor of ``utils``: atomic file writes and seeding. Imports nothing else of ``utils``."""
