"""A figure's SVG rasterised to PNG by resvg (a Rust renderer shipped as a wheel: no Cairo, no
browser). Text is drawn with the system's fonts (DejaVu Sans where present)."""

from __future__ import annotations

#: Pixels per SVG unit: figures are laid out at 800 px wide, written at 1600 for sharp slides.
ZOOM = 2.0


def to_png(svg: str, zoom: float = ZOOM) -> bytes:
    import resvg_py

    return resvg_py.svg_to_bytes(svg_string=svg, zoom=zoom, background="#ffffff")
