"""Models: causal LMs, the CNN twins, one training loop, where each architecture keeps its parts.

Modules: ``lm`` (the reference LM and any HF causal LM), ``cnn`` (the Inception-style twins),
``training`` (the loop and schedules), ``families`` (one adapter per architecture family:
blocks, norms, embeddings, attention and FFN).
"""
