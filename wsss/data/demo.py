"""The built-in demo dataset: a small generated PASCAL VOC 2012 look-alike.

It lets the default ``snakemake`` run work on a fresh machine with no download, and it is built
to show the failure modes that WSSS methods set out to fix:

1. Small discriminative part. Every object is a large grey-ish textured "body" (ellipse, rounded
   rectangle or blob, randomly rotated; the same appearance for all classes) with a small
   class-specific "part" at one end (~10-20 % of the object: a class colour and a stripe /
   checker / ring / plain pattern). A classifier only needs the part, so plain CAM covers only
   the part and attention-expanding methods (erasing, dilation, dropout) have something to fix.
2. Class-correlated backgrounds. Each class has a preferred background (texture family, hue,
   orientation and scale from its index); 25 % of images show the preferred background of one
   of their classes, so CAM leaks into the context; 30 % show random backgrounds drawn the same
   way, so texture and colour alone are no class evidence.
3. 1-3 objects and 1-3 classes per image, partly overlapping (the later object is on top and
   the mask shows the occlusion).
4. Image sides uniform in [min_side, max_side] (H and W independently), objects from ~30 % to
   ~70 % of the image side (square root of the area).

The layout is VOC's (``root/JPEGImages``, ``SegmentationClass`` with the 255 boundary band for
``train`` and ``val``, ``SegmentationClassAug`` without it for every id, ``ImageSets/Segmentation``
with ``train_aug``, ``train`` and ``val``) plus ``root/saliency``: grayscale maps imitating an
off-the-shelf salient object detector (DSS / PoolNet): blurred, noisy, missing some objects or
parts and firing on some background clutter.

Everything is drawn from ``np.random.default_rng`` seeded by ``seed`` (one stream per image), so
the same seed gives byte-identical files. Class appearance depends only on the class index.
"""

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wsss.data.palette import save_palette_png
from wsss.errors import WsssError

SPLITS = ("train_aug", "train", "val")
BAND_WIDTH = 2          # px, total width of the 255 band on label boundaries (VOC-style)
MIN_CLASS_PIXELS = 60   # every class present in an image has at least this many pixels ...
MIN_INTERIOR_PIXELS = 24  # ... and this many outside the boundary band
_GOLDEN = 0.6180339887498949
PREFERRED_BACKGROUND = 0.25  # share of images whose background is a present class's preferred one


# ----------------------------------------------------------------------------- class styles

@dataclass(frozen=True)
class ClassStyle:
    """Appearance of one class, a pure function of its index (1..K)."""

    part_rgb: tuple      # main colour of the discriminative part
    part_rgb2: tuple     # second colour of its pattern
    pattern: int         # 0 stripes, 1 checker, 2 rings, 3 plain
    angle: float         # stripe / checker orientation (radians, image frame)
    period: float        # pattern period in px
    bg_family: int       # preferred background texture family (0..3)
    bg_rgb: tuple        # preferred background colours
    bg_rgb2: tuple
    bg_angle: float
    bg_scale: float      # texture scale in px


def _rgb(h, s, v):
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def class_style(index):
    """Procedural appearance of class ``index`` (1-based; background is 0)."""
    i = int(index)
    rng = np.random.default_rng(7919 * i + 13)  # style only: independent of the dataset seed
    hue = (i * _GOLDEN) % 1.0
    pattern = i % 4
    part_rgb = _rgb(hue, 0.8 + 0.2 * rng.random(), 0.85 + 0.15 * rng.random())
    if pattern == 3:  # plain: a slightly darker shade of the same colour
        part_rgb2 = _rgb(hue, 0.9, 0.6)
    else:
        part_rgb2 = _rgb(hue + 0.5 + 0.1 * (rng.random() - 0.5), 0.5 + 0.3 * rng.random(), 0.2 + 0.25 * rng.random())
    bg_hue = (i * _GOLDEN + 0.37) % 1.0
    bg_sat = 0.3 + 0.25 * rng.random()
    return ClassStyle(
        part_rgb=part_rgb,
        part_rgb2=part_rgb2,
        pattern=pattern,
        angle=np.deg2rad((i * 47) % 180),
        period=3.0 + (i * 7) % 5,
        bg_family=(i // 4 + i) % 4,
        bg_rgb=_rgb(bg_hue, bg_sat, 0.45 + 0.3 * rng.random()),
        bg_rgb2=_rgb(bg_hue + 0.06 * (rng.random() - 0.5), bg_sat * 0.8, 0.25 + 0.35 * rng.random()),
        bg_angle=np.deg2rad(rng.uniform(0, 180)),
        bg_scale=float(rng.uniform(5.0, 12.0)),
    )


# ----------------------------------------------------------------------------- textures

def _smooth_noise(rng, h, w, cell):
    """Zero-mean, unit-ish value noise with features of about ``cell`` px."""
    gh, gw = max(2, int(round(h / cell)) + 2), max(2, int(round(w / cell)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _mix(p, c1, c2):
    """(H, W) field p in [0, 1] -> (H, W, 3) colours between c1 (p=0) and c2 (p=1)."""
    c1 = np.asarray(c1, np.float32)
    c2 = np.asarray(c2, np.float32)
    return c1 + p[..., None] * (c2 - c1)


def _background(rng, h, w, yy, xx, family, c1, c2, angle, scale):
    """Textured background (H, W, 3) float32 in 0..255 of one of four families."""
    if family == 0:  # blotches: foliage / rocks
        p = _smooth_noise(rng, h, w, scale * 1.5) + 0.35 * _smooth_noise(rng, h, w, scale * 0.4)
        p = 1.0 / (1.0 + np.exp(-2.0 * p))
    elif family == 1:  # waves: water / sand ripples
        warp = 3.0 * _smooth_noise(rng, h, w, scale * 2)
        u = xx * np.cos(angle) + yy * np.sin(angle) + warp
        p = 0.5 + 0.5 * np.sin(2 * np.pi * u / (1.4 * scale) + rng.uniform(0, 2 * np.pi))
        p += 0.15 * _smooth_noise(rng, h, w, 2.0)
    elif family == 2:  # grain: gravel / carpet
        p = 0.5 + 0.25 * rng.standard_normal((h, w)).astype(np.float32)
        p = cv2.GaussianBlur(p, (0, 0), 0.8) + 0.25 * _smooth_noise(rng, h, w, scale)
    else:  # gradient with clutter: sky over ground, scattered pebbles
        t = (yy * np.sin(angle) ** 2 + xx * np.cos(angle) ** 2) / max(h, w)
        p = t + 0.2 * _smooth_noise(rng, h, w, scale * 2)
        clutter = np.zeros((h, w), np.float32)
        for _ in range(rng.integers(4, 10)):
            center = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            axes = (int(rng.uniform(1, 0.5 * scale)) + 1, int(rng.uniform(1, 0.4 * scale)) + 1)
            cv2.ellipse(clutter, center, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-0.6, 0.6)), -1)
        p = p + cv2.GaussianBlur(clutter, (0, 0), 0.8)
    return _mix(np.clip(p, -0.2, 1.2), c1, c2)


def _part_pattern(style, yy, xx, cx, cy, rng):
    """Class-specific pattern field in [0, 1] (image frame, centred on the part)."""
    u = (xx - cx) * np.cos(style.angle) + (yy - cy) * np.sin(style.angle)
    v = -(xx - cx) * np.sin(style.angle) + (yy - cy) * np.cos(style.angle)
    k = 2 * np.pi / style.period
    if style.pattern == 0:
        p = 0.5 + 0.5 * np.sin(k * u)
    elif style.pattern == 1:
        p = 0.5 + 0.5 * np.tanh(3.0 * np.sin(k * u) * np.sin(k * v))
    elif style.pattern == 2:
        p = 0.5 + 0.5 * np.sin(k * np.sqrt(u * u + v * v))
    else:
        p = 0.25 + 0.25 * np.tanh(u / max(style.period * 2, 1.0))
    return p + 0.08 * rng.standard_normal(p.shape).astype(np.float32)


# ----------------------------------------------------------------------------- objects

def _body_outline(rng, rx, ry):
    """Closed outline (N, 2) in object coordinates; the part sits at +x. Returns (pts, x_end)."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    family = rng.integers(3)
    if family == 0:  # ellipse
        x, y = np.cos(t), np.sin(t)
    elif family == 1:  # rounded rectangle (superellipse)
        n = rng.uniform(2.8, 5.0)
        c, s = np.cos(t), np.sin(t)
        x, y = np.sign(c) * np.abs(c) ** (2 / n), np.sign(s) * np.abs(s) ** (2 / n)
    else:  # blob
        r = np.ones_like(t)
        for k in (2, 3, 4):
            r += rng.uniform(0, 0.13) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
        r /= r[0]  # the part end at unit radius
        x, y = r * np.cos(t), r * np.sin(t)
    return np.stack([rx * x, ry * y], axis=1), rx


def _transform(pts, cx, cy, angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + pts[:, 0] * c - pts[:, 1] * s, cy + pts[:, 0] * s + pts[:, 1] * c], axis=1)


def _fill(h, w, pts):
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


@dataclass
class _Object:
    cls: int
    body: np.ndarray     # (H, W) bool, full silhouette before occlusion
    part: np.ndarray     # (H, W) bool, discriminative part (subset of body)
    full_area: float     # polygon area, also counting what falls outside the image
    part_center: tuple


def _make_object(rng, cls, h, w, size):
    """One object of class ``cls`` with major diameter ``size`` px, at a random pose."""
    rx = size / 2
    ry = rx * rng.uniform(0.5, 0.9)
    outline, x_end = _body_outline(rng, rx, ry)
    # keep most of a large object in view: its centre stays half a radius inside the image
    mx, my = min(0.45 * w, max(0.1 * w, 0.5 * rx)), min(0.45 * h, max(0.1 * h, 0.5 * rx))
    cx, cy = rng.uniform(mx, w - mx), rng.uniform(my, h - my)
    angle = rng.uniform(0, 2 * np.pi)
    body_pts = _transform(outline, cx, cy, angle)
    k = rng.uniform(0.85, 1.15)
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    d = 0.68 * x_end
    part_local = np.stack([d + k * 0.33 * rx * np.cos(t), k * 0.5 * ry * np.sin(t)], axis=1)
    part_pts = _transform(part_local, cx, cy, angle)
    body = _fill(h, w, body_pts)
    part = _fill(h, w, part_pts) & body
    pcx, pcy = _transform(np.array([[d, 0.0]]), cx, cy, angle)[0]
    return _Object(cls, body, part, float(cv2.contourArea(body_pts.astype(np.float32))), (pcx, pcy))


def _visible(objects):
    """Per object, its visible body and part after occlusion by the objects drawn later."""
    covered = np.zeros_like(objects[0].body)
    out = []
    for obj in reversed(objects):
        out.append((obj.body & ~covered, obj.part & ~covered))
        covered |= obj.body
    return out[::-1]


def _acceptable(objects):
    """Every object keeps most of its body and of its part in view and unoccluded."""
    for obj, (body, part) in zip(objects, _visible(objects)):
        if body.sum() < max(MIN_CLASS_PIXELS, 0.55 * obj.full_area):
            return False
        if part.sum() < max(12, 0.6 * obj.part.sum()) or obj.part.sum() < 0.5 * 0.12 * obj.full_area:
            return False
    return True


def label_map(objects, h, w):
    """(H, W) uint8: 0 background, class index on visible object pixels (later on top)."""
    label = np.zeros((h, w), np.uint8)
    for obj in objects:
        label[obj.body] = obj.cls
    return label


def boundary_band(label, width=BAND_WIDTH):
    """(H, W) bool: pixels within ~width/2 px of a boundary between two labels (VOC's 255 band)."""
    k = np.ones((width + 1, width + 1), np.uint8)
    return cv2.dilate(label, k) != cv2.erode(label, k)


def add_boundary_band(label, width=BAND_WIDTH):
    """A copy of ``label`` with the boundary band set to 255, as in VOC's SegmentationClass."""
    out = label.copy()
    out[boundary_band(label, width)] = 255
    return out


# ----------------------------------------------------------------------------- one sample

@dataclass
class Sample:
    """One generated image with its ground truth (all arrays (H, W[, 3]))."""

    image: np.ndarray     # uint8 RGB, before JPEG compression
    label: np.ndarray     # uint8, 0 background, 1..K objects, no boundary band (SBD style)
    part: np.ndarray      # bool, visible class-specific part pixels (the discriminative cue)
    saliency: np.ndarray  # uint8 grayscale, imitation of a salient object detector
    background_class: int  # class whose preferred background is shown, 0 if none


def _choose_classes(rng, primary, num_classes):
    n_cls = min(num_classes, 1 + int(rng.choice(3, p=[0.6, 0.32, 0.08])))
    others = [c for c in range(1, num_classes + 1) if c != primary]
    chosen = [primary] + [int(c) for c in rng.choice(others, size=n_cls - 1, replace=False)] if n_cls > 1 else [primary]
    n_obj = n_cls + (1 if n_cls < 3 and rng.random() < 0.3 else 0)
    per_object = chosen + [int(rng.choice(chosen)) for _ in range(n_obj - n_cls)]
    order = rng.permutation(len(per_object))
    return [per_object[i] for i in order]


def _place_objects(rng, classes, h, w):
    objects = []
    side = min(h, w)
    for cls in classes:
        scale = 1.0
        for _ in range(30):
            size = rng.uniform(0.35, 0.9) * side * scale
            candidate = objects + [_make_object(rng, cls, h, w, size)]
            if _acceptable(candidate):
                objects = candidate
                break
            scale = max(0.6, scale * 0.95)
    if not objects:  # practically unreachable: a lone centred object
        obj = None
        while obj is None or not _acceptable([obj]):
            obj = _make_object(rng, classes[0], h, w, 0.4 * side)
        objects = [obj]
    return objects


def _classes_ok(label):
    band = boundary_band(label)
    for c in np.unique(label):
        if c == 0:
            continue
        m = label == c
        if m.sum() < MIN_CLASS_PIXELS or (m & ~band).sum() < MIN_INTERIOR_PIXELS:
            return False
    return True


def _saliency(rng, objects, visible, label, h, w):
    """Imitation DSS / PoolNet output: soft, noisy, with false negatives and false positives."""
    sal = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for obj, (body, _) in zip(objects, visible):
        m = body.astype(np.float32)
        r = rng.random()
        if r < 0.1:  # missed object
            strength = rng.uniform(0.0, 0.25)
        else:
            strength = rng.uniform(0.75, 1.0)
            if r < 0.3:  # missed part of the object: a half plane through it is faint
                ys, xs = np.nonzero(body)
                k = rng.integers(len(ys))
                a = rng.uniform(0, 2 * np.pi)
                side = (xx - xs[k]) * np.cos(a) + (yy - ys[k]) * np.sin(a) > 0
                m[side] *= rng.uniform(0.0, 0.3)
        sal = np.maximum(sal, m * strength)
    bg = label == 0
    n_fp = int(rng.choice(3, p=[0.4, 0.4, 0.2]))
    for _ in range(n_fp):  # false positives on background clutter
        ys, xs = np.nonzero(bg)
        if len(ys) == 0:
            break
        k = rng.integers(len(ys))
        blob = np.zeros((h, w), np.float32)
        axes = (int(rng.uniform(0.04, 0.14) * w) + 1, int(rng.uniform(0.04, 0.14) * h) + 1)
        cv2.ellipse(blob, (int(xs[k]), int(ys[k])), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        sal = np.maximum(sal, blob * rng.uniform(0.3, 0.75))
    sal = cv2.GaussianBlur(sal, (0, 0), rng.uniform(1.0, 2.5))
    sal += 0.08 * np.clip(_smooth_noise(rng, h, w, 0.2 * min(h, w)), 0, None)
    sal += 0.03 * rng.standard_normal((h, w)).astype(np.float32)
    return np.clip(np.round(sal * 255), 0, 255).astype(np.uint8)


def generate_sample(rng, num_classes, height, width, primary=None):
    """Draw one image of ``height`` x ``width`` with ``num_classes`` classes; see the module doc.

    ``primary`` (1..num_classes) is a class the image must contain (random if None).
    """
    h, w = int(height), int(width)
    if primary is None:
        primary = int(rng.integers(1, num_classes + 1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    for _ in range(20):
        objects = _place_objects(rng, _choose_classes(rng, primary, num_classes), h, w)
        label = label_map(objects, h, w)
        if _classes_ok(label):
            break
    present = sorted({o.cls for o in objects})

    # background: the preferred one of a present class (25 %), a random saturated one drawn like
    # the preferred ones (30 %, so texture and colour alone are no class evidence) or a neutral one
    r = rng.random()
    if r < PREFERRED_BACKGROUND:
        bg_class = int(rng.choice(present))
        s = class_style(bg_class)
        img = _background(rng, h, w, yy, xx, s.bg_family, s.bg_rgb, s.bg_rgb2, s.bg_angle, s.bg_scale)
    else:
        bg_class = 0
        sat = rng.uniform(0.3, 0.55) if r < PREFERRED_BACKGROUND + 0.3 else rng.uniform(0.0, 0.15)
        hue = rng.random()
        c1 = _rgb(hue, sat, rng.uniform(0.35, 0.8))
        c2 = _rgb(hue + rng.uniform(-0.05, 0.05), sat, rng.uniform(0.2, 0.6))
        img = _background(rng, h, w, yy, xx, int(rng.integers(4)), c1, c2, rng.uniform(0, np.pi), rng.uniform(5, 12))

    # objects: shared grey-ish textured body, shaded towards the rim, plus the class part
    for obj in objects:
        grey = rng.uniform(95, 170)
        tint = rng.uniform(-10, 10, size=3)
        tex = 14 * _smooth_noise(rng, h, w, 3.0) + 6 * rng.standard_normal((h, w)).astype(np.float32)
        body_rgb = grey + tint[None, None, :] + tex[..., None]
        dist = cv2.distanceTransform(obj.body.astype(np.uint8), cv2.DIST_L2, 3)
        shade = 0.72 + 0.28 * np.clip(dist / max(2.0, 0.25 * np.sqrt(obj.full_area)), 0, 1)
        style = class_style(obj.cls)
        pattern = _part_pattern(style, yy, xx, obj.part_center[0], obj.part_center[1], rng)
        part_rgb = _mix(np.clip(pattern, 0, 1), style.part_rgb, style.part_rgb2)
        part_rgb += 5 * rng.standard_normal((h, w, 1)).astype(np.float32)
        colour = np.where(obj.part[..., None], part_rgb, body_rgb) * shade[..., None]
        alpha = cv2.GaussianBlur(obj.body.astype(np.float32), (0, 0), 0.6)[..., None]
        img = img * (1 - alpha) + colour * alpha

    # photometric noise: global gain / bias, an illumination gradient, sensor noise
    gain = rng.uniform(0.85, 1.15)
    bias = rng.uniform(-15, 15)
    ga = rng.uniform(0, 2 * np.pi)
    grad = 1 + rng.uniform(0, 0.15) * ((xx / w - 0.5) * np.cos(ga) + (yy / h - 0.5) * np.sin(ga))
    img = img * gain * grad[..., None] + bias
    img += rng.uniform(2, 5) * rng.standard_normal(img.shape).astype(np.float32)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)

    visible = _visible(objects)
    part = np.zeros((h, w), bool)
    for _, vpart in visible:
        part |= vpart
    saliency = _saliency(rng, objects, visible, label, h, w)
    return Sample(image, label, part, saliency, bg_class)


# ----------------------------------------------------------------------------- the dataset

def _check_args(classes, seed, counts, min_side, max_side):
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
        raise WsssError(f"classes: expected a list of class names, got {classes!r}")
    if len(classes) == 0:
        raise WsssError("classes: the list of class names is empty (background is implicit)")
    if len(classes) > 254:
        raise WsssError(f"classes: at most 254 classes fit in a VOC mask, got {len(classes)}")
    if len(set(classes)) != len(classes):
        raise WsssError(f"classes: class names must be unique, got {list(classes)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WsssError(f"seed: expected a non-negative integer, got {seed!r}")
    if not isinstance(counts, dict) or set(counts) != set(SPLITS):
        raise WsssError(f"counts: expected keys {list(SPLITS)}, got {counts!r}")
    for key in SPLITS:
        value = counts[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise WsssError(f"counts.{key}: expected an integer, got {value!r}")
    if counts["train_aug"] < 1:
        raise WsssError(f"counts.train_aug: must be >= 1, got {counts['train_aug']}")
    if counts["val"] < 1:
        raise WsssError(f"counts.val: must be >= 1, got {counts['val']}")
    if not 0 <= counts["train"] <= counts["train_aug"]:
        raise WsssError(f"counts.train: must lie in 0..counts.train_aug ({counts['train_aug']}), got {counts['train']}")
    if counts["train_aug"] + counts["val"] > 1_000_000:
        raise WsssError("counts: at most 1,000,000 images in all (6-digit ids)")
    for name, value in (("min_side", min_side), ("max_side", max_side)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 32:
            raise WsssError(f"{name}: expected an integer >= 32, got {value!r}")
    if min_side > max_side:
        raise WsssError(f"min_side: {min_side} is larger than max_side ({max_side})")


def _primary_classes(rng, n, num_classes):
    """Balanced primary classes: concatenated random permutations of 1..K, cut to n."""
    reps = -(-n // num_classes)
    return np.concatenate([rng.permutation(num_classes) + 1 for _ in range(reps)])[:n]


def _write_list(path, ids):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{i}\n" for i in ids))
    os.replace(tmp, path)


def generate(root, classes, seed=0, counts={"train_aug": 400, "train": 100, "val": 100}, min_side=80, max_side=128):
    """Write the demo dataset under ``root`` in the VOC 2012 layout (see the module doc).

    ``classes``: object class names (background not included), any number >= 1.
    ``counts``: images in train_aug, in train (a subset of train_aug) and in val (disjoint).
    The split lists in ImageSets/Segmentation are written last: their presence means finished.
    """
    _check_args(classes, seed, counts, min_side, max_side)
    num_classes = len(classes)
    root = Path(root)
    dirs = {name: root / name for name in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "saliency")}
    lists = root / "ImageSets" / "Segmentation"
    for d in [*dirs.values(), lists]:
        d.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:  # a half-written dataset must not look finished
        (lists / f"{split}.txt").unlink(missing_ok=True)

    n_aug, n_train, n_val = (int(counts[k]) for k in SPLITS)
    plan = np.random.default_rng([seed, 0x5EED])
    aug_ids = [f"demo_{i:06d}" for i in range(n_aug)]
    val_ids = [f"demo_{i:06d}" for i in range(n_aug, n_aug + n_val)]
    train_ids = [aug_ids[i] for i in sorted(plan.choice(n_aug, size=n_train, replace=False))]
    primary = np.concatenate([_primary_classes(plan, n_aug, num_classes), _primary_classes(plan, n_val, num_classes)])
    with_band = set(train_ids) | set(val_ids)

    for index, image_id in enumerate(aug_ids + val_ids):
        rng = np.random.default_rng([seed, index])
        h, w = (int(v) for v in rng.integers(min_side, max_side + 1, size=2))
        sample = generate_sample(rng, num_classes, h, w, primary=int(primary[index]))
        Image.fromarray(sample.image).save(dirs["JPEGImages"] / f"{image_id}.jpg", format="JPEG", quality=90)
        save_palette_png(dirs["SegmentationClassAug"] / f"{image_id}.png", sample.label)
        if image_id in with_band:
            save_palette_png(dirs["SegmentationClass"] / f"{image_id}.png", add_boundary_band(sample.label))
        Image.fromarray(sample.saliency).save(dirs["saliency"] / f"{image_id}.png", format="PNG")

    _write_list(lists / "train.txt", train_ids)
    _write_list(lists / "val.txt", val_ids)
    _write_list(lists / "train_aug.txt", aug_ids)
