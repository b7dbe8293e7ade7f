"""The engine: small MLPs with hand-written forward/backward, Adam and distributions, as Numba kernels.

Nothing here imports anything else of gde_ref: every layer above builds on it.
"""
from gde_ref.nn.adam import AdamState, adam_step, polyak_update
from gde_ref.nn.mlp import MLP, build_layout, orthogonal

__all__ = ["MLP", "AdamState", "adam_step", "polyak_update", "build_layout", "orthogonal"]
