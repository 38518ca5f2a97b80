"""The drawing page's canvas, as the model expects it: one definition for page and renderer.

Kept free of numpy so the web tier can read it without loading array code.
"""
CANVAS_SIZE = 280   # CSS pixels, square
BRUSH_WIDTH = 18    # CSS pixels, round caps and joins, colour #111 on transparent
