"""Vocabulary-space analysis: token evolution, heads and FFN neurons read as words."""
