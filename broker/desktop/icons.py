"""The tray icon, drawn at run time with Pillow: one colour and one shape per overall state, so the
state reads at a glance even for colour-blind users (the shape alone tells it apart).

- signed in: green disc with a white check mark
- needs sign-in: amber triangle with a dark "!"
- refreshing: blue disc with a white circular arrow
- error: red square with a white cross
- no servers: grey ring
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from broker.desktop.menu import Overall

SIZE = 64
COLOURS: dict[Overall, tuple[int, int, int]] = {
    Overall.SIGNED_IN: (46, 160, 67),
    Overall.NEEDS_SIGN_IN: (242, 169, 0),
    Overall.REFRESHING: (33, 118, 210),
    Overall.ERROR: (207, 34, 46),
    Overall.NO_SERVERS: (128, 128, 128),
}
WHITE = (255, 255, 255, 255)


def draw_icon(state: Overall, size: int = SIZE) -> Image.Image:
    """A ``size``×``size`` RGBA image for ``state`` (drawn at 4× and scaled down: smooth edges)."""
    big = size * 4
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    _SHAPES[state](draw, big, (*COLOURS[state], 255))
    return image.resize((size, size), Image.Resampling.LANCZOS)


Rgba = tuple[int, int, int, int]


def _signed_in(draw: ImageDraw.ImageDraw, s: int, colour: Rgba) -> None:
    draw.ellipse((2, 2, s - 3, s - 3), fill=colour)
    draw.line(
        [(s * 0.26, s * 0.52), (s * 0.43, s * 0.70), (s * 0.75, s * 0.32)],
        fill=WHITE,
        width=s // 9,
        joint="curve",
    )


def _needs_sign_in(draw: ImageDraw.ImageDraw, s: int, colour: Rgba) -> None:
    draw.polygon([(s / 2, 2), (s - 3, s - 6), (3, s - 6)], fill=colour)
    dark = (40, 30, 0, 255)
    w = s // 16
    draw.rectangle((s / 2 - w, s * 0.33, s / 2 + w, s * 0.66), fill=dark)
    draw.ellipse((s / 2 - w * 1.2, s * 0.73, s / 2 + w * 1.2, s * 0.73 + w * 2.4), fill=dark)


def _refreshing(draw: ImageDraw.ImageDraw, s: int, colour: Rgba) -> None:
    draw.ellipse((2, 2, s - 3, s - 3), fill=colour)
    centre, radius, end = s / 2, s * 0.26, math.radians(320)
    box = (centre - radius, centre - radius, centre + radius, centre + radius)
    draw.arc(box, start=30, end=320, fill=WHITE, width=s // 11)
    # An arrowhead at the arc's end, pointing along the (clockwise) tangent.
    ex, ey = centre + radius * math.cos(end), centre + radius * math.sin(end)
    tx, ty = -math.sin(end), math.cos(end)
    nx, ny = math.cos(end), math.sin(end)
    head, half = s * 0.16, s * 0.12
    draw.polygon(
        [
            (ex + tx * head, ey + ty * head),
            (ex + nx * half, ey + ny * half),
            (ex - nx * half, ey - ny * half),
        ],
        fill=WHITE,
    )


def _error(draw: ImageDraw.ImageDraw, s: int, colour: Rgba) -> None:
    draw.rounded_rectangle((4, 4, s - 5, s - 5), radius=s // 8, fill=colour)
    w = s // 9
    draw.line([(s * 0.3, s * 0.3), (s * 0.7, s * 0.7)], fill=WHITE, width=w)
    draw.line([(s * 0.7, s * 0.3), (s * 0.3, s * 0.7)], fill=WHITE, width=w)


def _no_servers(draw: ImageDraw.ImageDraw, s: int, colour: Rgba) -> None:
    draw.ellipse((s * 0.1, s * 0.1, s * 0.9, s * 0.9), outline=colour, width=s // 8)


_SHAPES = {
    Overall.SIGNED_IN: _signed_in,
    Overall.NEEDS_SIGN_IN: _needs_sign_in,
    Overall.REFRESHING: _refreshing,
    Overall.ERROR: _error,
    Overall.NO_SERVERS: _no_servers,
}


def dominant_state(image: Image.Image) -> Overall | None:
    """The state whose colour most of ``image``'s opaque, saturated pixels are closest to.

    Lets a test (or a screenshot check) read the state back from pixels on the screen.
    """
    counts = dict.fromkeys(COLOURS, 0)
    rgb = image.convert("RGB")
    for count, colour in rgb.getcolors(rgb.width * rgb.height) or []:
        r, g, b = colour  # type: ignore[misc]  # an RGB image's colours are 3-tuples
        if max(r, g, b) - min(r, g, b) < 60:
            continue  # white, black, grey: marks and background, not the state colour
        counts[_nearest((r, g, b))] += count
    state, hits = max(counts.items(), key=lambda item: item[1])
    return state if hits else None


def _nearest(rgb: tuple[int, int, int]) -> Overall:
    def distance(state: Overall) -> int:
        return sum((a - c) ** 2 for a, c in zip(rgb, COLOURS[state], strict=True))

    return min(COLOURS, key=distance)
