"""Carrier plugin: HTTP API and web chat page (``carrier serve``)."""
