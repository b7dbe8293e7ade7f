"""Data: batches, replay buffers (n-step), offline datasets (Minari) and their generation."""
from gde_ref.data.batch import Batch

__all__ = ["Batch"]
