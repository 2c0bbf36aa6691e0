"""Look at an HTML page the way a person does: in a real headless browser (Debian's chromium).

:func:`probe` loads a copy of the page with a small script added at its end, waits until every
picture and video has loaded (or failed), and returns what the browser made of them: each
``<img>``'s natural size, each ``<video>``'s decoded size and error, every resource the page
asked the network or the file system for (resource timing; data URIs are not requests), the
rendered text (``innerText``: only what is shown), the marks' own text and where they are on
the first screen.
:func:`screenshot` photographs the first screen.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]
WINDOW = (1280, 900)

_PROBE = """
<script>
(function () {
  function media() {
    var out = {images: [], videos: []};
    document.querySelectorAll('img').forEach(function (im) {
      out.images.push({name: im.getAttribute('data-name') || im.alt, complete: im.complete,
                       width: im.naturalWidth, height: im.naturalHeight});
    });
    document.querySelectorAll('video').forEach(function (v) {
      out.videos.push({name: v.getAttribute('data-name'), width: v.videoWidth,
                       height: v.videoHeight, duration: v.duration, ready: v.readyState,
                       error: v.error ? v.error.code : null});
    });
    return out;
  }
  function finish() {
    var out = media();
    out.resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
    out.text = document.body.innerText;
    var marks = document.querySelector('.marks');
    out.marks_top = marks ? marks.getBoundingClientRect().top : null;
    out.marks_bottom = marks ? marks.getBoundingClientRect().bottom : null;
    out.marks_text = marks ? marks.innerText : '';
    out.viewport = window.innerHeight;
    var pre = document.createElement('pre');
    pre.id = 'browser-probe';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  window.addEventListener('load', function () {
    var waits = [];
    document.querySelectorAll('video').forEach(function (v) {
      if (v.readyState >= 1 || v.error) return;
      waits.push(new Promise(function (done) {
        v.addEventListener('loadedmetadata', done); v.addEventListener('error', done);
      }));
    });
    var timeout = new Promise(function (done) { setTimeout(done, 20000); });
    Promise.race([Promise.all(waits), timeout]).then(finish);
  });
})();
</script>
"""


def find_browser():
    """The headless browser to use: $BRAIN2PIX_BROWSER, else chromium (Debian) or Chrome on
    PATH; None when there is none."""
    if os.environ.get("BRAIN2PIX_BROWSER"):
        return os.environ["BRAIN2PIX_BROWSER"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser, args, timeout=120):
    with tempfile.TemporaryDirectory(prefix="brain2pix-browser-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def probe(browser, page_path):
    """What the browser made of the page's pictures, videos, requests and text (a dict)."""
    with open(page_path, encoding="utf-8") as handle:
        text = handle.read()
    if "</body>" not in text:
        raise AssertionError(f"{page_path}: no </body>")
    with tempfile.TemporaryDirectory(prefix="brain2pix-probe-") as folder:
        probed = os.path.join(folder, "page.html")
        with open(probed, "w", encoding="utf-8") as handle:
            handle.write(text.replace("</body>", _PROBE + "</body>"))
        result = _run(browser, [f"--window-size={WINDOW[0]},{WINDOW[1]}",
                                "--virtual-time-budget=30000", "--dump-dom",
                                "file://" + probed])
    found = re.search(r'<pre id="browser-probe">(.*?)</pre>', result.stdout, re.S)
    if not found:
        raise AssertionError(f"the browser gave no probe result (exit {result.returncode}): "
                             f"{result.stderr[-2000:]}")
    import html

    return json.loads(html.unescape(found.group(1)))


def undecoded(found):
    """Names of the pictures and videos the browser could not decode."""
    bad = [i["name"] for i in found["images"] if not (i["width"] > 0 and i["height"] > 0)]
    bad += [v["name"] for v in found["videos"]
            if not (v["width"] > 0 and v["height"] > 0) or v["error"] is not None]
    return bad


def screenshot(browser, page_path, out_png):
    """A PNG of the first screen (``WINDOW``) of the page."""
    result = _run(browser, [f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={out_png}",
                            "file://" + os.path.abspath(page_path)])
    if not os.path.exists(out_png):
        raise AssertionError(f"no screenshot (exit {result.returncode}): {result.stderr[-2000:]}")
    return out_png
