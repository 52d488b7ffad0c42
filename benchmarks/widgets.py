"""Cost of one live update of the rank charts: workbench's inline SVG (``MetricPlot``) vs
plotly's ``FigureWidget`` (the kept plotting widget the field uses), same histories, same run.

Measured in the kernel process: seconds to apply one update (a new point on every rank's
line) and the bytes that update sends to the browser (SVG text; plotly's changed trace
arrays as JSON, which is what its widget syncs). Not part of the test suite.

    python benchmarks/widgets.py [--ranks 2 8 16] [--points 100 512] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import math
import time


def histories(ranks: int, points: int) -> dict[int, list[tuple[float, dict[str, float]]]]:
    return {r: [(float(s), {"loss": 2.0 * math.exp(-s / 50) + 0.01 * r, "acc": s / (s + 9)})
                for s in range(1, points + 1)] for r in range(ranks)}  # fmt: skip


def svg_update(hist, repeat: int) -> tuple[float, int]:
    from workbench.widgets.metric_plot import MetricPlot

    plot = MetricPlot()
    times, size = [], 0
    for i in range(repeat):
        for r, h in hist.items():  # one more point per rank, as a live run does
            h.append((h[-1][0] + 1, {"loss": h[-1][1]["loss"] * 0.99, "acc": 0.5 + r / 100 + i}))
        t = time.perf_counter()
        plot.update(hist)
        times.append(time.perf_counter() - t)
        size = len(plot.value.encode())
    return sorted(times)[len(times) // 2], size


def plotly_update(hist, repeat: int) -> tuple[float, int] | None:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return None
    fig = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=("loss", "acc")))
    for col in (1, 2):
        for r in hist:
            fig.add_scatter(x=[], y=[], name=f"rank {r}", row=1, col=col, mode="lines")
    times, size = [], 0
    for i in range(repeat):
        for r, h in hist.items():
            h.append((h[-1][0] + 1, {"loss": h[-1][1]["loss"] * 0.99, "acc": 0.5 + r / 100 + i}))
        t = time.perf_counter()
        sent = []
        with fig.batch_update():
            for k, (name, r) in enumerate((n, r) for n in ("loss", "acc") for r in hist):
                xs = [s for s, _ in hist[r]]
                ys = [m[name] for _, m in hist[r]]
                fig.data[k].x, fig.data[k].y = xs, ys
                sent.append({"x": xs, "y": ys})
        times.append(time.perf_counter() - t)
        size = len(json.dumps(sent).encode())
    return sorted(times)[len(times) // 2], size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 16])
    ap.add_argument("--points", type=int, nargs="+", default=[100, 512])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print(f"{'ranks':>5} {'points':>6} | {'svg ms':>7} {'svg KiB':>8} | "
          f"{'plotly ms':>9} {'plotly KiB':>10} | {'plotly/svg time':>15}")  # fmt: skip
    for ranks in args.ranks:
        for points in args.points:
            svg_t, svg_b = svg_update(histories(ranks, points), args.repeat)
            peer = plotly_update(histories(ranks, points), args.repeat)
            if peer is None:
                tail = f"{'(plotly not installed)':>38}"
            else:
                tail = f"{peer[0] * 1e3:9.2f} {peer[1] / 1024:10.1f} | {peer[0] / svg_t:15.2f}"
            print(f"{ranks:5d} {points:6d} | {svg_t * 1e3:7.2f} {svg_b / 1024:8.1f} | {tail}")


if __name__ == "__main__":
    main()
