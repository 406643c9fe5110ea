"""The built-in formats: each a plugin, registered like a third-party one (see manager.py)."""
