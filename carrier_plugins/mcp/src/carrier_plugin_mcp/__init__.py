"""Carrier plugin: MCP servers' tools as actions, and agents served over MCP."""
