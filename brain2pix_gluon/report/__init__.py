"""The results page of a run: ``brain2pix report RESULTS_DIR`` (one self-contained HTML file).

It works for a demo output, a science run (``brain2pix experiment all``), a results root of
``brain2pix experiment NAME`` runs and one experiment's folder, and shows, in this order:

* provenance in large type (the marks of :mod:`brain2pix_gluon.provenance`, the profile), then
  the package version and git commit, the machine and MXNet build, the wall times and every
  setting that differs from the paper profile;
* the findings table (a science run) and the learning check with its floors (demo, science);
* Tables 1-8 with their SEM, ``*`` marks and binomial tests (:mod:`~.experiments.tables`);
* Figs. 3-6 and the floors figure (the run's files, or drawn from the reconstructions);
* per variant: ground truth | reconstruction | RFSImage input as one playable video, the
  learning curves, and a per-frame strip of PixCorr and two-way identification.

A damaged or missing input is a named, visible gap where it belongs; the rest still renders.
Pictures are data URIs, videos H.264 MP4 data URIs (an animated GIF without ffmpeg); there is no
script and no request to anywhere. Videos are capped at :data:`~.page.MAX_VIDEO_FRAMES` frames
each, so a run at the paper's scale still gives a page that can be e-mailed; the page says so.
"""

from .layout import NoRunError, find_layout
from .page import MAX_VIDEO_FRAMES, REPORT_NAME, ReportResult, build_report, write_report

__all__ = ["write_report", "build_report", "find_layout", "NoRunError", "ReportResult",
           "MAX_VIDEO_FRAMES", "REPORT_NAME"]
