"""Models: the studied models, causal LMs, the CNN twins, one training loop, the adapters.

Modules: ``studied`` (the config's table of studied models and every probed model it
implies), ``lm`` (the reference LM and any HF causal LM), ``cnn`` (the Inception-style twins),
``training`` (the loop and schedules), ``families`` (one adapter per architecture family:
blocks, norms, embeddings, attention and FFN), ``gguf`` (GGUF files: locate, check, convert).
"""
