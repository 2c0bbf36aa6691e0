"""``brain2pix tables``: Tables 1-8 in the paper's layout, from ``results.json`` files.

Each experiment gives two tables (correlation, distance): baseline -> Tables 1-2, roi -> 3-4,
ablation -> 5-6, data_size -> 7-8. Rows are models or conditions, columns the six feature layers.
A value carries ``*`` when its one-sided t-test against chance gives p < 0.05. Binomial tests
against baselines are listed under the tables. Tables made with random feature-network weights or
quick runs say so in their caption.
"""

import csv
import glob
import json
import os

from ..utils import get_logger
from .features import LAYERS

__all__ = ["EXPERIMENTS", "collect_results", "build_tables", "render_markdown", "render_latex",
           "write_tables"]

EXPERIMENTS = {
    "baseline": (1, "Baseline experiment", ["B2P-FixedRF", "B2P-LearnedRF", "Baseline 1",
                                            "Baseline 2", "Baseline 3"]),
    "roi": (3, "ROI experiment", ["V1-3", "V1", "V2", "V3"]),
    "ablation": (5, "Ablation experiment", ["Full", "No adversarial", "No feature"]),
    "data_size": (7, "Data-size experiment", ["20%", "40%", "60%", "80%", "100%"]),
}
COLUMNS = {"alexnet_pool2": "AlexNet pool2", "alexnet_pool5": "AlexNet pool5",
           "alexnet_fc6": "AlexNet fc6", "c3d_pool2": "C3D pool2", "c3d_pool5": "C3D pool5",
           "c3d_fc6": "C3D fc6"}


def collect_results(results_dir):
    """Every ``results.json`` below ``results_dir``, grouped by experiment."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "**", "results.json"), recursive=True)):
        with open(path) as handle:
            result = json.load(handle)
        result["_path"] = path
        groups.setdefault(result.get("experiment", "misc"), []).append(result)
    return groups


def _order(experiment, results):
    known = EXPERIMENTS.get(experiment, (None, None, []))[2]
    rank = {label: k for k, label in enumerate(known)}
    return sorted(results, key=lambda r: (rank.get(r["label"], len(rank)), r["label"]))


def build_tables(groups):
    """Table objects: dicts with number, title, kind, caption, rows [(label, cells)], notes."""
    tables = []
    misc_number = 9
    for experiment in sorted(groups, key=lambda e: EXPERIMENTS.get(e, (99,))[0]):
        results = _order(experiment, groups[experiment])
        number, title, _ = EXPERIMENTS.get(experiment, (None, f"{experiment} experiment", []))
        if number is None:
            number, misc_number = misc_number, misc_number + 2
        marks = sorted({m for r in results for m in r.get("marks", [])})
        for offset, (kind, name) in enumerate((("r", "correlation"), ("dist", "distance"))):
            rows = []
            for r in results:
                cells = []
                for layer in LAYERS:
                    m = r["metrics"][f"{layer}_{kind}"]
                    star = "*" if m["p"] < 0.05 else ""
                    cells.append((m["mean"], m["sem"], star))
                rows.append((r["label"], cells))
            notes = [f"{r['label']} vs {b}: {v['successes']}/{v['n']} wins, binomial p = {v['p']:.3g}"
                     for r in results for b, v in sorted(r.get("baselines", {}).items())]
            caption = (f"Table {number + offset}. {title}: {name} values (mean +- SEM over "
                       f"{', '.join(sorted({str(r['n_frames']) for r in results}))} test frames; * p < 0.05 "
                       f"vs chance, one-sided t-test; {'higher' if kind == 'r' else 'lower'} is better).")
            if marks:
                caption += " [" + "; ".join(marks) + ": not comparable to the paper's numbers]"
            tables.append({"number": number + offset, "experiment": experiment, "kind": kind,
                           "caption": caption, "rows": rows, "notes": notes})
    return tables


def _fmt(cell):
    mean, sem, star = cell
    return f"{mean:.3f} +- {sem:.3f}{star}"


def render_markdown(table):
    lines = [f"**{table['caption']}**", "",
             "| Model | " + " | ".join(COLUMNS[c] for c in LAYERS) + " |",
             "|---" * (len(LAYERS) + 1) + "|"]
    for label, cells in table["rows"]:
        lines.append(f"| {label} | " + " | ".join(_fmt(c) for c in cells) + " |")
    lines += [""] + [f"- {n}" for n in table["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def render_latex(table):
    def esc(text):
        return text.replace("%", r"\%").replace("_", r"\_").replace("#", r"\#")

    lines = [r"\begin{table}[ht]", r"\centering", r"\caption{" + esc(table["caption"]) + "}",
             r"\begin{tabular}{l" + "c" * len(LAYERS) + "}", r"\hline",
             "Model & " + " & ".join(COLUMNS[c] for c in LAYERS) + r" \\", r"\hline"]
    for label, cells in table["rows"]:
        vals = [f"{m:.3f} $\\pm$ {s:.3f}{'$^*$' if star else ''}" for m, s, star in cells]
        lines.append(esc(label) + " & " + " & ".join(vals) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(results_dir, out_dir=None):
    """Render every table as Markdown, CSV and LaTeX into ``out_dir`` (default RESULTS_DIR/tables).

    Returns
    -------
    list of str
        Written files.
    """
    out_dir = out_dir or os.path.join(results_dir, "tables")
    groups = collect_results(results_dir)
    if not groups:
        raise FileNotFoundError(f"no results.json below {results_dir}; run `brain2pix evaluate` first")
    tables = build_tables(groups)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    markdown = []
    for t in tables:
        base = os.path.join(out_dir, f"table{t['number']}")
        with open(base + ".md", "w") as handle:
            handle.write(render_markdown(t))
        with open(base + ".tex", "w") as handle:
            handle.write(render_latex(t))
        with open(base + ".csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["model"] + [f"{c}_{k}" for c in LAYERS for k in ("mean", "sem", "p_lt_0.05")])
            for label, cells in t["rows"]:
                writer.writerow([label] + [v for m, s, star in cells for v in (f"{m:.6g}", f"{s:.6g}", bool(star))])
        written += [base + ext for ext in (".md", ".tex", ".csv")]
        markdown.append(render_markdown(t))
    with open(os.path.join(out_dir, "tables.md"), "w") as handle:
        handle.write("\n".join(markdown))
    written.append(os.path.join(out_dir, "tables.md"))
    get_logger().info("%d tables written to %s", len(tables), out_dir)
    return written
