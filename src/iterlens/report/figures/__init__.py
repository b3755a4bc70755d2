"""Figures, each drawn from the table(s) a rule wrote; nothing is computed here but means.

``draw(name, inputs, out)`` dispatches to the function registered for ``name``
(:mod:`~iterlens.report.figures.registry`); :func:`draw_family` draws every per-model figure
of one studied model. The modules, by what they draw:

- :mod:`~iterlens.report.figures.family`: which figures each studied model gets;
- :mod:`~iterlens.report.figures.training`: the reference LM's loss, the lenses' convergence;
- :mod:`~iterlens.report.figures.lens_curves`: the lenses by layer, the shared lens,
  prediction depth, ranks;
- :mod:`~iterlens.report.figures.transfer`: a model's transfer penalties, layer by layer;
- :mod:`~iterlens.report.figures.paper_lenses`, :mod:`~iterlens.report.figures.paper_transfer`,
  :mod:`~iterlens.report.figures.controls`: the paper's main figures (conventions in
  :mod:`~iterlens.report.figures.paper_axes`) and the controls' own figures.
"""

import matplotlib

matplotlib.use("Agg")  # before any module of the package imports pyplot

from iterlens.report.figures.controls import paper_controls, paper_dose  # noqa: E402
from iterlens.report.figures.family import (  # noqa: E402
    FAMILY_FIGURES,
    draw_family,
    family_figures,
)
from iterlens.report.figures.lens_curves import (  # noqa: E402
    lens_curves,
    prediction_depth,
    ranks,
    shared_lens,
)
from iterlens.report.figures.paper_lenses import paper_lenses, paper_shared  # noqa: E402
from iterlens.report.figures.paper_transfer import paper_transfer  # noqa: E402
from iterlens.report.figures.registry import (  # noqa: E402
    FIGURES,
    PAPER_DPI,
    PAPER_FIGURES,
    PAPER_RC,
    TEXT_WIDTH_IN,
    draw,
    figure,
)
from iterlens.report.figures.training import fit, lm_training  # noqa: E402
from iterlens.report.figures.transfer import transfer  # noqa: E402

__all__ = [
    "FAMILY_FIGURES",
    "FIGURES",
    "PAPER_DPI",
    "PAPER_FIGURES",
    "PAPER_RC",
    "TEXT_WIDTH_IN",
    "draw",
    "draw_family",
    "family_figures",
    "figure",
    "fit",
    "lens_curves",
    "lm_training",
    "paper_controls",
    "paper_dose",
    "paper_lenses",
    "paper_shared",
    "paper_transfer",
    "prediction_depth",
    "ranks",
    "shared_lens",
    "transfer",
]
