"""Point labels placed apart: close points (a Pareto front, duplicated settings) get labels that do not touch."""

from __future__ import annotations

from mtbench.plotting import annotate_apart, labels_overlap, pyplot

# a staircase with two near-coincident points and one exact duplicate, as a search's front often has
POINTS = [(0.70, 0.306), (0.713, 0.304), (0.77, 0.295), (0.778, 0.276), (0.808, 0.259), (0.81, 0.253),
          (0.721, 0.338), (0.721, 0.338)]
LABELS = [f"#{i} water_dipole={w}" for i, w in enumerate([2.48, 3.12, 8.69, 22.7, 76.8, 91.8, 1.09, 1.34])]


def _axes():
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    ax.scatter(*zip(*POINTS))
    ax.margins(x=0.25, y=0.12)
    return plt, fig, ax


def test_labels_of_close_points_do_not_overlap() -> None:
    plt, fig, ax = _axes()
    texts = annotate_apart(ax, POINTS, LABELS)
    assert len(texts) == len(POINTS)
    assert not labels_overlap(fig, texts)
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    assert all(frame.contains(*t.get_window_extent().p0) and frame.contains(*t.get_window_extent().p1)
               for t in texts)
    plt.close(fig)


def test_the_same_labels_at_one_offset_do_overlap() -> None:
    """The check above can fail: one fixed offset for every label runs the duplicates together."""
    plt, fig, ax = _axes()
    texts = [ax.annotate(t, p, textcoords="offset points", xytext=(5, 4), fontsize=7) for p, t in zip(POINTS, LABELS)]
    assert labels_overlap(fig, texts)
    plt.close(fig)
