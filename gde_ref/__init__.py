"""gde_ref: Guided Decoupled Exploration for offline RL fine-tuning, in NumPy and Numba."""
__version__ = "0.1.0"
