"""Aegis tray application (PySide6). Built in a later stage; the engine never imports it."""
