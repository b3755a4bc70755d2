"""The release: stage one folder per Hub repo, push them, and pull released lenses.

``stage`` writes ``results/release/<repo>/`` (models, lenses, cards, Parquet tables);
``push`` uploads each folder with one ``HfApi.upload_folder``; ``pull`` loads a lens
(ours or any in the ``tuned_lens`` layout) from a folder or the Hub.
"""
