"""discord.py, imported once without its ``audioop`` deprecation warning.

discord.py's voice support imports ``audioop`` (deprecated in Python 3.11, removed in
3.13, where discord.py uses ``audioop-lts``); Carrier uses no voice, and the warning
would fail runs with warnings as errors. Import discord.py through this module.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="'audioop' is deprecated", category=DeprecationWarning
    )
    import discord
    import discord.gateway
    import discord.http

__all__ = ["discord"]

# Carrier joins no voice channel: no "PyNaCl is not installed" warning at every start.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False
