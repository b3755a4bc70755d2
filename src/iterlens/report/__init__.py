"""Reporting: summary tables assembled from other tables (``tables``) and figures (``figures``)."""
