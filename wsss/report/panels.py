"""A PNG of titled panels at the image's own resolution (times `zoom`), for the `wsss` command.

Each panel is one picture of an image's arrays (uint8 (H, W, 3)), drawn pixel for pixel:
panel (r, c) starts at x = GAP + c * (W * zoom + GAP), y = GAP + r * (TITLE + H * zoom + GAP)
+ TITLE, so a label's colours can be read back exactly. Below the rows a legend names the
colour of every label value shown and, when a map is shown, the heat scale.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wsss.report.draw import PALETTE, heat_rgb

GAP = 4  # pixels between panels
TITLE = 16  # pixels of the title band above each panel
LEGEND_ROW = 18  # pixels per legend line
MIN_SIDE = 256  # the automatic zoom makes the longer image side at least this long


def auto_zoom(shape):
    """Integer zoom making the longer side of an (H, W) image at least MIN_SIDE pixels."""
    return max(1, math.ceil(MIN_SIDE / max(shape)))


def font(size=11):
    return ImageFont.load_default(size=size)


def compose(rows, zoom, legend=None, heat=False):
    """rows: lists of (title, (H, W, 3) uint8), all panels of one size -> PIL RGB image.

    legend: {label value: name} of the label colours to explain; heat: add the heat scale.
    """
    height, width = rows[0][0][1].shape[:2]
    pw, ph = width * zoom, height * zoom
    cols = max(len(row) for row in rows)
    canvas_w = GAP + cols * (pw + GAP)
    legend_img = draw_legend(legend or {}, heat, canvas_w)
    canvas_h = GAP + len(rows) * (TITLE + ph + GAP) + legend_img.height
    canvas = Image.new("RGB", (canvas_w, canvas_h), "white")
    for r, row in enumerate(rows):
        for c, (title, rgb) in enumerate(row):
            x, y = GAP + c * (pw + GAP), GAP + r * (TITLE + ph + GAP)
            canvas.paste(title_band(title, pw), (x, y))
            canvas.paste(Image.fromarray(rgb).resize((pw, ph), Image.NEAREST), (x, y + TITLE))
    canvas.paste(legend_img, (0, canvas_h - legend_img.height))
    return canvas


def title_band(title, width):
    """The title in a band as wide as the panel (longer titles are cut at the panel's edge)."""
    band = Image.new("RGB", (width, TITLE), "white")
    ImageDraw.Draw(band).text((1, 1), title, fill="black", font=font())
    return band


def legend_items(legend, heat):
    """[(swatch (h, w, 3), text)]: one colour per label value, then the heat scale."""
    items = [(np.full((10, 10, 3), PALETTE[value], np.uint8), name) for value, name in sorted(legend.items())]
    if heat:
        items.append((heat_rgb(np.tile(np.linspace(0, 1, 60), (10, 1))), "map 0 -> 1"))
    return items


def draw_legend(legend, heat, width):
    """Legend lines filling `width`; an empty image when there is nothing to explain."""
    lines, x = [[]], GAP
    for swatch, text in legend_items(legend, heat):
        item_w = swatch.shape[1] + 4 + int(font().getlength(text)) + 12
        if x + item_w > width and lines[-1]:
            lines.append([])
            x = GAP
        lines[-1].append((x, swatch, text))
        x += item_w
    if not lines[0]:
        return Image.new("RGB", (width, 0), "white")
    img = Image.new("RGB", (width, len(lines) * LEGEND_ROW + GAP), "white")
    draw = ImageDraw.Draw(img)
    for row, line in enumerate(lines):
        y = row * LEGEND_ROW + 4
        for x, swatch, text in line:
            img.paste(Image.fromarray(swatch), (x, y))
            draw.text((x + swatch.shape[1] + 4, y - 2), text, fill="black", font=font())
    return img
