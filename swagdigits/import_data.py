"""``swagdigits import``: seed the model with labelled images an operator owns.

Two sources: a folder with one sub-folder per label (``0/`` ... ``9/``, PNG
or JPEG files), or an ``.npz`` with ``images`` (n, H, W) uint8 and ``labels``
(n,). Every image goes through the checks a browser's help image gets (format,
size and pixel limits; it must decode to an ink map), is re-encoded as the
same small normalised PNG (``shared.images.normalise``) and stored in the help store, which keeps each distinct image once. The images
then train the next retraining like any help data, and that candidate still
has to pass the promotion gate. A bad file is reported and skipped, never
fatal.
"""
from __future__ import annotations

import argparse
import io
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def register(sub) -> None:
    parser = sub.add_parser("import", help="store a folder of labelled images (or an .npz) as help data",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="LABELLED_DIR (sub-folders 0-9) or FILE.npz")
    parser.add_argument("--retrain", action="store_true", help="queue a retraining afterwards")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)   # (item, why)

    @property
    def seen(self) -> int:
        return self.stored + self.duplicates + len(self.rejected)


def items(source: Path) -> Iterator[tuple[str, int | None, bytes | str]]:
    """(name, label or None, image bytes or why it cannot be read) for every item of ``source``."""
    if source.is_dir():
        yield from _folder_items(source)
    elif source.suffix == ".npz":
        yield from _npz_items(source)
    else:
        raise ValueError(f"{source}: expected a folder with sub-folders 0-9 or an .npz file")


def _folder_items(root: Path):
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = str(path.relative_to(root))
        label_dir = path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 1 else ""
        label = int(label_dir) if label_dir.isdigit() and len(label_dir) == 1 else None
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            yield name, label, f"not a PNG or JPEG file ({path.suffix or 'no suffix'})"
        elif label is None:
            yield name, None, "not in a folder named 0-9"
        else:
            try:
                yield name, label, path.read_bytes()
            except OSError as exc:
                yield name, label, f"unreadable: {exc.strerror or exc}"


def _npz_items(path: Path):
    import numpy as np
    from PIL import Image

    with np.load(path, allow_pickle=False) as data:
        if "images" not in data.files or "labels" not in data.files:
            raise ValueError(f"{path}: needs arrays 'images' (n, H, W) and 'labels' (n,)")
        images, labels = data["images"], data["labels"]
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"{path}: 'images' must be (n, H, W) with one label each")
    for i, (image, label) in enumerate(zip(images, labels)):
        name = f"{path.name}[{i}]"
        if not (np.issubdtype(labels.dtype, np.integer) and 0 <= int(label) <= 9):
            yield name, None, f"label {label!r} is not a digit 0-9"
            continue
        buffer = io.BytesIO()
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "L").save(buffer, format="PNG")
        yield name, int(label), buffer.getvalue()


def checked_png(data: bytes, limits) -> bytes:
    """The image as the normalised PNG ``/helpdata`` stores, after the same checks; raises ImageRejected."""
    from shared.images.ink import decode_ink
    from shared.images.normalise import normalised_png

    png = normalised_png(data, limits)
    decode_ink(png, limits)          # it must be an image the model can read
    return png


def import_into(store, source: Path, limits, progress: bool = True) -> ImportReport:
    from tqdm import tqdm

    from shared.images.upload import ImageRejected

    report = ImportReport()
    for name, label, data in tqdm(items(source), desc="import", unit="image", disable=not progress,
                                  file=sys.stderr):
        if isinstance(data, str):
            report.rejected.append((name, data))
            continue
        try:
            added = store.add(checked_png(data, limits), label, client="swagdigits import", trusted=True)
        except ImageRejected as exc:
            report.rejected.append((name, exc.message))
            continue
        if added.created:
            report.stored += 1
        else:
            report.duplicates += 1
    return report


def _run(args, config) -> int:
    from shared.help_store import HelpStore
    from shared.images.upload import ImageLimits
    from shared.messaging import retrain_trigger
    from shared.messaging.connection import connect

    conn = connect(config.redis_url)
    store = HelpStore.from_config(config, conn)
    try:
        report = import_into(store, args.source, ImageLimits.from_config(config), progress=not args.quiet)
    except (OSError, ValueError) as exc:
        print(f"cannot import {args.source}: {exc}", file=sys.stderr)
        return 2
    for name, why in report.rejected:
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"{report.stored} stored, {report.duplicates} already there, {len(report.rejected)} skipped "
          f"({report.seen} seen); {store.pending()} help images await the next retraining")
    if args.retrain and report.stored:
        requested = retrain_trigger.request_retrain(conn, reason=f"import of {report.stored} images")
        print(f"retraining {'queued' if requested.queued else 'already waiting'}: job {requested.job_id}")
    return 0 if report.stored or report.duplicates else 1
