"""The `wsss` command: look into the pipeline's HDF5 stores without Snakemake.

    wsss list STORE [--ids]                       what a store holds and what produced it
    wsss show STORE ID [--root VOC] [-o PNG]      one image's maps / labels as a PNG
    wsss export STORE OUTDIR [--ids ID ...]       labels as VOC palette PNGs, OUTDIR/<id>.png
    wsss compare STORE_A STORE_B ID [--root VOC] [-o PNG]   two stores on one image

A STORE is a file `*.h5` or a folder of shard files, as the pipeline writes them. With
`--root` (the dataset's VOC-format folder) maps are drawn over the image and the image and
its ground truth are shown first. Bad input ends with one line `wsss: error: ...` naming the
file or image id, and exit status 1.
"""

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from wsss.data.palette import save_palette_png
from wsss.data.voc import IGNORE, MASK_FOLDERS
from wsss.errors import WsssError
from wsss.io import StoreReader
from wsss.report.draw import heat_overlay, heat_rgb, label_rgb
from wsss.report.panels import auto_zoom, compose

LABEL = "label"  # the array name of make_labels' and predict's stores


def open_store(path):
    """A StoreReader on one of our stores; anything else is a WsssError naming the path."""
    reader = StoreReader(path)
    missing = {"stage", "classes"} - set(reader.attrs)
    if missing or not len(reader):
        reader.close()
        what = f"no {', '.join(sorted(missing))} attribute" if missing else "no image"
        raise WsssError(f"{path}: not a wsss store ({what})")
    return reader


def short_name(path):
    """results/demo/cam/labels/train_aug.h5 -> cam/labels (a store folder names itself alike)."""
    path = Path(path)
    return f"{path.parent.parent.name}/{path.parent.name}"


# --- list -----------------------------------------------------------------------------------

def cmd_list(args):
    with open_store(args.store) as reader:
        first = reader.ids()[0]
        arrays, attrs = reader.read(first)
        print(f"store    {args.store} ({len(reader.files)} file{'s' if len(reader.files) > 1 else ''})")
        for key in ("stage", "method", "version"):
            print(f"{key:<8} {reader.attrs.get(key, '')}")
        print(f"classes  {', '.join(reader.classes)}")
        print(f"images   {len(reader)}")
        print(f"arrays   (image {first})")
        for name, array in arrays.items():
            print(f"  {name:<10} {array.dtype} {tuple(array.shape)}")
        for key, value in attrs.items():
            print(f"  @{key:<9} {np.asarray(value).tolist()}")
        params = json.dumps(reader.attrs.get("params", {}), indent=2, sort_keys=True)
        print("params   " + params.replace("\n", "\n         "))
        if args.ids:
            print("\n".join(reader.ids()))


# --- show / compare -------------------------------------------------------------------------

def read_image(root, image_id, shape):
    """uint8 (H, W, 3) of the dataset image, checked against the store's (H, W)."""
    path = Path(root) / "JPEGImages" / f"{image_id}.jpg"
    if not path.is_file():
        raise WsssError(f"{path}: no image for id {image_id} under --root {root}")
    with Image.open(path) as img:
        image = np.asarray(img.convert("RGB"))
    if image.shape[:2] != tuple(shape):
        raise WsssError(f"{path}: image size {image.shape[:2]} differs from the store's {tuple(shape)} "
                        f"for id {image_id}")
    return image


def read_mask(root, image_id):
    """uint8 (H, W) ground truth of the id, or None when the dataset has no mask for it."""
    for folder in MASK_FOLDERS:
        path = Path(root) / folder / f"{image_id}.png"
        if path.is_file():
            with Image.open(path) as img:
                return np.asarray(img, np.uint8)
    return None


def array_panels(arrays, attrs, classes, image, prefix=""):
    """(label row, map rows) of (title, rgb): the label maps in VOC colours, and per present
    class a row with that class's heat in every named map (MDC's d1, d2, ... side by side)."""
    label_row = [(f"{prefix}{name}", label_rgb(a)) for name, a in arrays.items() if a.ndim == 2]
    maps = {name: a.astype(np.float32) for name, a in arrays.items() if a.ndim == 3}  # (K', H, W) each
    present = np.asarray(attrs.get("classes", []), int).tolist()
    map_rows = [[(f"{prefix}{name}: {classes[index]}", paint(a[k], image)) for name, a in maps.items()]
                for k, index in enumerate(present)]
    if maps and not present:
        blank = heat_rgb(np.zeros(shape_of(arrays)))
        map_rows = [[(f"{prefix}{name}: no class present", blank) for name in maps]]
    return label_row, map_rows


def paint(heat, image):
    """A map's heat, over the image when there is one."""
    return heat_overlay(image, heat) if image is not None else heat_rgb(heat)


def shape_of(arrays):
    return next(iter(arrays.values())).shape[-2:]


def dataset_panels(root, image_id, shape):
    """(image, row, masks): the image and its ground truth (if any) as panels; nothing without --root."""
    if root is None:
        return None, [], []
    image = read_image(root, image_id, shape)
    mask = read_mask(root, image_id)
    if mask is None:
        return image, [("image", image)], []
    return image, [("image", image), ("ground truth", label_rgb(mask))], [mask]


def legend_of(classes, labels):
    """{value: name} of the label values in any of the (H, W) label maps (classes: background first)."""
    values = set().union(*(np.unique(label).tolist() for label in labels))
    return {v: "ignore" if v == IGNORE else classes[v] if v < len(classes) else str(v) for v in values}


def save_png(image, output):
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    image.save(output)
    print(f"wrote {output} ({image.width} x {image.height})")


def cmd_show(args):
    with open_store(args.store) as reader:
        arrays, attrs = reader.read(args.id)
        classes = reader.classes
    shape = shape_of(arrays)
    image, first_row, labels = dataset_panels(args.root, args.id, shape)
    label_row, map_rows = array_panels(arrays, attrs, classes, image)
    rows = [row for row in [first_row, label_row, *map_rows] if row]
    labels += [a for a in arrays.values() if a.ndim == 2]
    heat = any(a.ndim == 3 for a in arrays.values())
    png = compose(rows, args.zoom or auto_zoom(shape), legend_of(classes, labels), heat)
    save_png(png, args.output or f"{args.id}.png")


def cmd_compare(args):
    stores = []  # (path, arrays, attrs, classes)
    for path in (args.store_a, args.store_b):
        with open_store(path) as reader:
            stores.append((path, *reader.read(args.id), reader.classes))
    shapes = {tuple(shape_of(arrays)) for _, arrays, _, _ in stores}
    if len(shapes) > 1:
        raise WsssError(f"image id {args.id}: sizes differ between {args.store_a} and {args.store_b} "
                        f"({sorted(shapes)})")
    shape = shapes.pop()
    image, first_row, labels = dataset_panels(args.root, args.id, shape)
    label_row, map_rows = [], []  # A's panels, then B's, in each row
    for tag, (path, arrays, attrs, classes) in zip("AB", stores):
        print(f"{tag} = {path}")
        labels_of_store, maps_of_store = array_panels(arrays, attrs, classes, image, f"{tag} {short_name(path)}: ")
        label_row += labels_of_store
        map_rows = [a + b for a, b in itertools.zip_longest(map_rows, maps_of_store, fillvalue=[])]
        labels += [a for a in arrays.values() if a.ndim == 2]
    if all(LABEL in arrays for _, arrays, _, _ in stores):
        label_row.append(difference_panel(stores[0][1][LABEL], stores[1][1][LABEL]))
    rows = [row for row in [first_row, label_row, *map_rows] if row]
    heat = any(a.ndim == 3 for _, arrays, _, _ in stores for a in arrays.values())
    png = compose(rows, args.zoom or auto_zoom(shape), legend_of(stores[0][3], labels), heat)
    save_png(png, args.output or f"{args.id}_compare.png")


def difference_panel(a, b):
    """('A != B', rgb): pixels where the two label maps differ in red, the rest white."""
    differ = a != b
    print(f"labels differ on {differ.sum()} of {differ.size} pixels ({100 * differ.mean():.1f} %)")
    rgb = np.full((*a.shape, 3), 255, np.uint8)
    rgb[differ] = (220, 0, 0)
    return (f"A != B (red, {100 * differ.mean():.1f} %)", rgb)


# --- export ---------------------------------------------------------------------------------

def cmd_export(args):
    with open_store(args.store) as reader:
        ids = args.ids or reader.ids()
        Path(args.outdir).mkdir(parents=True, exist_ok=True)
        for image_id in ids:
            arrays = reader.read(image_id)[0]
            if LABEL not in arrays:
                raise WsssError(f"{args.store}: holds {', '.join(arrays)} arrays (stage {reader.attrs['stage']}), "
                                "not labels; export takes a make_labels or predict store")
            save_palette_png(Path(args.outdir) / f"{image_id}.png", arrays[LABEL])
    print(f"wrote {len(ids)} palette PNGs to {args.outdir}")


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser():
    p = argparse.ArgumentParser(prog="wsss", description="Look into the HDF5 stores of the wsss pipeline.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="what a store holds and its provenance")
    s.add_argument("store")
    s.add_argument("--ids", action="store_true", help="also print every image id")
    s.set_defaults(func=cmd_list)
    for name, func, stores in (("show", cmd_show, ["store"]), ("compare", cmd_compare, ["store_a", "store_b"])):
        s = sub.add_parser(name, help="one image's maps / labels as a PNG" if name == "show"
                           else "two stores side by side on one image, with their label differences")
        for store in stores:
            s.add_argument(store)
        s.add_argument("id", help="image id")
        s.add_argument("--root", help="the dataset's VOC-format folder: draw maps over the image, show ground truth")
        s.add_argument("--zoom", type=positive, help="pixels per image pixel (default: longer side >= 256 px)")
        s.add_argument("-o", "--output", help="PNG to write (default: <id>.png, <id>_compare.png)")
        s.set_defaults(func=func)
    s = sub.add_parser("export", help="labels as VOC palette PNGs named <id>.png")
    s.add_argument("store")
    s.add_argument("outdir")
    s.add_argument("--ids", nargs="+", help="only these image ids")
    s.set_defaults(func=cmd_export)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except WsssError as exc:
        print(f"wsss: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
