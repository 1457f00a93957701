"""report_curves: the background-score sweep of every method's maps on one plot.

evaluate_maps scores each method's fused maps with a constant background score t (a pixel is
background where every class map is below t) for each t of `evaluate.bg_scores`; this plots
mIoU against t, marks each method's best t and the fixed values of IRN (0.15) and psa (0.20).
"""

from wsss.report.style import method_colors, plt, read_metrics, save

FIXED = {"IRN": 0.15, "psa": 0.20}


def run(methods, maps, output):
    """maps: each method's maps.json, in the order of `methods`."""
    save(figure(read_metrics(methods, maps, "maps")), output)


def figure(metrics):
    """metrics: {method: maps.json content} -> the figure (one line and one star per method)."""
    colors = method_colors(list(metrics))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, t in FIXED.items():
        ax.axvline(t, color="0.6", linestyle=":", linewidth=1)
        ax.text(t, 0.98, f"{name} {t:.2f} ", transform=ax.get_xaxis_transform(), rotation=90,
                ha="right", va="top", fontsize=8, color="0.4")
    for method, m in metrics.items():
        scores = [p["bg_score"] for p in m["curve"]]
        mious = [p["miou"] for p in m["curve"]]
        label = f"{method}: best {m['miou']:.1f} at {m['bg_score']:.2f}"
        ax.plot(scores, mious, marker=".", color=colors[method], label=label)
        ax.plot([m["bg_score"]], [m["miou"]], marker="*", markersize=13, color=colors[method], linestyle="none")
    first = next(iter(metrics.values()))
    ax.set_xlabel("background score t (a pixel is background where every class map < t)")
    ax.set_ylabel("mIoU of the maps (%)")
    ax.set_title(f"Maps mIoU against the background score ({first['split']}, {first['images']} images; * = best)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
