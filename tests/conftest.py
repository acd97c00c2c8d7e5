"""Shared test set-up. Tests read reference data through qamar.data (QAMAR_DATA_DIR)."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
