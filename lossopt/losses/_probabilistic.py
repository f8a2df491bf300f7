"""Placeholder: filled in by the loss catalogue work."""

__all__: list[str] = []
