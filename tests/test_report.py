"""``brain2pix report``: the results page of a tiny demo, looked at in a real headless browser
(every picture and video decodes, nothing is fetched from elsewhere, the marks are on the first
screen, which is not blank), its videos decoded and compared with the reconstruction files, and
every damaged or missing input shown as a named gap while the rest renders."""

import base64
import contextlib
import html.parser
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import browser
from conftest import TINY, layered

FAST = layered(TINY, ["simulation.volumes_per_run=40", "train.epochs=2",
                     "train.max_steps_per_epoch=2", "evaluation.max_frames=6",
                     "evaluation.batch_size=6"])
MODEL = os.path.join("results", "fixed_rf", "b2p_fixedrf")
BROWSER = browser.find_browser()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="SKIPPED the results page's browser test: no headless browser on "
    "this machine (Debian: apt-get install chromium; or set BRAIN2PIX_BROWSER)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A tiny demo's output folder (model, control, ridge floor, figures, learning check)."""
    from brain2pix_gluon.cli import main

    out = tmp_path_factory.mktemp("report") / "demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--out", str(out), "--weights", "random", "--no-progress"] + FAST)
    assert code in (0, 3)                # 3: this tiny model did not learn; the page says so
    # make demo writes the page at the end and prints its path first
    assert printed.getvalue().startswith(f"report          {out / 'report.html'}")
    assert (out / "report.html").stat().st_size > 0
    return out


@pytest.fixture
def copy(demo, tmp_path):
    """A copy of the demo's outputs to damage (without the cached data and checkpoints)."""
    target = tmp_path / "demo"
    shutil.copytree(demo, target, ignore=shutil.ignore_patterns("data", "checkpoints"))
    return target


def _report(folder, *extra, capsys=None):
    from brain2pix_gluon.cli import main

    code = main(["report", str(folder), *extra])
    captured = capsys.readouterr() if capsys else None
    return code, captured


class _Refs(html.parser.HTMLParser):
    """Every URL-bearing attribute, and the tags, of a page."""

    def __init__(self):
        super().__init__()
        self.urls, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "poster", "srcset", "data", "action", "background",
                        "formaction", "xlink:href"):
                self.urls.append((tag, name, value or ""))


def _media(page, kind):
    """The decoded bytes of the page's data URIs of one MIME type, in order."""
    return [base64.b64decode(m) for m in re.findall(rf'src="data:{kind};base64,([^"]+)"', page)]


def _decode_mp4(data, tmp_path):
    """Frames (n, H, W, 3) uint8 of an MP4, decoded by ffmpeg itself."""
    import imageio_ffmpeg

    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path),
                            "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                           check=True)
    size = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)],
                          capture_output=True, text=True).stderr
    width, height = map(int, re.search(r", (\d+)x(\d+)", size).groups())
    return np.frombuffer(probe.stdout, np.uint8).reshape(-1, height, width, 3)


# ---------------------------------------------------------------- the page, without a browser
def test_demo_page_is_self_contained_and_shows_the_run(demo, tmp_path, capsys):
    from brain2pix_gluon.io.reconstructions import read_reconstructions
    from brain2pix_gluon.provenance import DEMO_RUN, TIME_SHUFFLED_CONTROL

    out = tmp_path / "page.html"
    code, captured = _report(demo, "--out", str(out), capsys=capsys)
    assert code == 0 and captured.err == ""                       # no gap
    assert captured.out.startswith(f"report          {out}")
    page = out.read_text()
    assert out.stat().st_size < 2_000_000
    refs = _Refs()
    refs.feed(page)
    # nothing outside the file: every reference a data URI or an in-page anchor; no script,
    # style sheet, frame or object of elsewhere
    assert refs.urls and all(v.startswith(("data:", "#")) for _, _, v in refs.urls), \
        [u for u in refs.urls if not u[2].startswith(("data:", "#"))]
    assert not {"script", "link", "iframe", "object", "embed"} & set(refs.tags)
    assert "url(" not in page and "@import" not in page
    for mark in (DEMO_RUN, TIME_SHUFFLED_CONTROL, "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)"):
        assert mark.replace("'", "&#x27;") in page
    # the control mark says which run it marks: the demo's model is not a control
    assert f"{TIME_SHUFFLED_CONTROL}: the control run beside the model" in page
    for text in ("Table 1.", "Table 2.", "Fig. 3", "Floors", "Learning curves",
                 "Learning check", "Settings that differ from the paper profile"):
        assert text in page, text
    # the video: ground truth | reconstruction | RFSImage input of every test frame, in order
    recon = read_reconstructions(str(demo / MODEL / "recon" / "reconstructions.h5"))
    [video] = _media(page, "video/mp4")
    frames = _decode_mp4(video, tmp_path).astype(np.float32) / 255.0
    n, size = len(recon["targets"]), recon["targets"].shape[-1]
    assert frames.shape == (n, size, 3 * size + 4, 3)
    truth = recon["targets"].transpose(0, 2, 3, 1)
    model = recon["reconstructions"].transpose(0, 2, 3, 1)
    shown = {"ground truth": frames[:, :, :size], "reconstruction": frames[:, :, size + 2:2 * size + 2],
             "input": frames[:, :, 2 * size + 4:]}
    error = {k: np.abs(v - truth).mean() for k, v in shown.items()}
    assert error["ground truth"] < 0.05 < error["reconstruction"], error
    assert np.abs(shown["reconstruction"] - model).mean() < 0.05
    assert np.abs(shown["input"] - recon["input_previews"] / 255.0).mean() < 0.08


def test_videos_are_capped_and_the_page_says_so(demo, tmp_path):
    from brain2pix_gluon.report import write_report

    result = write_report(demo, tmp_path / "page.html", max_video_frames=5)
    page = open(result.path).read()
    [video] = _media(page, "video/mp4")
    assert len(_decode_mp4(video, tmp_path)) == 5
    assert "frames 1-5 of 27 test frames" in page and "capped at 5 frames" in page
    assert result.size < write_report(demo, tmp_path / "full.html").size


# ---------------------------------------------------------------- gaps
def _damage_json(path):
    path.write_text('{"label": "B2P-FixedRF", "metrics": ')


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


GAPS = {
    "results.json damaged": (lambda d: _damage_json(d / MODEL / "eval" / "results.json"),
                             "Tables 1-2: results.json of variant b2p_fixedrf is damaged "
                             "(cannot be read as JSON", ["Fig. 3", "video/mp4"]),
    "results.json missing": (lambda d: os.remove(d / MODEL / "eval" / "results.json"),
                             "Tables 1-2: results.json of variant b2p_fixedrf is missing",
                             ["Fig. 3", "video/mp4"]),
    "reconstructions damaged": (lambda d: _truncate(d / MODEL / "recon" / "reconstructions.h5"),
                                "Video of fixed_rf / B2P-FixedRF: results/fixed_rf/b2p_fixedrf/"
                                "recon/reconstructions.h5 is damaged", ["Table 1.", "Fig. 3"]),
    "figure missing": (lambda d: os.remove(d / "fig3_consecutive_frames.png"),
                       "Fig. 3: fig3_consecutive_frames.png is missing",
                       ["Table 1.", "video/mp4", 'data-name="Floors"']),
    "figure damaged": (lambda d: _truncate(d / "fig3_consecutive_frames.png"),
                       "Fig. 3: fig3_consecutive_frames.png is damaged (it does not decode",
                       ["Table 1.", "video/mp4"]),
    "summary damaged": (lambda d: _damage_json(d / "demo_summary.json"),
                        "Provenance: demo_summary.json is damaged",
                        ["Table 1.", "video/mp4", "Fig. 3", "DEMO RUN"]),
    "summary missing (a demo stopped before its end)": (
        lambda d: os.remove(d / "demo_summary.json"),
        "Provenance: demo_summary.json is missing", ["Table 1.", "video/mp4", "Fig. 3"]),
    "per-frame scores damaged": (lambda d: (d / MODEL / "eval" / "per_frame.csv").write_text(
                                     "index,run\n0,zero\n"),
                                 "Per-frame scores of fixed_rf / B2P-FixedRF: "
                                 "results/fixed_rf/b2p_fixedrf/eval/per_frame.csv is damaged",
                                 ["Table 1.", "video/mp4"]),
    "training log missing": (lambda d: [os.remove(p) for p in
                                        (d / "results" / "trainings").glob("*/log.jsonl")],
                             "Learning curves of fixed_rf / B2P-FixedRF: ", ["video/mp4"]),
}


@pytest.mark.parametrize("case", sorted(GAPS))
def test_a_damaged_or_missing_input_is_a_named_gap_and_the_rest_renders(copy, case, capsys):
    damage, gap, still = GAPS[case]
    damage(copy)
    code, captured = _report(copy, capsys=capsys)
    assert code == 0
    assert f"brain2pix report: gap: {gap}" in captured.err
    page = (copy / "report.html").read_text()
    assert 'class="gap"' in page and gap.replace("'", "&#x27;") in page
    assert "damaged or missing inputs" in page          # the headline and the list at the top
    for text in still:
        assert text in page, text


def test_gaps_of_a_results_root_name_the_table_and_variant(demo, tmp_path, capsys):
    """A results root of `brain2pix experiment` runs: FixedRF fine, the ablation's "no feature"
    with a damaged results.json, its other variants not run."""
    root = tmp_path / "results"
    shutil.copytree(demo / "results", root)
    broken = root / "ablation" / "no_feature" / "eval"
    broken.mkdir(parents=True)
    (broken / "results.json").write_text("{")
    code, captured = _report(root, capsys=capsys)
    assert code == 0
    assert "gap: Tables 5-6: results.json of variant no_feature is damaged (cannot be read as " \
           "JSON" in captured.err
    assert "gap: Variant ablation / Full: not run" in captured.err
    page = (root / "report.html").read_text()
    assert "Table 1." in page and 'data-name="Fig. 3"' in page     # drawn from the files
    assert "Fig. 5" not in page                  # the ROI experiment is not in this root


def test_one_experiment_folder_is_a_run_too(demo, tmp_path):
    from brain2pix_gluon.report import write_report

    result = write_report(demo / "results" / "fixed_rf", tmp_path / "page.html")
    assert result.kind == "experiment" and result.gaps == []
    assert "Table 1." in open(result.path).read()


@pytest.mark.parametrize("what", ["empty", "missing", "other files"])
def test_a_folder_without_a_run_exits_2(tmp_path, capsys, what):
    folder = tmp_path / "nothing"
    if what != "missing":
        folder.mkdir()
    if what == "other files":
        (folder / "notes.txt").write_text("hello")
        (folder / "roi").mkdir()
    code, captured = _report(folder, capsys=capsys)
    assert code == 2
    assert "holds no run of brain2pix" in captured.err or "no such folder" in captured.err
    assert not (folder / "report.html").exists()


# ---------------------------------------------------------------- in a real browser
@needs_browser
def test_the_demo_page_in_a_headless_browser(demo, tmp_path):
    from PIL import Image

    from brain2pix_gluon.provenance import DEMO_RUN, TIME_SHUFFLED_CONTROL
    from brain2pix_gluon.report import write_report

    page = write_report(demo, tmp_path / "report.html").path
    found = browser.probe(BROWSER, page)
    # every picture and video decodes, and the ones the demo must show are there
    assert browser.undecoded(found) == []
    names = {i["name"] for i in found["images"]} | {v["name"] for v in found["videos"]}
    assert {"Fig. 3", "Floors", "Learning curves", "video fixed_rf / B2P-FixedRF"} <= names
    [video] = found["videos"]
    assert video["duration"] == pytest.approx(27 * 0.7, abs=0.5)
    # nothing was fetched from anywhere (data URIs are no requests)
    assert found["resources"] == []
    # the marks are shown, in their own block on the first screen, with the verdict
    for mark in (DEMO_RUN, TIME_SHUFFLED_CONTROL, "RANDOM FEATURE-LOSS WEIGHTS (VGG-19)",
                 "RANDOM EVALUATION WEIGHTS (AlexNet, C3D)"):
        assert mark in found["marks_text"], mark
    assert 0 <= found["marks_top"] < found["marks_bottom"] <= found["viewport"]
    assert "Learning check: did NOT learn" in found["text"] or \
        "Learning check: learns" in found["text"]
    # the first screen is not blank: many colours, and the marks' red band near the top
    shot = browser.screenshot(BROWSER, page, str(tmp_path / "first_screen.png"))
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert pixels.shape[:2] == (browser.WINDOW[1], browser.WINDOW[0])
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red[:450].mean() > 0.02
    if os.environ.get("BRAIN2PIX_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["BRAIN2PIX_KEEP_SCREENSHOT"])


@needs_browser
def test_the_browser_check_sees_a_removed_figure_and_broken_media(copy, tmp_path):
    """The checks above can fail: a figure file removed leaves a gap and no Fig. 3 picture; a
    picture or video whose bytes are broken is reported as not decoded."""
    from brain2pix_gluon.report import write_report

    os.remove(copy / "fig3_consecutive_frames.png")
    page = write_report(copy, tmp_path / "gap.html").path
    found = browser.probe(BROWSER, page)
    assert "Fig. 3" not in {i["name"] for i in found["images"]}
    assert "Fig. 3: fig3_consecutive_frames.png is missing" in found["text"]

    text = open(page).read()
    png = re.search(r'data-name="Floors"[^>]*src="data:image/png;base64,([^"]+)"', text).group(1)
    mp4 = re.search(r'src="data:video/mp4;base64,([^"]+)"', text).group(1)
    # a PNG signature followed by zeros: no valid IHDR, so no browser can decode it (a cut-off
    # PNG is not reliably broken: browsers draw the rows they have)
    broken = text.replace(png, base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(200)).decode()).replace(
        mp4, base64.b64encode(
        b"\x00\x00\x00\x18ftypmp42" + bytes(200)).decode())
    broken_page = tmp_path / "broken.html"
    broken_page.write_text(broken)
    assert set(browser.undecoded(browser.probe(BROWSER, str(broken_page)))) == \
        {"Floors", "video fixed_rf / B2P-FixedRF"}
