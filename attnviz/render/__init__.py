"""Renderers: each draws an Alignment, from the same options, to one kind of output."""
