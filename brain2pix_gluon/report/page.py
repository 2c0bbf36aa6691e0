"""``brain2pix report``: one self-contained HTML page of a run (see :func:`write_report`)."""

import csv
import io
import json
import logging
import os
import time

import numpy as np

from ..errors import DataError
from ..experiments.registry import EXPERIMENTS, FIGURES, TABLE_GROUPS
from ..provenance import CONTROL_MARKS, PROFILE_MARKS, code_version
from ..utils import write_text_atomic
from .html import (STYLE, Gaps, array_png_uri, esc, human_size, line_chart, png_file_uri,
                   relative, table, video_tag)
from .layout import Layout, find_layout, read_json

__all__ = ["write_report", "build_report", "ReportResult", "MAX_VIDEO_FRAMES", "REPORT_NAME"]

# frames of each variant's video at most (63 s at one frame per TR of 0.7 s) and their H.264
# quality: 96-pixel frames of noisy reconstructions take about 4 kB a frame at CRF 30 (6.5 kB at
# ffmpeg's default 23-26), so at the paper's scale (seven test clips, about 1,000 frames per
# variant, 16 distinct trainings and baselines) the videos stay near 8 MB in all and the page
# can be e-mailed; the per-frame strip still covers every evaluated frame
MAX_VIDEO_FRAMES = 90
VIDEO_CRF = 30
# the page's name in a run folder (make demo, make science)
REPORT_NAME = "report.html"
# on-screen width of one picture of a video (pixels; frames are scaled up, not smoothed)
PANEL_WIDTH = 192

_FIGURE_FILES = {
    "demo": [("Fig. 3", "consecutive test frames of B2P-FixedRF (ground truth above, "
              "reconstruction below)", "fig3_consecutive_frames.png"),
             ("Floors", "B2P-FixedRF beside the ridge floor and the time-shuffled control",
              "floors_comparison.png")],
    "science": [("Fig. 3", "consecutive test frames of B2P-FixedRF", "figures/fig3.png"),
                ("Fig. 4", "B2P-FixedRF, B2P-LearnedRF and the baselines", "figures/fig4.png"),
                ("Fig. 5", "the ROI experiment (input | reconstruction | ground truth)",
                 "figures/fig5.png"),
                ("Fig. 6", "the data-size experiment", "figures/fig6.png"),
                ("Floors", "B2P-FixedRF beside the ridge floor and the time-shuffled control",
                 "figures/floors.png")],
}
_FIGURE_TITLES = {"fig3": "Fig. 3", "fig4": "Fig. 4", "fig5": "Fig. 5", "fig6": "Fig. 6"}


class ReportResult:
    """What :func:`write_report` wrote: ``path``, ``size`` (bytes), ``gaps`` (list of str),
    ``kind`` (the layout's kind)."""

    def __init__(self, path, size, gaps, kind):
        self.path, self.size, self.gaps, self.kind = path, size, list(gaps), kind


def write_report(folder, out=None, max_video_frames=MAX_VIDEO_FRAMES):
    """Write the results page of a run folder.

    Parameters
    ----------
    folder : str
        A demo output (``brain2pix demo --out``), a science run (``brain2pix experiment all
        --out``), a results root of ``brain2pix experiment NAME`` runs, or one experiment's
        folder under it.
    out : str, optional
        The HTML file; default ``FOLDER/report.html``.
    max_video_frames : int
        Frames of each variant's video at most (the page says when a video is capped).

    Returns
    -------
    ReportResult
        The gaps are the inputs that were damaged or missing; the page shows each where it
        belongs and renders the rest.

    Raises
    ------
    NoRunError
        When ``folder`` holds no run at all.
    """
    page, gaps, layout = build_report(folder, max_video_frames)
    out = os.fspath(out) if out else os.path.join(layout.folder, REPORT_NAME)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_text_atomic(out, page)
    return ReportResult(out, os.path.getsize(out), gaps, layout.kind)


def build_report(folder, max_video_frames=MAX_VIDEO_FRAMES):
    """The page as text, its gaps and the folder's :class:`~.layout.Layout`."""
    from ..errors import ConfigError

    if not isinstance(max_video_frames, int) or max_video_frames < 1:
        raise ConfigError(f"--max-video-frames: expected a number of frames >= 1, got "
                          f"{max_video_frames!r}")
    layout = find_layout(folder)
    builder = _Builder(layout, max_video_frames)
    return builder.page(), list(builder.gaps), layout


class _Builder:
    """Reads a run folder and renders its sections; every problem becomes a named gap."""

    def __init__(self, layout: Layout, max_video_frames):
        self.layout = layout
        self.cap = int(max_video_frames)
        self.gaps = Gaps()
        self.marks = set()
        self.summary = None
        self.video_notes = []
        self.shown_runs = {}        # training key -> anchor of the variant whose video shows it

    # ------------------------------------------------------------------ the page
    def page(self):
        lay = self.layout
        summary_html = self._read_summary()
        variants = lay.variants()
        main = next((v for v in variants if v.experiment == "fixed_rf"), variants[0])
        verdicts = self._verdicts()
        tables = self._tables(variants)
        figures = self._figures()
        sections = [self._variant(v) for v in variants]
        head = self._provenance(main, summary_html)
        kinds = {"demo": "demo run (brain2pix demo)",
                 "science": "all seven experiments (brain2pix experiment all)",
                 "results": "results of brain2pix experiment",
                 "experiment": "one experiment (brain2pix experiment)"}
        gap_list = ""
        if len(self.gaps):
            gap_list = (f"<h2 id=gaps>Gaps: {len(self.gaps)} damaged or missing inputs</h2>"
                        "<ol class=gaplist>" +
                        "".join(f'<li><a href="#gap-{k}">{esc(g)}</a></li>'
                                for k, g in enumerate(self.gaps, 1)) + "</ol>\n")
        body = [f"<h1>brain2pix results: {esc(kinds[lay.kind])}</h1>",
                f'<div class="small">{esc(lay.folder)}</div>', head, gap_list,
                verdicts, tables, figures,
                "<h2>Per variant: video, learning curves, per-frame scores</h2>",
                "<p class=small>Each video: ground truth | reconstruction | RFSimage input (the "
                "mean over TRs of each ROI's RFSimage, as red, green, blue = V1, V2, V3), one "
                "frame per TR, in real time. " + " ".join(self.video_notes[:1]) + "</p>",
                *sections]
        made = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        code = code_version()
        footer = (f"<hr><p class=small>Written by <code>brain2pix report</code> "
                  f"(package {esc(code['package_version'])}, commit "
                  f"{esc(code['git_commit'] or 'not a git checkout')}) on {esc(made)}. "
                  f"Everything is inside this file (pictures and videos as data URIs); it "
                  f"loads nothing from elsewhere. Page size: @@SIZE@@.</p>")
        text = ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
                "<meta name=viewport content='width=device-width, initial-scale=1'>"
                f"<title>brain2pix results: {esc(os.path.basename(lay.folder))}</title>"
                f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + footer +
                "\n</body></html>\n")
        size = len(text.encode("utf-8"))
        return text.replace("@@SIZE@@", human_size(size + 8))

    # ------------------------------------------------------------------ provenance
    def _read_summary(self):
        lay = self.layout
        if lay.summary is None:
            return ""
        data, problem = read_json(lay.summary)
        if problem:
            return self.gaps.add("Provenance", f"{os.path.basename(lay.summary)} is {problem}; "
                                 f"marks, times and the machine below come from the other files")
        self.summary = data if isinstance(data, dict) else {}
        self.marks.update(self.summary.get("marks") or [])
        return ""

    def _provenance(self, main, summary_gap):
        s = self.summary or {}
        config, _ = self._config_of(main)
        profile = s.get("profile") or ((config or {}).get("train") or {}).get("profile") or "?"
        marks = sorted(self.marks)
        if marks:
            def kind(mark):
                if mark in PROFILE_MARKS.values():
                    return "mark profile"
                return "mark control" if mark in CONTROL_MARKS.values() else "mark"

            def text(mark):
                # a demo or science run holds the control beside the model: say which run it marks
                if mark in CONTROL_MARKS.values() and self.layout.control_root:
                    return f"{mark}: the control run beside the model, not the model itself"
                return mark

            banner = "".join(f'<span class="{kind(m)}">{esc(text(m))}</span>' for m in marks)
        else:
            banner = ('<span class="mark none">No marks: the paper\'s settings with pretrained '
                      'weights</span>')
        if profile not in PROFILE_MARKS and profile != "paper":
            banner += f'<span class="mark profile">PROFILE {esc(profile)}</span>'
        elif profile == "paper":
            banner += '<span class="mark none">PROFILE paper</span>'
        rows = [("profile", profile)]
        version = s.get("package_version") or self._results_version()
        rows.append(("package version", version or "not recorded by the run"))
        rows.append(("git commit", s.get("git_commit") or
                     "not recorded by the run (see the footer for the report's own)"))
        machine = s.get("machine")
        if isinstance(machine, dict):
            rows.append(("machine", "; ".join(f"{k} {v}" for k, v in machine.items()
                                             if k != "mxnet")))
            rows.append(("MXNet build", machine.get("mxnet", "not recorded by the run")))
        else:
            rows.append(("machine", "not recorded by the run"))
        if "seconds" in s:
            stages = "; ".join(f"{stage}: {_duration(seconds)}" for stage, seconds in
                               (s.get("seconds_by_stage") or {}).items())
            from ..experiments.science import resumed_note

            note = resumed_note(s)
            resumed = f"; {note}" if note else ""
            rows.append(("wall time", _duration(s["seconds"]) + (f" ({stages}{resumed})" if stages
                                                                 else "")))
        for name in self.layout.experiments:
            other, _ = read_json(os.path.join(self.layout.results_root, name, "summary.json"))
            if isinstance(other, dict) and "seconds" in other and self.layout.kind in (
                    "results", "experiment"):
                rows.append((f"wall time of experiment {name}", _duration(other["seconds"])))
        if s.get("settings"):
            rows.append(("settings given", " ".join(map(str, s["settings"]))))
        if "jobs" in s:
            rows.append(("units at a time", f"{s['jobs']} ({s.get('threads_per_job', '?')} "
                                            f"threads each)"))
        rows.append(("this page", f"@@SIZE@@ (videos at most {self.cap} frames each)"))
        diff_html = self._settings_diff(main, config)
        headline = self._headline()
        return (summary_gap + f'<div class="marks">{banner}</div>\n' + headline +
                table(None, rows, left=2, cls="kv") + diff_html)

    def _headline(self):
        """One line under the marks: the run's verdict and how many gaps the page has."""
        parts = []
        check = (self.summary or {}).get("learning_check") if self.layout.kind == "demo" else None
        if self.layout.kind == "science":
            check, _ = read_json(os.path.join(self.layout.folder, "learning_check.json"))
            findings, _ = read_json(os.path.join(self.layout.folder, "findings.json"))
            try:
                for column, name in (("paper", "the paper's 12 metrics"),
                                     ("pixels", "pixel metrics")):
                    verdicts = [f["verdicts"][column] for f in findings["findings"]]
                    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in
                                       ("holds", "does not hold", "not testable here")
                                       if verdicts.count(v))
                    parts.append(f"<span class='verdict neutral'>Findings F1-F{len(verdicts)} "
                                 f"on {name}: {esc(counts)}</span>")
            except (KeyError, TypeError):
                pass
        if isinstance(check, dict) and "passed" in check:
            css = "good" if check["passed"] else "bad"
            text = ("learns from the brain signal" if check["passed"] else
                    "did NOT learn from the brain signal")
            parts.insert(0, f"<span class='verdict {css}'>Learning check: {text}</span>")
        if len(self.gaps):
            parts.append(f"<a class='verdict bad' href='#gaps'>{len(self.gaps)} gaps: damaged "
                         f"or missing inputs (listed below)</a>")
        return f"<p style='display:flex;flex-wrap:wrap;gap:8px'>{''.join(parts)}</p>\n" \
            if parts else ""

    def _results_version(self):
        for v in self.layout.variants():
            data, _ = read_json(v.results)
            if isinstance(data, dict) and data.get("package_version"):
                return f"{data['package_version']} (from {relative(v.results, self.layout.folder)})"
        return None

    def _settings_diff(self, variant, config):
        """Every setting of ``variant``'s run that differs from the paper profile."""
        from ..config import config_to_dict
        from ..experiments.runner import experiment_config

        title = (f"<h3>Settings that differ from the paper profile ({esc(variant.name)})</h3>")
        if config is None:
            return title + self.gaps.add("Settings", f"the configuration of {variant.name} is "
                                         f"not readable (training.json, its run's config.yaml "
                                         f"and reconstructions.h5 are missing or damaged)")
        spec = EXPERIMENTS[variant.experiment].variant(variant.label)
        paper = _flat(config_to_dict(experiment_config(spec.config, "paper")))
        mine = _flat(config)
        rows = [(key, _show(paper.get(key, "(not a setting)")), _show(mine.get(key, "(not set)")))
                for key in sorted(set(paper) | set(mine))
                # a key the run's config lacks is a setting added after the run was made
                if key in mine and not _same(paper.get(key), mine.get(key))]
        if not rows:
            return title + "<p>None: the paper's settings.</p>"
        return title + table(["setting", "paper", "this run"], rows, left=3)

    # ------------------------------------------------------------------ verdicts
    def _verdicts(self):
        lay = self.layout
        out = []
        if lay.kind == "science":
            out.append(self._findings())
            check, problem = read_json(os.path.join(lay.folder, "learning_check.json"))
            out.append("<h2>Learning check: B2P-FixedRF against its time-shuffled control, with "
                       "the floors</h2>")
            out.append(self.gaps.add("Learning check", f"learning_check.json is {problem}")
                       if problem else _learning_check(check))
        elif lay.kind == "demo":
            out.append("<h2>Learning check: does the model learn from the brain signal?</h2>")
            check = (self.summary or {}).get("learning_check")
            out.append(_learning_check(check) if isinstance(check, dict) else self.gaps.add(
                "Learning check", "demo_summary.json holds no learning check (it is missing "
                "or damaged)"))
        return "\n".join(out)

    def _findings(self):
        # a part's cell as findings.md writes it (one formatting of a test's numbers)
        from ..experiments.findings import _cell

        data, problem = read_json(os.path.join(self.layout.folder, "findings.json"))
        head = "<h2>The paper's findings, tested on this run</h2>"
        if problem:
            return head + self.gaps.add("Findings table", f"findings.json is {problem}")
        try:
            rows, details = [], []
            for f in data["findings"]:
                cells = []
                for column in ("paper", "pixels"):
                    verdict = f["verdicts"][column]
                    css = {"holds": "good", "does not hold": "bad"}.get(verdict, "neutral")
                    untested = f.get("parts_not_testable", {}).get(column, 0)
                    extra = (f" ({untested} of {f.get('n_parts', '?')} parts not testable)"
                             if untested and verdict != "not testable here" else "")
                    cells.append(("html", f'<span class="verdict {css}" style="font-size:13px">'
                                          f'{esc(verdict)}</span>{esc(extra)}'))
                rows.append((f["id"], f["claim"], f["form"], *cells))
                part_rows = [(p["statement"], _cell(p["paper"]), _cell(p["pixels"]))
                             for p in f["parts"]]
                details.append(f"<details><summary>{esc(f['id'])}: every part</summary>" +
                               table(["part", "the paper's 12 metrics", "pixel metrics"],
                                     part_rows, left=3) + "</details>")
        except (KeyError, TypeError, ValueError) as exc:
            return head + self.gaps.add("Findings table", f"findings.json is damaged (no "
                                        f"{type(exc).__name__}: {exc})")
        marks = data.get("marks") or []
        self.marks.update(marks)
        note = (f"<p class=small>{esc(data.get('n_frames', '?'))} held-out test frames; "
                f"alpha {esc(data.get('alpha', 0.05))}. Verdicts: holds / does not hold / not "
                f"testable here. Consecutive frames are alike, so the per-frame tests are "
                f"optimistic.</p>")
        return (head + note + table(["", "the paper's finding", "measured as",
                                     "the paper's 12 metrics", "pixel metrics"], rows, left=3)
                + "\n".join(details))

    # ------------------------------------------------------------------ tables
    def _tables(self, variants):
        from ..experiments.tables import build_tables, collect_results

        lay = self.layout
        out = ["<h2>Tables 1-8</h2>"]
        skipped = []
        logger = logging.getLogger("brain2pix_gluon")
        level = logger.level
        logger.setLevel(logging.ERROR)      # the page names every skipped file itself
        try:
            groups = collect_results(lay.results_root, skipped)
        finally:
            logger.setLevel(level)
        by_path = {os.path.abspath(v.results): v for v in variants}
        for path, reason in skipped:
            v = by_path.get(os.path.abspath(path))
            what = f"variant {v.slug}" if v else relative(path, lay.folder)
            out.append(self.gaps.add(_table_names(v.experiment) if v else "Tables",
                                     f"results.json of {what} is damaged ({reason})"))
        broken = {os.path.abspath(p) for p, _ in skipped}
        for v in variants:
            if EXPERIMENTS[v.experiment].table_group not in TABLE_GROUPS:
                continue
            if not os.path.exists(v.results) and os.path.abspath(v.results) not in broken:
                state = ("its folder is missing: the variant was not run" if not
                         os.path.isdir(v.folder) else "missing: the variant was not evaluated")
                out.append(self.gaps.add(_table_names(v.experiment),
                                         f"results.json of variant {v.slug} is {state} "
                                         f"({relative(v.results, lay.folder)})"))
        for group in groups.values():
            for result in group:
                self.marks.update(result.get("marks") or [])
        if not groups:
            return "\n".join(out + ["<p>No usable results.json: no table.</p>"])
        for t in build_tables(groups):
            rows = []
            for label, cells in t["rows"]:
                rows.append([label] + ["n/a" if c is None else
                                       f"{c[0]:.3f} \u00b1 {c[1]:.3f}{c[2]}" for c in cells])
            out.append(f'<p class="caption">{esc(t["caption"])}</p>')
            out.append(table(["Model"] + t["columns"], rows))
            if t["notes"]:
                out.append("<div class=notes>Binomial tests (wins over frames x metrics): " +
                           "; ".join(esc(n) for n in t["notes"]) + "</div>")
        return "\n".join(out)

    # ------------------------------------------------------------------ figures
    def _figures(self):
        lay = self.layout
        out = ["<h2>Figures</h2>"]
        if lay.kind in _FIGURE_FILES:
            for title, caption, name in _FIGURE_FILES[lay.kind]:
                out.append(self._figure_file(title, caption, os.path.join(lay.folder, name)))
            return "\n".join(out)
        for figure, panels in FIGURES.items():
            wanted = [(e, label) for e, label in panels if e in lay.experiments]
            if wanted:
                out.append(self._draw_figure(figure, wanted))
        if len(out) == 1:
            out.append("<p>No figure of the paper applies to these experiments.</p>")
        return "\n".join(out)

    def _figure_file(self, title, caption, path):
        name = relative(path, self.layout.folder)
        if not os.path.exists(path):
            return self.gaps.add(title, f"{name} is missing")
        try:
            uri, (width, height) = png_file_uri(path)
        except (OSError, ValueError, SyntaxError) as exc:
            return self.gaps.add(title, f"{name} is damaged (it does not decode: "
                                        f"{type(exc).__name__}: {str(exc)[:120]})")
        return (f'<figure><img class="fig" data-name="{esc(title)}" alt="{esc(title)}: '
                f'{esc(caption)}" width="{width}" height="{height}" src="{uri}">'
                f"<figcaption><b>{esc(title)}.</b> {esc(caption)} ({esc(name)})</figcaption>"
                f"</figure>")

    def _draw_figure(self, figure, panels):
        """A paper figure drawn from the reconstruction files (runs that wrote no figure)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plotting import consecutive_frames, model_grid, panel_grid
        from ..experiments.registry import result_path

        title = _FIGURE_TITLES[figure]
        found, out = {}, []
        for experiment, label in panels:
            path = result_path(self.layout.results_root, experiment, label, "recon")
            if os.path.exists(path):
                found[label] = path
            else:
                out.append(self.gaps.add(title, f"panel {label}: "
                                                f"{relative(path, self.layout.folder)} is missing"))
        if not found:
            return "\n".join(out)
        try:
            if figure == "fig3":
                path = next(iter(found.values()))
                fig = consecutive_frames(path, start="busiest", count=8)
            elif figure == "fig5":
                fig = panel_grid(found, count=5)
            else:
                fig = model_grid(found, count=6)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
            plt.close(fig)
        except (DataError, OSError, ValueError) as exc:
            return "\n".join(out + [self.gaps.add(title, f"could not be drawn: {exc}")])
        from PIL import Image

        image = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        out.append(f'<figure><img class="fig" data-name="{esc(title)}" alt="{esc(title)}" '
                   f'width="{image.shape[1]}" height="{image.shape[0]}" '
                   f'src="{array_png_uri(image)}"><figcaption><b>{esc(title)}</b>, drawn by '
                   f"the report from the reconstructions of {esc(', '.join(found))}."
                   f"</figcaption></figure>")
        return "\n".join(out)

    # ------------------------------------------------------------------ variants
    def _config_of(self, v):
        """The variant's resolved settings (its training run's config.yaml, else those its
        reconstruction file records) and its training key."""
        import yaml

        pointer, _ = read_json(v.training)
        key = pointer.get("key") if isinstance(pointer, dict) else None
        if isinstance(pointer, dict) and pointer.get("run"):
            path = os.path.normpath(os.path.join(v.folder, pointer["run"], "config.yaml"))
            try:
                with open(path) as handle:
                    config = yaml.safe_load(handle)
                if isinstance(config, dict):
                    return config, key
            except (OSError, yaml.YAMLError, UnicodeDecodeError):
                pass
        try:
            import h5py

            with h5py.File(v.recon, "r") as f:
                config = json.loads(f.attrs.get("config", "{}"))
            return (config if isinstance(config, dict) and config else None), key
        except (OSError, ValueError, TypeError):
            return None, key

    def _variant(self, v):
        from ..io.reconstructions import read_reconstructions

        lay = self.layout
        title = f"{EXPERIMENTS[v.experiment].title} \u2014 {v.label}"
        out = [f'<section class="variant" id="{esc(v.anchor)}"><h3>{esc(title)}</h3>']
        if not os.path.isdir(v.folder):
            out.append(self.gaps.add(f"Variant {v.name}", f"not run (no folder "
                                     f"{relative(v.folder, lay.folder)})"))
            return "\n".join(out) + "</section>"
        results, _ = read_json(v.results)
        if isinstance(results, dict):
            marks = results.get("marks") or []
            self.marks.update(marks)
            if marks:
                out.append("<p class=small>Marks: " + esc("; ".join(marks)) + "</p>")
        config, key = self._config_of(v)
        # the video: one training run serves every variant with its key; shown once
        recon = None
        if key and key in self.shown_runs:
            anchor, name = self.shown_runs[key]
            out.append(f'<p>Reconstructions: the same training run as <a href="#{esc(anchor)}">'
                       f'{esc(name)}</a> (one run serves every variant with equal settings and '
                       f'data); its video is shown there.</p>')
        else:
            try:
                recon = read_reconstructions(v.recon)
            except DataError as exc:
                state = "missing" if not os.path.exists(v.recon) else "damaged"
                out.append(self.gaps.add(f"Video of {v.name}",
                                         f"{relative(v.recon, lay.folder)} is {state} ({exc})"))
            if recon is not None:
                self.marks.update(recon.marks)
                out.append(self._video(v, recon))
                if key:
                    self.shown_runs[key] = (v.anchor, v.name)
        out.append(self._curves(v, key))
        out.append(self._strip(v, recon))
        if lay.control_root and v.experiment == "fixed_rf":
            self._control_marks(v)
        return "\n".join(out) + "</section>"

    def _control_marks(self, v):
        from ..io.reconstructions import read_reconstructions

        path = self.layout.control(v)
        if path and os.path.exists(path):
            try:
                self.marks.update(read_reconstructions(path).marks)
            except DataError as exc:
                self.gaps.add("Time-shuffled control", f"{relative(path, self.layout.folder)} "
                                                       f"is damaged ({exc})")

    def _video(self, v, recon):
        from ..plotting import _img

        targets, images = recon["targets"], recon["reconstructions"]
        previews = recon["input_previews"]
        n = len(targets)
        shown = min(n, self.cap)
        size = targets.shape[-1]
        gap = 2
        panels = [np.stack([_img(t) for t in targets[:shown]]),
                  np.stack([_img(r) for r in images[:shown]])]
        labels = ["ground truth", "reconstruction"]
        if previews is not None:
            panels.append(np.asarray(previews[:shown], np.float32) / 255.0)
            labels.append("RFSImage input")
        frames = np.ones((shown, size, len(panels) * (size + gap) - gap, 3), np.float32)
        for k, panel in enumerate(panels):
            frames[:, :, k * (size + gap):k * (size + gap) + size] = panel
        tr = float(((recon.config.get("data") or {}).get("tr")) or 0.7)
        from ..io.video import encode_browser_video

        try:
            data, mime = encode_browser_video(frames, fps=1.0 / tr, crf=VIDEO_CRF)
        except DataError as exc:
            return self.gaps.add(f"Video of {v.name}", f"could not be encoded ({exc})")
        scale = max(1, int(round(PANEL_WIDTH / size)))
        width, height = frames.shape[2] * scale, frames.shape[1] * scale
        capped = (f"frames 1-{shown} of {n} test frames (the first {shown}: videos are capped at "
                  f"{self.cap} frames to keep this page small; the per-frame scores below "
                  f"cover every evaluated frame)" if shown < n else f"all {n} test frames")
        if shown < n:
            self.video_notes.append(f"Videos are capped at {self.cap} frames each.")
        columns = "".join(f'<div style="width:{size * scale + gap * scale}px">{esc(label)}</div>'
                          for label in labels)
        return (f'<div class="cols">{columns}</div>' +
                video_tag(data, mime, width, height, f"video {v.name}",
                          f"{v.name}: " + " | ".join(labels)) +
                f"<div class=small>{esc(capped)}; {1.0 / tr:.2f} frames per second "
                f"(one per TR of {tr:g} s); {mime.split('/')[1].upper()}, "
                f"{human_size(len(data))}.</div>")

    def _curves(self, v, key):
        lay = self.layout
        out = []
        if lay.kind == "demo" and v.experiment == "fixed_rf":
            out.append(self._figure_file(
                "Learning curves", "held-out two-way identification and PixCorr after every "
                "epoch, model and time-shuffled control",
                os.path.join(lay.folder, "learning_curves.png")))
        if v.kind != "train":
            out.append("<p class=small>Fitted in one step: no learning curve.</p>")
            return "\n".join(out)
        pointer, problem = read_json(v.training)
        if problem:
            return "\n".join(out + [self.gaps.add(
                f"Learning curves of {v.name}",
                f"{relative(v.training, lay.folder)} is {problem}")])
        log = os.path.normpath(os.path.join(v.folder, str(pointer.get("run", "")), "log.jsonl"))
        records, bad = [], 0
        if not os.path.exists(log):
            return "\n".join(out + [self.gaps.add(f"Learning curves of {v.name}",
                                                  f"{relative(log, lay.folder)} is missing")])
        with open(log) as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    if isinstance(record, dict) and isinstance(record.get("train"), dict):
                        records.append(record)
                        continue
                except ValueError:
                    pass
                bad += 1
        if bad or not records:
            out.append(self.gaps.add(f"Learning curves of {v.name}",
                                     f"{relative(log, lay.folder)} is damaged ({bad} unreadable "
                                     f"lines, {len(records)} readable)"))
            if not records:
                return "\n".join(out)
        epochs = [r.get("epoch", k + 1) for k, r in enumerate(records)]
        terms = sorted({t for r in records for t in r["train"]})
        charts = []
        for term in terms:
            series = {"training": (epochs, [r["train"].get(term, np.nan) for r in records])}
            if any(term in (r.get("test") or {}) for r in records):
                series["held-out"] = (epochs, [(r.get("test") or {}).get(term, np.nan)
                                               for r in records])
            charts.append(line_chart(series, width=290, height=150, x_label="epoch",
                                     title=f"loss: {term}"))
        seconds = sum(float(r.get("seconds", 0)) for r in records)
        out.append(f"<div class=small>Losses per epoch (mean over its iterations) of its training "
                   f"run {esc(key or '')}: {len(records)} epochs, {_duration(seconds)} of "
                   f"training. TensorBoard: <code>tensorboard --logdir "
                   f"{esc(os.path.dirname(log))}/tensorboard</code></div>")
        out.append('<div style="display:flex;flex-wrap:wrap;gap:6px">' + "".join(charts) +
                   "</div>")
        return "\n".join(out)

    def _strip(self, v, recon):
        lay = self.layout
        name = f"Per-frame scores of {v.name}"
        if not os.path.exists(v.per_frame):
            return self.gaps.add(name, f"{relative(v.per_frame, lay.folder)} is missing")
        try:
            with open(v.per_frame, newline="") as handle:
                rows = list(csv.DictReader(handle))
            index = np.array([int(r["index"]) for r in rows])
            runs = np.array([int(r["run"]) for r in rows])
            columns = {"PixCorr (valid field)": "pixcorr_disc",
                       "two-way identification, AlexNet pool5": "twoway_alexnet5"}
            values = {label: np.array([float(r[key]) for r in rows])
                      for label, key in columns.items() if rows and key in rows[0]}
            if not rows or not values:
                raise ValueError("no rows, or neither pixcorr_disc nor twoway_alexnet5")
        except (OSError, KeyError, ValueError, TypeError, csv.Error) as exc:
            return self.gaps.add(name, f"{relative(v.per_frame, lay.folder)} is damaged "
                                       f"({type(exc).__name__}: {str(exc)[:120]})")
        names = list(recon.run_names) if recon is not None else []
        starts = [k for k in range(len(runs)) if k == 0 or runs[k] != runs[k - 1]]
        vlines = [(index[k], names[runs[k]] if runs[k] < len(names) else f"clip {runs[k]}")
                  for k in starts]
        chart = line_chart({label: (index, y) for label, y in values.items()}, width=1100,
                           height=190, x_label="test frame", vlines=vlines,
                           hlines=[(0.5, "chance (two-way)"), (0.0, "0")],
                           title=f"{v.label}: per test frame")
        clip_rows = []
        for k, start in enumerate(starts):
            stop = starts[k + 1] if k + 1 < len(starts) else len(runs)
            clip_rows.append([vlines[k][1], f"{index[start]}-{index[stop - 1]}"] +
                             [f"{np.nanmean(y[start:stop]):.3f}" for y in values.values()])
        return (chart + table(["test clip", "frames"] + [f"mean {label}" for label in values],
                              clip_rows, left=2))


def _table_names(experiment):
    group = EXPERIMENTS[experiment].table_group
    if group not in TABLE_GROUPS:
        return f"Experiment {EXPERIMENTS[experiment].number} (no table)"
    number = TABLE_GROUPS[group][0]
    return f"Tables {number}-{number + 1}"


def _learning_check(check):
    """The learning check: its verdict, every criterion, and the table of scores."""
    from ..evaluation.learning_check import format_learning_check

    try:
        learns = check["passed"]
        verdict = (f'<span class="verdict {"good" if learns else "bad"}">'
                   f'{"learns from the brain signal" if learns else "did NOT learn from the brain signal"}'
                   f"</span> ")
        floors = check.get("floors_passed")
        if floors is not None:
            verdict += (f'<span class="verdict {"good" if floors else "neutral"}">'
                        f'{"above both floors" if floors else "not above every floor"}</span>')
        rows = [(c["name"].replace("_", " "), "passed" if c["passed"] else "FAILED",
                 "floor (information)" if c.get("floor") else "learning (the verdict)",
                 c["statement"]) for c in check["criteria"]]
        field = check.get("field") or {}
        twoway = check.get("twoway") or {}
        score_rows = []
        for who in ("model", "control", "ridge", "mean_frame"):
            if who not in field and who not in twoway:
                continue
            cells = [(field.get(who) or {}).get(k, {}).get("mean") for k in ("pixcorr_disc",
                                                                             "ssim_disc")]
            cells += [(twoway.get(who) or {}).get(k, {}).get("mean")
                      for k in ("twoway_alexnet2", "twoway_alexnet5", "twoway_pixels")]
            score_rows.append([who.replace("_", " ")] + ["" if c is None else f"{c:.3f}"
                                                         for c in cells])
        try:
            text = format_learning_check(check)
        except (KeyError, TypeError, ValueError):
            text = ""
    except (KeyError, TypeError) as exc:
        raise DataError(f"the learning check lacks {exc}") from None
    return (f"<p>{verdict}</p><p class=small>{check.get('n_frames', '?')} held-out test frames; "
            f"alpha {check.get('alpha', 0.05)}; chance 0.5.</p>" +
            table(["criterion", "result", "kind", "statement"], rows, left=4) +
            table(["", "PixCorr (valid field)", "SSIM (valid field)", "2-way AlexNet pool2",
                   "2-way AlexNet pool5", "2-way pixels"], score_rows) +
            (f"<details><summary>as printed at the end of the run</summary><pre>{esc(text)}"
             f"</pre></details>" if text else ""))


def _duration(seconds):
    seconds = float(seconds)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h ({seconds:.0f} s)"
    if seconds >= 90:
        return f"{seconds / 60:.1f} min ({seconds:.0f} s)"
    return f"{seconds:.1f} s"


def _flat(config, prefix=""):
    out = {}
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _same(a, b):
    norm = (lambda x: list(x) if isinstance(x, (list, tuple)) else x)
    return norm(a) == norm(b)


def _show(value):
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
