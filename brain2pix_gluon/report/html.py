"""The pieces of the results page: escaping, tables, gaps, inline pictures and charts.

Everything here returns HTML text that needs nothing outside the page: pictures are data URIs,
charts are inline SVG, the style sheet is in the page, and there is no script.
"""

import base64
import html
import io
import os

import numpy as np

__all__ = ["esc", "Gaps", "table", "image_uri", "png_file_uri", "array_png_uri", "video_tag",
           "line_chart", "human_size", "relative", "STYLE"]

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
     margin:0 auto;max-width:1200px;padding:0 24px 48px;color:#1b1b1b;background:#fff;
     line-height:1.4}
h1{font-size:26px;margin:18px 0 6px} h2{margin-top:36px;border-bottom:2px solid #ddd}
h3{margin:22px 0 6px}
.marks{margin:10px 0 14px}
.mark{display:block;font-size:24px;font-weight:700;color:#fff;background:#b3261e;
      padding:6px 14px;margin:6px 0;border-radius:6px;letter-spacing:.02em}
.mark.profile{background:#7a4d00}.mark.control{background:#3949ab}
.mark.none{background:#2e7d32}
.verdict{font-size:20px;font-weight:700;padding:6px 12px;border-radius:6px;display:inline-block}
.good{background:#e3f4e1;color:#1b5e20}.bad{background:#fde7e4;color:#8c1d18}
.neutral{background:#eef0f4;color:#333}
table{border-collapse:collapse;margin:8px 0 4px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.caption{font-size:13px;font-weight:600;max-width:1100px}
.notes{font-size:12px;color:#444;margin:2px 0 10px}
.gap{border:2px dashed #b3261e;background:#fff4f2;color:#8c1d18;padding:8px 12px;margin:8px 0;
     font-weight:600}
.gaplist li{color:#8c1d18}
.kv td{text-align:left}.kv td:first-child{width:130px;font-weight:600}
figure{margin:10px 0}figcaption{font-size:12px;color:#444}
img.fig{max-width:100%;height:auto;border:1px solid #ddd}
.pixelated{image-rendering:pixelated}
.cols{display:flex;gap:2px;font-size:12px;font-weight:600}
.variant{border-top:1px solid #ddd;margin-top:26px}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto;white-space:pre-wrap}
.small{font-size:12px;color:#555}
svg text{font-family:inherit}
"""


def esc(text):
    """Text as HTML (quotes included)."""
    return html.escape(str(text), quote=True)


class Gaps:
    """The damaged or missing inputs of a page, each shown where it belongs and listed.

    Each gap is one line, ``"<what the page lacks>: <which file and why>"``, e.g.
    ``"Table 5: results.json of variant no_feature is damaged (...)"``.
    """

    def __init__(self):
        self.items = []

    def add(self, where, why):
        """Record a gap and return the HTML box that shows it in place."""
        self.items.append(f"{where}: {why}")
        anchor = f"gap-{len(self.items)}"
        return f'<div class="gap" id="{anchor}">Gap &mdash; {esc(where)}: {esc(why)}</div>\n'

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def table(header, rows, left=1, cls=""):
    """An HTML table; ``left`` first columns are left-aligned; cells are escaped unless they are
    ``("html", text)`` pairs."""
    def cell(tag, value, k):
        text = value[1] if isinstance(value, tuple) and value[0] == "html" else esc(value)
        return f'<{tag}{" class=l" if k < left else ""}>{text}</{tag}>'

    out = [f'<table class="{cls}">' if cls else "<table>"]
    if header:
        out.append("<tr>" + "".join(cell("th", h, k) for k, h in enumerate(header)) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(cell("td", v, k) for k, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def image_uri(data, mime):
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_file_uri(path):
    """A picture file as a data URI, checked by decoding it.

    Returns
    -------
    uri : str
    size : (int, int)
        Width and height.

    Raises
    ------
    OSError
        When the file is missing or cannot be read; ValueError (PIL's) when it does not decode.
    """
    from PIL import Image, ImageFile

    with open(path, "rb") as handle:
        data = handle.read()
    # gluoncv switches on Pillow's tolerance of truncated files for everyone; not here
    tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()      # the chunks' checksums
        with Image.open(io.BytesIO(data)) as image:
            image.load()        # every pixel: a truncated file fails here
            size = image.size
            mime = Image.MIME.get(image.format, "image/png")
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
    return image_uri(data, mime), size


def array_png_uri(array):
    """An (H, W, 3) uint8 array as a PNG data URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buffer, format="PNG", optimize=True)
    return image_uri(buffer.getvalue(), "image/png")


def video_tag(data, mime, width, height, name, title):
    """A playable inline video (``<video>`` for MP4, an animated ``<img>`` for a GIF)."""
    uri = image_uri(data, mime)
    if mime.startswith("video/"):
        return (f'<video class="pixelated" data-name="{esc(name)}" controls loop muted '
                f'preload="auto" width="{width}" height="{height}" title="{esc(title)}" '
                f'src="{uri}"></video>\n')
    return (f'<img class="pixelated" data-name="{esc(name)}" alt="{esc(title)}" '
            f'width="{width}" height="{height}" src="{uri}">\n')


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def line_chart(series, width=1000, height=170, x_label="", hlines=(), vlines=(), y_range=None,
               title=""):
    """An inline SVG line chart.

    Parameters
    ----------
    series : dict of str -> (x, y)
        Label -> x values and y values (NaN breaks are drawn through).
    hlines : sequence of (float, str)
        Horizontal reference lines (value, label), e.g. chance.
    vlines : sequence of (float, str)
        Vertical markers (x, label), e.g. where a test clip starts.
    y_range : (float, float), optional

    Returns
    -------
    str
    """
    left, right, top, bottom = 48, 10, 20, 28
    xs = [np.asarray(x, float) for x, _ in series.values()]
    ys = [np.asarray(y, float) for _, y in series.values()]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys] + [np.array([v for v, _ in hlines])])
    if not len(finite):
        finite = np.array([0.0, 1.0])
    lo, hi = y_range if y_range else (float(finite.min()), float(finite.max()))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x_all = np.concatenate(xs) if xs else np.array([0.0, 1.0])
    x0, x1 = float(x_all.min()), float(x_all.max())
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 0.5, x1 + 0.5

    def px(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y):
        return top + (hi - y) / (hi - lo) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" '
           f'height="{height - top - bottom}" fill="#fafafa" stroke="#ccc"/>']
    for value in (lo, (lo + hi) / 2, hi):
        out.append(f'<text x="{left - 4}" y="{py(value) + 4:.1f}" font-size="10" '
                   f'text-anchor="end">{value:.3g}</text>')
    for x, label in vlines:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{height - bottom}" '
                   f'stroke="#999" stroke-dasharray="2,2"><title>{esc(label)}</title></line>')
        out.append(f'<text x="{px(x) + 2:.1f}" y="{top + 10}" font-size="9" fill="#666">'
                   f'{esc(label)[:40]}</text>')
    for value, label in hlines:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{py(value):.1f}" '
                   f'y2="{py(value):.1f}" stroke="#777" stroke-dasharray="5,3"/>')
        out.append(f'<text x="{width - right - 2}" y="{py(value) - 3:.1f}" font-size="9" '
                   f'text-anchor="end" fill="#555">{esc(label)}</text>')
    # legend entries side by side, leaving room for the x label at the right
    spacing = max(80, min(230, (width - left - 60) // max(len(series), 1)))
    for k, ((label, _), x, y) in enumerate(zip(series.items(), xs, ys)):
        keep = np.isfinite(y)
        if not keep.any():
            continue
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x[keep], y[keep]))
        colour = _COLOURS[k % len(_COLOURS)]
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.3" '
                   f'points="{points}"><title>{esc(label)}</title></polyline>')
        if keep.sum() <= 60:
            out += [f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="2.2" fill="{colour}">'
                    f'<title>{esc(label)}: {b:.3f} at {a:g}</title></circle>'
                    for a, b in zip(x[keep], y[keep])]
        out.append(f'<text x="{left + 6 + spacing * k}" y="{height - 6}" font-size="11" '
                   f'fill="{colour}">&#9644; {esc(label)}</text>')
    out.append(f'<text x="{width - right}" y="{height - 6}" font-size="10" text-anchor="end" '
               f'fill="#555">{esc(x_label)}</text>')
    if title:
        out.append(f'<text x="{left}" y="13" font-size="12" font-weight="600">{esc(title)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def human_size(n_bytes):
    """``1.2 MB`` style size."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000.0
    return f"{n_bytes:.1f} GB"


def relative(path, root):
    """``path`` relative to ``root`` (for messages that name files inside the folder)."""
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path
