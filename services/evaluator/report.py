"""The evaluation report: ``report.json`` (everything, for machines), ``report.md`` (a
candidate × metric table with quality and cost side by side, readable in a terminal and on a
code-hosting page) and PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SCORES_PNG = "scores.png"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def confusion_png(candidate: str) -> str:
    return f"confusion-{_SAFE.sub('_', candidate)}.png"


def latency_stats(latencies_s: list[float], tokens: list[int]) -> dict[str, float]:
    if not latencies_s:
        return {"latency_p50_ms": 0.0, "latency_p95_ms": 0.0, "tokens_per_second": 0.0}
    total = float(sum(latencies_s))
    return {"latency_p50_ms": float(np.percentile(latencies_s, 50) * 1000),
            "latency_p95_ms": float(np.percentile(latencies_s, 95) * 1000),
            "tokens_per_second": float(sum(tokens) / total) if total > 0 else 0.0}


def metric_names(report: dict[str, Any]) -> list[str]:
    """Table columns: the primary metric first, then the others in first-seen order."""
    names = [report["primary_metric"]]
    for cand in report["candidates"]:
        for name in cand.get("metrics", {}):
            if name not in names:
                names.append(name)
    return names


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]], align_right_from: int = 1) -> list[str]:
    """A Markdown table padded to equal column widths, so it also reads in a terminal."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if i >= align_right_from else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if i >= align_right_from else "-" * w
                             for i, w in enumerate(widths)) + " |"
    return [line(header), rule] + [line(r) for r in rows]


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def comparison_lines(report: dict[str, Any]) -> list[str]:
    """The differences with their paired bootstrap intervals: a lead whose interval contains 0 is
    printed as "no clear difference", so a reader never takes noise for a win."""
    comparisons = report.get("comparisons") or []
    if not comparisons:
        return []
    method = report.get("comparison_method", {})
    metric = comparisons[0]["metric"]
    lines = [f"## Differences on {metric} (paired bootstrap, 95% intervals)", "",
             f"Both candidates scored on the same test examples; the examples are resampled "
             f"{method.get('resamples', '?')} times (seed {method.get('seed', '?')}) and each interval is the "
             "middle 95% of the resampled differences. \"better\" / \"worse\" only when the interval "
             "excludes 0.", ""]
    rows = [[f"{c['a']} − {c['b']}", c["verdict"], _signed(c["delta"]),
             f"[{_signed(c['low'])}, {_signed(c['high'])}]", str(c["n"])] for c in comparisons]
    header = ["a − b", "verdict", f"Δ {metric}", "95% interval", "examples"]
    return lines + _table(header, rows, align_right_from=2) + [""]


def render_markdown(report: dict[str, Any]) -> str:
    task = report["task"]
    primary = report["primary_metric"]
    lines = [f"# Evaluation: {task['name']} ({task['type']})", ""]
    ratio = report.get("student_teacher_ratio")
    summary = f"{report['examples']} test examples · primary metric **{primary}**"
    if ratio is not None:
        detail = report["ratio"]
        summary += (f" · student/teacher ratio **{ratio:.3f}** ({detail['student']} {detail['student_value']:.3f}"
                    f" / {detail['teacher']} {detail['teacher_value']:.3f})")
    else:
        summary += " · student/teacher ratio: n/a (" + report.get("ratio_note", "no teacher and trained student") + ")"
    lines += [summary, ""]
    names = metric_names(report)
    header = ["candidate", "kind"] + names + ["malformed", "p50 ms", "p95 ms", "tokens/s"]
    rows = []
    for cand in report["candidates"]:
        if cand.get("error"):
            rows.append([cand["name"], cand["kind"]] + ["–"] * len(names) + ["–", "–", "–", "–"])
            continue
        metrics = cand["metrics"]
        rows.append([cand["name"], cand["kind"]] + [_fmt(metrics.get(n)) for n in names]
                    + [f"{cand['malformed']}/{cand['examples']}", _fmt(cand["latency_p50_ms"], 1),
                       _fmt(cand["latency_p95_ms"], 1), _fmt(cand["tokens_per_second"], 1)])
    lines += _table(header, rows, align_right_from=2) + [""]
    lines += comparison_lines(report)
    if report.get("plots", {}).get("scores"):
        lines += [f"![scores]({report['plots']['scores']})", ""]
    failed = [c for c in report["candidates"] if c.get("error")]
    if failed:
        lines += ["## Candidates that could not be evaluated", ""]
        lines += [f"- **{c['name']}**: {c['error']}" for c in failed] + [""]
    scored = [c for c in report["candidates"] if not c.get("error")]
    per_label = [c for c in scored if c.get("extra", {}).get("per_label")]
    if per_label:
        labels: list[str] = []
        for cand in per_label:
            labels += [label for label in cand["extra"]["per_label"] if label not in labels]
        lines += ["## Per-label F1", ""]
        rows = [[label] + [_fmt(c["extra"]["per_label"].get(label, {}).get("f1")) for c in per_label]
                + [str(max(c["extra"]["per_label"].get(label, {}).get("support", 0) for c in per_label))]
                for label in labels]
        lines += _table(["label"] + [c["name"] for c in per_label] + ["support"], rows) + [""]
        for cand in per_label:
            png = report.get("plots", {}).get("confusion", {}).get(cand["name"])
            if png:
                lines += [f"![confusion matrix: {cand['name']}]({png})", ""]
    lines += ["## How each candidate answered", ""]
    lines += [f"- **{c['name']}** ({c['kind']}, {c.get('model') or '–'}): {c.get('decoding') or 'not evaluated'}"
              for c in report["candidates"]] + [""]
    listed = [c for c in scored if c.get("malformed_examples")]
    if listed:
        lines += ["## Malformed predictions", "", "Counted as wrong; the first few of each candidate:", ""]
        for cand in listed:
            lines.append(f"**{cand['name']}** ({cand['malformed']} malformed)")
            lines.append("")
            for item in cand["malformed_examples"]:
                shown = item["prediction"].replace("\n", " ").replace("|", "\\|")
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                lines.append(f"- `{item['id']}`: {item['reason']} — `{shown}`")
            lines.append("")
    if report.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def plot_scores(report: dict[str, Any], path: Path) -> Path:
    """Grouped bars: each scored candidate's metrics (all in 0..1), the primary one first."""
    scored = [c for c in report["candidates"] if not c.get("error")]
    names = [n for n in metric_names(report) if all(0.0 <= c["metrics"].get(n, 0.0) <= 1.0 for c in scored)][:6]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(scored) * max(1, len(names)) * 0.5 + 2), 4.2), dpi=110)
    width = 0.8 / max(1, len(names))
    x = np.arange(len(scored))
    for i, name in enumerate(names):
        values = [c["metrics"].get(name, 0.0) for c in scored]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        if i == 0:
            ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    ax.set_xticks(x, [c["name"] for c in scored], rotation=15, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score")
    ax.set_title(f"{report['task']['name']}: {report['examples']} test examples")
    ax.legend(fontsize=8, ncols=min(3, max(1, len(names))), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion(name: str, matrix: dict[str, Any], path: Path) -> Path:
    counts = np.array(matrix["counts"], dtype=float)
    rows, cols = matrix["rows"], matrix["columns"]
    size = max(4.0, 0.5 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=110)
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    peak = counts.max() if counts.size else 0
    for (r, c), value in np.ndenumerate(counts):
        if value:
            ax.text(c, r, str(int(value)), ha="center", va="center", fontsize=8,
                    color="white" if value > peak / 2 else "black")
    ax.set_title(f"confusion matrix: {name}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the PNGs into ``out_dir`` and record their file names in ``report['plots']``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    plots: dict[str, Any] = {"confusion": {}}
    if any(not c.get("error") for c in report["candidates"]):
        paths.append(plot_scores(report, out_dir / SCORES_PNG))
        plots["scores"] = SCORES_PNG
    for cand in report["candidates"]:
        matrix = cand.get("extra", {}).get("confusion_matrix")
        if matrix and matrix["rows"]:
            filename = confusion_png(cand["name"])
            paths.append(plot_confusion(cand["name"], matrix, out_dir / filename))
            plots["confusion"][cand["name"]] = filename
    report["plots"] = plots
    return paths
