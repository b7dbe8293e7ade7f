"""Figures: maze visitation heatmaps (paper Fig. 2a-b) and learning curves (Fig. 2c, Fig. 9)."""
import numpy as np


def _figure(ncols, width=4.0, height=3.6):
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def save(fig, path):
    """Save a figure (PNG) and close it."""
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def visitation_figure(env, panels, suptitle=None):
    """One heatmap per (title, counts) panel, over the maze's layout (log colour scale)."""
    from gde_ref.envs.maze import draw_visitation
    fig, axes = _figure(len(panels))
    for ax, (title, counts) in zip(axes, panels):
        image = draw_visitation(ax, env, counts, title)
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="visits + 1")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def learning_curves(curves, xlabel="environment steps", ylabel="return", title=None, hlines=()):
    """Mean and std over seeds of each method: curves = {label: (steps (T,), values (seeds, T))}."""
    fig, axes = _figure(1, width=6.0, height=4.0)
    ax = axes[0]
    for label, (steps, values) in curves.items():
        values = np.asarray(values, float)
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, label=f"{label} ({values.shape[0]} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    for y, text in hlines:
        ax.axhline(y, color="grey", linestyle="--", linewidth=0.8)
        ax.text(ax.get_xlim()[0], y, f" {text}", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def aggregate_figure(intervals, profiles, taus, title=None):
    """Two panels (paper Fig. 6a): the IQM of each method with its CI, intervals = {label: (iqm, low, high)};
    and the performance profiles, profiles = {label: fraction of runs above each tau}."""
    fig, axes = _figure(2, width=5.0, height=max(2.5, 0.45 * len(intervals) + 1.2))
    ax = axes[0]
    labels = list(intervals)
    for k, label in enumerate(labels):
        value, low, high = intervals[label]
        ax.plot([low, high], [k, k], linewidth=6, alpha=0.35, solid_capstyle="butt")
        ax.plot([value], [k], "k|", markersize=14)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("IQM of the normalized score (95% CI)")
    ax = axes[1]
    for label, fractions in profiles.items():
        ax.plot(taus, fractions, label=label)
    ax.set_xlabel("normalized score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
