"""Utilities: visualization of polygons, rotated boxes and score maps."""
