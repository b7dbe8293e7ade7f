"""gde_ref: Guided Decoupled Exploration for offline RL fine-tuning, in NumPy and Numba."""
__version__ = "0.1.0"


def load_policy(run, which="exploit"):
    """The trained policy in a run directory (``gde_ref.experiments.evaluate.load_policy``): its ``act(obs)``
    takes a raw observation, normalises it itself, and returns a new action array."""
    from gde_ref.experiments.evaluate import load_policy as load
    return load(run, which)
