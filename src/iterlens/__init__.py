"""iterlens: does a transformer refine one prediction layer by layer?

``iterlens.load_lens(repo_id_or_path, model)`` loads a released lens (ours, or any lens in
the ``tuned_lens`` layout) from a folder or the Hugging Face Hub.
"""

from __future__ import annotations

__all__ = ["load_lens"]


def __getattr__(name: str):
    # Lazy, so that `import iterlens` (and the CLI) does not import torch.
    if name == "load_lens":
        from iterlens.hub.pull import load_lens

        return load_lens
    raise AttributeError(f"module 'iterlens' has no attribute {name!r}")
