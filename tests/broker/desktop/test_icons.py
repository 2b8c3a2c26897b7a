"""Each state's icon is told apart by colour and, for colour-blind users, by shape alone."""

from __future__ import annotations

import itertools

from PIL import Image, ImageChops

from broker.desktop.icons import SIZE, dominant_state, draw_icon
from broker.desktop.menu import Overall

STATES = [s for s in Overall if s is not Overall.NO_SERVERS]


def test_every_state_has_a_square_transparent_icon() -> None:
    for state in Overall:
        icon = draw_icon(state)
        assert icon.size == (SIZE, SIZE) and icon.mode == "RGBA"
        assert icon.getpixel((0, 0))[3] == 0  # type: ignore[index]


def test_the_state_can_be_read_back_from_the_icon_colour() -> None:
    assert [dominant_state(draw_icon(s)) for s in STATES] == STATES


def shape(state: Overall) -> Image.Image:
    """The icon as a colour-blind user might see it: light or dark, on a white panel."""
    icon = draw_icon(state)
    panel = Image.new("RGBA", icon.size, (255, 255, 255, 255))
    panel.alpha_composite(icon)
    return panel.convert("L").point(lambda v: 255 if v > 200 else 0)


def test_states_differ_in_shape_even_without_colour() -> None:
    for a, b in itertools.combinations(Overall, 2):
        differing = sum(ImageChops.difference(shape(a), shape(b)).histogram()[1:])
        assert differing > SIZE * SIZE // 20, (a, b)


def test_icons_are_drawn_at_any_size() -> None:
    assert draw_icon(Overall.ERROR, 22).size == (22, 22)
