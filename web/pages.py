"""The drawing page."""
from __future__ import annotations

from flask import Blueprint, render_template

from shared.drawing import BRUSH_WIDTH, CANVAS_SIZE

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", canvas_size=CANVAS_SIZE, brush_width=BRUSH_WIDTH)
