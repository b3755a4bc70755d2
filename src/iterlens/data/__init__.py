"""Data: the text corpus, its document split and tokens (``text``); image datasets (``images``)."""
