"""Carrier plugin: a Discord client on discord.py (entry point ``discord``)."""
