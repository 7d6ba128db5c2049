"""Carrier plugin: Telegram."""
