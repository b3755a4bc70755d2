"""iterlens: does a transformer refine one prediction layer by layer?

The package, by subsystem (each a subpackage; the workflow in ``workflow/rules`` calls the
``iterlens`` command line, one command per rule):

- :mod:`iterlens.artifacts`: every artifact file name and path pattern (library and workflow).
- :mod:`iterlens.config`, :mod:`iterlens.io`: the validated config; atomic file output.
- :mod:`iterlens.data`: the text corpus and tokens (``text``), the image datasets (``images``).
- :mod:`iterlens.models`: the table of studied models (``studied``), the reference LM and HF
  causal LMs (``lm``), the Inception-style CNN twins (``cnn``), the one training loop
  (``training``), ``families``, one adapter per architecture family (where it keeps its blocks,
  norms, embeddings, attention and FFN), and GGUF files (``gguf``).
- :mod:`iterlens.probing`: a probed model's readout, its sharded activation store, extraction,
  lenses, metrics and transfer; one implementation for the LM and the CNN.
- :mod:`iterlens.report`: summary tables, figures, the paper's values and the README block.
- :mod:`iterlens.vocab`: the vocabulary-space analysis and its pages.
- :mod:`iterlens.hub`: the Hugging Face Hub release (stage, push) and loading released lenses.
- :mod:`iterlens.cli`: the command line, one module per group of commands.

``iterlens.load_released_lens(repo_id_or_path, model)`` loads a released lens (ours, or any lens in
the ``tuned_lens`` layout) from a folder or the Hugging Face Hub.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("iterlens")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "load_released_lens"]


def __getattr__(name: str):
    # Lazy, so that `import iterlens` (and the CLI) does not import torch.
    if name == "load_released_lens":
        from iterlens.hub.pull import load_released_lens

        return load_released_lens
    raise AttributeError(f"module 'iterlens' has no attribute {name!r}")
