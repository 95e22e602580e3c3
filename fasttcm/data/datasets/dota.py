"""DOTA datasets (oriented object detection in aerial images) as Detectron2 dataset dicts, registered lazily.

:func:`register_all_dota` (called by :mod:`fasttcm.data.datasets.builtin`) registers, lazily (nothing is read
until ``DatasetCatalog.get(name)``), under
``$DETECTRON2_DATASETS/dota`` (default ``./datasets/dota``)::

    dota/
      train/images/P0000.png ...  train/labelTxt/P0000.txt ...   dota_v1_train   (labelTxt-v1.0/labelTxt/ also ok)
      val/images/ ...             val/labelTxt/ ...              dota_v1_val
      test/images/ ...            (no labels)                    dota_v1_test
                                                                 dota_v1_trainval = train + val
      train_1024/ images/ labelTxt/ images.txt source_images.txt split_config.json      dota_v1_train_1024
      val_1024/ ...  test_1024/ (images/ only) ...      dota_v1_val_1024, dota_v1_test_1024
                                                        dota_v1_trainval_1024 = train_1024 + val_1024

The ``*_1024`` folders are made by ``python tools/dota_split.py datasets/dota/train datasets/dota/train_1024``
(1024 x 1024 patches, gap 200, rate 1; see :mod:`fasttcm.data.dota.split`).

**Records** (Detectron2's standard; pixels of the image as stored)::

    {"file_name": str, "height": int, "width": int, "image_id": str (file stem: "P0000" or a patch name
     "P0000__1__0___824"),
     "annotations": [{"bbox": [cx, cy, w, h, a], "bbox_mode": BoxMode.XYWHA_ABS,
                      "segmentation": [[x1, y1, x2, y2, x3, y3, x4, y4]],   # the label's 4 corners, as written
                      "category_id": int, "difficult": 0 | 1 | 2, "iscrowd": 0 | 1}, ...]}

``bbox`` is the minimum-area rectangle of the 4 corners (:func:`fasttcm.structures.quads.quads_to_rboxes`):
``w >= h``, angle ``a`` in degrees in ``[-90, 90)``, counter-clockwise as seen on the image, as in
``detectron2.structures.RotatedBoxes`` (width along ``(cos a, -sin a)``). For the usual rectangular labels it is
the label itself; for a non-rectangular quad it encloses it. **Difficult objects** keep ``difficult`` (1, or 2 for
small remainders of objects cut by a patch border) and get ``iscrowd = 1`` (0 otherwise), the Detectron2 flag for
"do not count as a normal instance": Detectron2's stock filters and mappers drop crowd annotations, and
fasttcm's ``RotatedDatasetMapper`` keeps or drops difficult objects by ``INPUT.FASTTCM.ROTATED_KEEP_DIFFICULT``
(``difficult`` key). Evaluation ignores difficult objects in any case (it reads the labelTxt files). Test sets
(no labels) have no ``annotations`` key.

**Checks** (nothing is dropped silently): malformed label lines, unknown classes, NaN / non-numeric coordinates
-> ``ValueError`` with file and line (:mod:`fasttcm.formats.dota`); an image without a label file, a label
file without an image, an unreadable image -> error naming the file; corners outside the image by more than
``16 px + 2 %`` of the image side (:data:`BOUNDS_TOLERANCE_PX`, :data:`BOUNDS_TOLERANCE_FRAC`; the real labels
overshoot by up to a pixel or two) -> ``ValueError`` naming the label file and the image, since the image is then
probably not the one labelled (or was resized). Degenerate boxes (a side of the minimum-area rectangle shorter
than 1 px) are kept and counted in a warning with examples.

**Metadata**: ``thing_classes``, ``evaluator_type="dota"``, ``gt_dir`` (labelTxt folder of the *original*
images, a list for trainval; ``None`` for test sets), ``imageset`` (image-set file(s) naming the original images
to evaluate, or ``None`` = every label file of ``gt_dir``), ``is_split`` (patches whose detections the evaluator
merges back), ``image_root``/``label_root``, ``dota_version``.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...structures.quads import quads_to_rboxes
from ...formats.dota import DOTA_V1_CLASSES, DOTA_V15_CLASSES, parse_label_file
from ..fileio import datasets_root, image_size, list_images

logger = logging.getLogger(__name__)

__all__ = [
    "DOTA_V1_CLASSES",
    "DOTA_V15_CLASSES",
    "DOTA_SPLITS",
    "BOUNDS_TOLERANCE_PX",
    "BOUNDS_TOLERANCE_FRAC",
    "dota_root",
    "load_dota_dataset",
    "register_dota",
    "register_all_dota",
]

#: corners may lie outside the image by this many pixels plus :data:`BOUNDS_TOLERANCE_FRAC` of the image side
BOUNDS_TOLERANCE_PX = 16.0
BOUNDS_TOLERANCE_FRAC = 0.02
#: a box whose shorter side is below this (pixels) is counted as degenerate (kept, with a warning)
DEGENERATE_SIDE = 1.0

PathOrPaths = Union[str, Sequence[str]]

# name -> (source folders under dota/, is_split); label folder candidates are tried in order
DOTA_SPLITS: Dict[str, Tuple[Tuple[str, ...], bool]] = {
    "dota_v1_train": (("train",), False),
    "dota_v1_val": (("val",), False),
    "dota_v1_trainval": (("train", "val"), False),
    "dota_v1_test": (("test",), False),
    "dota_v1_train_1024": (("train_1024",), True),
    "dota_v1_val_1024": (("val_1024",), True),
    "dota_v1_trainval_1024": (("train_1024", "val_1024"), True),
    "dota_v1_test_1024": (("test_1024",), True),
}
_LABEL_DIRS = ("labelTxt", "labelTxt-v1.0/labelTxt", "labelTxt-v1.0")


def dota_root(root: Optional[str] = None) -> str:
    """``<root or $DETECTRON2_DATASETS>/dota``."""
    return os.path.join(datasets_root() if root is None else root, "dota")


def _as_list(x: Optional[PathOrPaths]) -> List[Optional[str]]:
    if x is None:
        return []
    return [x] if isinstance(x, (str, os.PathLike)) else list(x)


def _read_names(imageset) -> Optional[List[str]]:
    """Image names from image-set file(s) (paths: containing a path separator or ending in ``.txt``) or a list of
    names; ``None`` stays ``None``."""
    if imageset is None:
        return None
    from ...formats.dota import read_imageset

    items = _as_list(imageset)
    if len(items) and all(isinstance(i, str) and (os.sep in i or i.endswith(".txt")) for i in items):
        names: List[str] = []
        for item in items:  # image-set files
            if not os.path.isfile(item):
                raise FileNotFoundError(f"image-set file {item} does not exist")
            names.extend(read_imageset(item))
        return names
    return [str(i) for i in items]  # image names


def load_dota_dataset(
    image_dirs: PathOrPaths,
    label_dirs: Optional[PathOrPaths] = None,
    classes: Sequence[str] = DOTA_V1_CLASSES,
    imageset=None,
    name: Optional[str] = None,
    check_bounds: bool = True,
) -> List[dict]:
    """Dataset dicts (module docstring) of the images in ``image_dirs`` (one folder or a list), labelled from
    ``label_dirs`` (same length; ``None`` = no labels). ``imageset``: image-set file(s) or names to restrict to.
    Sorted by image name; an image name in two folders is an error."""
    from detectron2.structures import BoxMode

    img_dirs = _as_list(image_dirs)
    lbl_dirs = _as_list(label_dirs) if label_dirs is not None else [None] * len(img_dirs)
    if len(lbl_dirs) != len(img_dirs):
        raise ValueError(f"{len(img_dirs)} image folders but {len(lbl_dirs)} label folders")
    tag = name or ", ".join(map(str, img_dirs))
    entries: Dict[str, Tuple[str, Optional[str]]] = {}
    for idir, ldir in zip(img_dirs, lbl_dirs):
        if not os.path.isdir(idir):
            raise FileNotFoundError(f"{tag}: image folder {idir} does not exist")
        images = list_images(idir)
        if ldir is not None:
            if not os.path.isdir(ldir):
                raise FileNotFoundError(f"{tag}: label folder {ldir} does not exist")
            labels = {fn[:-4] for fn in os.listdir(ldir) if fn.endswith(".txt")}
            no_image = sorted(labels - set(images))
            if no_image:
                raise FileNotFoundError(
                    f"{tag}: {len(no_image)} label files have no image in {idir} (e.g. {no_image[0]}.txt)"
                )
            no_label = sorted(set(images) - labels)
            if no_label:
                raise FileNotFoundError(
                    f"{tag}: {len(no_label)} images have no label file in {ldir} (e.g. {images[no_label[0]]})"
                )
        for stem, path in images.items():
            if stem in entries:
                raise ValueError(f"{tag}: image {stem} is in two folders ({entries[stem][0]}, {path})")
            entries[stem] = (path, None if ldir is None else os.path.join(ldir, stem + ".txt"))
    names = _read_names(imageset)
    if names is not None:
        missing = [n for n in names if n not in entries]
        if missing:
            raise FileNotFoundError(f"{tag}: {len(missing)} images of the image set are missing (e.g. {missing[0]})")
        stems = list(dict.fromkeys(names))
    else:
        stems = sorted(entries)

    records: List[dict] = []
    n_obj = n_diff = n_over = 0
    degenerate: List[str] = []
    n_degenerate = 0
    per_class = np.zeros(len(classes), dtype=np.int64)
    for stem in stems:
        path, lpath = entries[stem]
        h, w, _ = image_size(path)
        rec = {"file_name": path, "height": h, "width": w, "image_id": stem}
        if lpath is not None:
            lf = parse_label_file(lpath, classes)
            annos = []
            if len(lf):
                q = lf.quads
                if check_bounds:
                    tol_x = BOUNDS_TOLERANCE_PX + BOUNDS_TOLERANCE_FRAC * w
                    tol_y = BOUNDS_TOLERANCE_PX + BOUNDS_TOLERANCE_FRAC * h
                    x, y = q[..., 0], q[..., 1]
                    far = (x < -tol_x) | (x > w + tol_x) | (y < -tol_y) | (y > h + tol_y)
                    if far.any():
                        j = int(np.nonzero(far.any(axis=1))[0][0])
                        raise ValueError(
                            f"{lpath}:{lf.lines[j]}: corners {q[j].reshape(-1).tolist()} lie outside the image "
                            f"{path} ({w}x{h}) by more than the tolerance ({tol_x:.0f} x {tol_y:.0f} px): is this "
                            "the image that was labelled (same size, not resized)?"
                        )
                    n_over += int(((x < 0) | (x > w) | (y < 0) | (y > h)).any(axis=1).sum())
                boxes = quads_to_rboxes(q)
                small = boxes[:, 3] < DEGENERATE_SIDE
                for j in np.nonzero(small)[0].tolist():
                    n_degenerate += 1
                    if len(degenerate) < 5:
                        degenerate.append(f"{lpath}:{lf.lines[j]}")
                seg = q.reshape(-1, 8).tolist()
                bl = boxes.tolist()
                for j in range(len(lf)):
                    d = int(lf.difficult[j])
                    annos.append(
                        {
                            "bbox": bl[j],
                            "bbox_mode": BoxMode.XYWHA_ABS,
                            "segmentation": [seg[j]],
                            "category_id": int(lf.class_ids[j]),
                            "difficult": d,
                            "iscrowd": int(d > 0),
                        }
                    )
                n_obj += len(lf)
                n_diff += int((lf.difficult > 0).sum())
                np.add.at(per_class, lf.class_ids, 1)
            rec["annotations"] = annos
        records.append(rec)
    msg = f"{tag}: {len(records)} images"
    if lbl_dirs and lbl_dirs[0] is not None:
        counts = ", ".join(f"{c} {int(k)}" for c, k in zip(classes, per_class) if k)
        msg += f", {n_obj} objects ({n_diff} difficult; {counts or 'none'})"
        if n_over:
            msg += f"; {n_over} objects reach past the image border (within tolerance)"
    logger.info(msg)
    if n_degenerate:
        logger.warning(
            f"{tag}: {n_degenerate} degenerate objects (minimum-area rectangle thinner than {DEGENERATE_SIDE} px) "
            f"kept as they are, e.g. {', '.join(degenerate)}"
        )
    return records


def register_dota(
    name: str,
    image_dirs: PathOrPaths,
    label_dirs: Optional[PathOrPaths] = None,
    *,
    classes: Sequence[str] = DOTA_V1_CLASSES,
    gt_dir: Optional[PathOrPaths] = None,
    imageset=None,
    is_split: bool = False,
    overwrite: bool = False,
    loader: Optional[Callable[[], List[dict]]] = None,
    **metadata,
) -> None:
    """Register a DOTA-format dataset lazily (see the module docstring for records and metadata).

    ``gt_dir`` (labelTxt of the original images, used by the evaluator) defaults to ``label_dirs`` for sets on
    original images. ``imageset``: image-set file(s) naming the images to load (sets on original images) and to
    evaluate; for split sets it names the *original* images (``source_images.txt``) and is used by the evaluator
    only. Already registered names raise unless ``overwrite``. ``loader`` replaces the default loading function
    (e.g. a synthetic set that renders its files first).
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if name in DatasetCatalog.list():
        if not overwrite:
            raise ValueError(f"dataset {name!r} is already registered (pass overwrite=True to replace it)")
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    if gt_dir is None and not is_split:
        gt_dir = label_dirs
    load_set = None if is_split else imageset
    classes = list(classes)

    def _load():
        return load_dota_dataset(image_dirs, label_dirs, classes, imageset=load_set, name=name)

    DatasetCatalog.register(name, loader or _load)
    meta = {
        "thing_classes": classes,
        "evaluator_type": "dota",
        "gt_dir": gt_dir,
        "imageset": imageset,
        "is_split": bool(is_split),
        "image_root": image_dirs,
        "label_root": label_dirs,
        "dota_version": "1.5" if "container-crane" in classes else "1.0",
    }
    meta.update(metadata)
    MetadataCatalog.get(name).set(**meta)


def _label_dir(folder: str) -> str:
    for c in _LABEL_DIRS:
        p = os.path.join(folder, c)
        if os.path.isdir(p):
            return p
    return os.path.join(folder, _LABEL_DIRS[0])


def register_all_dota(root: Optional[str] = None) -> None:
    """Register the names of :data:`DOTA_SPLITS` under ``<root>/dota`` (default ``$DETECTRON2_DATASETS``).
    Names already registered are left alone."""
    from detectron2.data import DatasetCatalog

    base = dota_root(root)
    registered = set(DatasetCatalog.list())
    for name, (folders, is_split) in DOTA_SPLITS.items():
        if name in registered:
            continue
        dirs = [os.path.join(base, f) for f in folders]
        test = all(f.startswith("test") for f in folders)
        img_dirs = [os.path.join(d, "images") for d in dirs]
        if is_split:
            lbl_dirs = None if test else [os.path.join(d, "labelTxt") for d in dirs]
            originals = [os.path.join(base, f.rsplit("_", 1)[0]) for f in folders]
            gt = None if test else [_label_dir(o) for o in originals]
            imageset = [os.path.join(d, "source_images.txt") for d in dirs]
        else:
            lbl_dirs = None if test else [_label_dir(d) for d in dirs]
            gt, imageset = lbl_dirs, None
        one = (lambda xs: xs[0] if xs is not None and len(xs) == 1 else xs)
        register_dota(
            name,
            one(img_dirs),
            one(lbl_dirs),
            gt_dir=one(gt),
            imageset=one(imageset) if imageset else None,
            is_split=is_split,
        )
