"""``brain2pix tables``: Tables 1-8 in the paper's layout, from ``results.json`` files.

Each experiment gives two tables (correlation, distance): baseline -> Tables 1-2, roi -> 3-4,
ablation -> 5-6, data_size -> 7-8. Rows are models or conditions, columns the six feature layers.
A value carries ``*`` when its one-sided t-test against chance gives p < 0.05. Binomial tests
against baselines are listed under the tables. Tables made with random feature-network weights or
quick runs say so in their caption.

A ``results.json`` that cannot be read or lacks a figure is skipped, not fatal: the other tables
are rendered and ``tables.md`` ends with the list of skipped files and why. Every file is written
through a temporary name and renamed, so a reader never sees half a table.
"""

import csv
import glob
import io
import json
import os

from ..evaluation.features import LAYERS
from ..provenance import caption_suffix
from ..utils import get_logger, write_text_atomic
from .registry import TABLE_GROUPS, table_rows

__all__ = ["collect_results", "build_tables", "render_markdown", "render_latex", "write_tables",
           "FIELD_COLUMNS"]

COLUMNS = {"alexnet_pool2": "AlexNet pool2", "alexnet_pool5": "AlexNet pool5",
           "alexnet_fc6": "AlexNet fc6", "c3d_pool2": "C3D pool2", "c3d_pool5": "C3D pool5",
           "c3d_fc6": "C3D fc6"}
# the supplementary table of each group: pixel metrics in both variants (inside the fisheye
# warp's valid field, where the black corners cannot inflate them, and over the whole frame)
FIELD_COLUMNS = {"pixcorr_disc": "PixCorr (valid field)", "ssim_disc": "SSIM (valid field)",
                 "pixcorr": "PixCorr (whole frame)", "ssim": "SSIM (whole frame)",
                 "twoway_alexnet2": "2-way AlexNet pool2", "twoway_alexnet5": "2-way AlexNet pool5"}


def _problem(result):
    """Why a parsed results.json cannot make a table row (None when it can)."""
    if not isinstance(result, dict):
        return f"expected a JSON object, got {type(result).__name__}"
    for key, kind in (("label", str), ("n_frames", int), ("metrics", dict)):
        if not isinstance(result.get(key), kind):
            return f"key {key!r}: expected {kind.__name__}, got {result.get(key)!r:.60}"
    for layer in LAYERS:
        for kind in ("r", "dist"):
            m = result["metrics"].get(f"{layer}_{kind}")
            if not isinstance(m, dict) or not all(
                    isinstance(m.get(k), (int, float)) and not isinstance(m.get(k), bool)
                    for k in ("mean", "sem", "p")):
                return f"metrics.{layer}_{kind}: expected mean, sem and p numbers, got {m!r:.80}"
    for name, b in (result.get("baselines") or {}).items():
        if not isinstance(b, dict) or not all(k in b for k in ("successes", "n", "p")):
            return f"baselines.{name}: expected successes, n and p, got {b!r:.80}"
    return None


def collect_results(results_dir, skipped=None):
    """Every usable ``results.json`` below ``results_dir``, grouped by experiment.

    Parameters
    ----------
    results_dir : str
    skipped : list, optional
        Receives ``(path, reason)`` for every file that cannot be used (unreadable, not JSON,
        figures missing).

    Returns
    -------
    dict of str -> list of dict
    """
    groups = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "**", "results.json"), recursive=True)):
        try:
            with open(path) as handle:
                result = json.load(handle)
            reason = _problem(result)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = f"cannot be read as JSON ({exc})"
        if reason is not None:
            get_logger().warning("tables: skipped %s: %s", path, reason)
            if skipped is not None:
                skipped.append((path, reason))
            continue
        result["_path"] = path
        groups.setdefault(result.get("experiment", "misc"), []).append(result)
    return groups


def _order(group, results):
    rank = {label: k for k, label in enumerate(table_rows(group))}
    return sorted(results, key=lambda r: (rank.get(r["label"], len(rank)), r["label"]))


def _field_table(number, group, title, results, suffix):
    """Supplementary table S<number>: pixel metrics, both variants, and two-way identification."""
    rows = []
    for r in results:
        fields = r.get("field_metrics") or {}
        rows.append((r["label"], [(fields[k]["mean"], fields[k]["sem"], "") if k in fields
                                  else None for k in FIELD_COLUMNS]))
    caption = (f"Table S{number}. {title}: pixel metrics (mean +- SEM; 'valid field' = inside the "
               f"fisheye warp's image, where the black corners shared by every frame cannot raise "
               f"the scores; 'whole frame' = all 96x96 pixels, corners included) and two-way "
               f"identification (chance 0.5).{suffix}")
    return {"number": f"S{number}", "experiment": group, "kind": "field", "caption": caption,
            "columns": list(FIELD_COLUMNS.values()), "keys": list(FIELD_COLUMNS),
            "rows": rows, "notes": []}


def build_tables(groups):
    """Table objects: dicts with number, title, kind, caption, columns, rows [(label, cells)],
    notes. Each group gives the paper's two tables (correlation, distance of the 12 feature
    metrics) and, when its results hold pixel metrics, a supplementary table S<n> with them."""
    tables = []
    misc_number = 9
    for experiment in sorted(groups, key=lambda e: TABLE_GROUPS.get(e, (99,))[0]):
        results = _order(experiment, groups[experiment])
        number, title = TABLE_GROUPS.get(experiment, (None, f"{experiment} experiment"))
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
            caption += caption_suffix(marks)
            tables.append({"number": number + offset, "experiment": experiment, "kind": kind,
                           "caption": caption, "columns": [COLUMNS[c] for c in LAYERS],
                           "keys": list(LAYERS), "rows": rows, "notes": notes})
        if any(r.get("field_metrics") for r in results):
            tables.append(_field_table(number, experiment, title, results, caption_suffix(marks)))
    return tables


def _fmt(cell):
    if cell is None:
        return "n/a"
    mean, sem, star = cell
    return f"{mean:.3f} +- {sem:.3f}{star}"


def render_markdown(table):
    columns = table["columns"]
    lines = [f"**{table['caption']}**", "",
             "| Model | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for label, cells in table["rows"]:
        lines.append(f"| {label} | " + " | ".join(_fmt(c) for c in cells) + " |")
    lines += [""] + [f"- {n}" for n in table["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def render_latex(table):
    def esc(text):
        return text.replace("%", r"\%").replace("_", r"\_").replace("#", r"\#")

    columns = table["columns"]
    lines = [r"\begin{table}[ht]", r"\centering", r"\caption{" + esc(table["caption"]) + "}",
             r"\begin{tabular}{l" + "c" * len(columns) + "}", r"\hline",
             "Model & " + " & ".join(esc(c) for c in columns) + r" \\", r"\hline"]
    for label, cells in table["rows"]:
        vals = ["n/a" if c is None else f"{c[0]:.3f} $\\pm$ {c[1]:.3f}{'$^*$' if c[2] else ''}"
                for c in cells]
        lines.append(esc(label) + " & " + " & ".join(vals) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _csv_text(table):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["model"] + [f"{c}_{k}" for c in table["keys"]
                                 for k in ("mean", "sem", "p_lt_0.05")])
    for label, cells in table["rows"]:
        writer.writerow([label] + [v for c in cells for v in (
            ("", "", "") if c is None else (f"{c[0]:.6g}", f"{c[1]:.6g}", bool(c[2])))])
    return buffer.getvalue()


def write_tables(results_dir, out_dir=None):
    """Render every table as Markdown, CSV and LaTeX into ``out_dir`` (default RESULTS_DIR/tables).

    Unusable ``results.json`` files are skipped and listed at the end of ``tables.md``.

    Returns
    -------
    list of str
        Written files.

    Raises
    ------
    FileNotFoundError
        When no usable results.json is found (the message lists the skipped ones).
    """
    out_dir = out_dir or os.path.join(results_dir, "tables")
    skipped = []
    groups = collect_results(results_dir, skipped)
    if not groups:
        why = "".join(f"; skipped {p}: {r}" for p, r in skipped)
        raise FileNotFoundError(f"no usable results.json below {results_dir}{why}; run "
                                f"`brain2pix evaluate` first")
    tables = build_tables(groups)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    markdown = []
    for t in tables:
        base = os.path.join(out_dir, f"table{t['number']}")
        written.append(write_text_atomic(base + ".md", render_markdown(t)))
        written.append(write_text_atomic(base + ".tex", render_latex(t)))
        written.append(write_text_atomic(base + ".csv", _csv_text(t)))
        markdown.append(render_markdown(t))
    if skipped:
        markdown.append("**Skipped results** (not in the tables above):\n\n"
                        + "".join(f"- {p}: {r}\n" for p, r in skipped))
    written.append(write_text_atomic(os.path.join(out_dir, "tables.md"), "\n".join(markdown)))
    get_logger().info("%d tables written to %s%s", len(tables), out_dir,
                      f"; {len(skipped)} results.json skipped (listed in tables.md)" if skipped
                      else "")
    return written
