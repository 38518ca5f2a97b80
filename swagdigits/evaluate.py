"""``swagdigits eval``: how well the service reads real handwriting.

Digits from MNIST and UCI pendigits are rendered as browser canvases
(``shared.images.drawing``) and sent through exactly the path a drawing takes in
production: ``decode_ink`` -> the model's feature pipeline -> ``predict_proba`` of
the production model (in-process), or ``POST /api/predict`` of a running stack
(``--url``). The data files are evaluation data only: they are read from the
paths given and never copied into the project.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from shared.images import drawing
from shared.images.upload import ImageLimits
from shared.images.ink import decode_ink

log = logging.getLogger(__name__)

_DEFAULT_LIMITS = ImageLimits(4 * 1024 * 1024, 4096 * 4096, 8192)


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval", help="measure recognition on real handwriting rendered as canvas drawings",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, metavar="PATH.npz",
                        help="MNIST-style npz with 'images' (n,28,28) and 'labels'")
    parser.add_argument("--pendigits", type=Path, metavar="PATH.csv",
                        help="UCI pendigits csv (16 coordinates then the label per line)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only the first N digits of each set")
    parser.add_argument("--brush", type=float, default=drawing.BRUSH_WIDTH, metavar="PX",
                        help="brush width the pendigits strokes are drawn with "
                             f"(page default {drawing.BRUSH_WIDTH}; try 6 for a thin pen)")
    parser.add_argument("--url", default=None, metavar="URL",
                        help="evaluate a running stack via POST URL/api/predict instead of in-process")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="write confusion matrices as a PNG picture")
    parser.set_defaults(func=run)
    return parser


# ------------------------------------------------------------------ data --
def mnist_drawings(path: Path, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    n = len(labels) if limit is None else min(limit, len(labels))
    for i in range(n):
        yield int(labels[i]), drawing.render_mnist(images[i])


def pendigits_drawings(path: Path, limit: int | None = None,
                       brush: float = drawing.BRUSH_WIDTH) -> Iterator[tuple[int, bytes]]:
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    if limit is not None:
        rows = rows[:limit]
    for row in rows:
        yield int(row[16]), drawing.render_pendigits_row(row[:16], brush=brush)


def _count(path: Path, kind: str, limit: int | None) -> int:
    if kind == "mnist":
        with np.load(path) as data:
            n = len(data["labels"])
    else:
        with open(path, "rb") as fh:
            n = sum(1 for line in fh if line.strip())
    return n if limit is None else min(n, limit)


# ------------------------------------------------------------ predictors --
@dataclass
class Timings:
    decode: list[float] = field(default_factory=list)
    predict: list[float] = field(default_factory=list)   # features + predict_proba


class InProcess:
    """The production code path, timed: decode, then features + predict_proba."""

    def __init__(self, model, limits: ImageLimits):
        self.model = model
        self.limits = limits
        self.timings = Timings()

    def __call__(self, png: bytes) -> np.ndarray:
        """The ten digit probabilities of one drawing."""
        t0 = time.perf_counter()
        ink = decode_ink(png, self.limits)
        t1 = time.perf_counter()
        proba = self.model.predict_proba(self.model.featurize(ink)[None, :])[0]
        t2 = time.perf_counter()
        self.timings.decode.append(t1 - t0)
        self.timings.predict.append(t2 - t1)
        return proba


class Remote:
    """POST each drawing to a running stack's /api/predict, waiting out its rate limit.

    Why wait: a stack with the default ``SWAGDIGITS_RATE_LIMIT_PREDICT`` (600 a
    minute per address) refuses an evaluation of thousands of drawings with
    429 after the first 600. The evaluation is still right, only slower, so
    the client does what the 429's ``Retry-After`` asks (as for a 503) and
    says once how to lift the limit on the server. Timings leave the waits out.
    """

    MAX_WAITS = 10   # per drawing: a server that keeps refusing is an error, not a delay

    def __init__(self, url: str, timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        self.endpoint = url.rstrip("/") + "/api/predict"
        self.timeout = timeout
        self.timings = Timings()
        self.sleep = sleep
        self.waited_s = 0.0

    def __call__(self, png: bytes) -> np.ndarray:
        body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode("ascii")})
        for _ in range(self.MAX_WAITS):
            t0 = time.perf_counter()
            try:
                answer = self._post(body.encode("utf-8"))
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:200]
                retry_after = exc.headers.get("Retry-After") if exc.code in (429, 503) else None
                if retry_after is None:
                    raise RuntimeError(f"{self.endpoint} answered {exc.code}: {detail}") from None
                self._wait(exc.code, float(retry_after))
        else:
            raise RuntimeError(f"{self.endpoint} still refused after {self.MAX_WAITS} waits")
        self.timings.predict.append(time.perf_counter() - t0)
        if "probabilities" not in answer:
            raise RuntimeError(f"{self.endpoint} answered without probabilities: {answer!r}")
        return np.asarray(answer["probabilities"], dtype=np.float64)

    def _post(self, data: bytes) -> dict:
        request = urllib.request.Request(self.endpoint, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read().decode("utf-8"))

    def _wait(self, status: int, seconds: float) -> None:
        if status == 429 and not self.waited_s:
            log.warning("the stack rate-limits this address (SWAGDIGITS_RATE_LIMIT_PREDICT); waiting as "
                        "it asks. Start it with SWAGDIGITS_RATE_LIMIT_PREDICT=0 to evaluate at full speed.")
        seconds = min(max(seconds, 0.1), 60.0)
        self.waited_s += seconds
        self.sleep(seconds)


def production_model(config):
    """The production model from the model store, or a freshly trained one."""
    from shared.model.store import ModelRegistry

    model_dir = getattr(config, "model_dir", None)
    if model_dir is None:
        log.warning("no configuration given: not looking for a production model")
    else:
        try:
            model = ModelRegistry(model_dir).load_production()
        except Exception as exc:  # no production model yet, unreadable store, ...
            log.warning("could not load the production model from %s: %s", model_dir, exc)
        else:
            if model is not None:
                log.info("using production model %s from %s", model.version, model_dir)
                return model, f"production model {model.version}"
    from shared.model.training import fitting as training
    log.warning("no production model: training one in-process from the shipped digits")
    started = time.perf_counter()
    model = training.fit(training.shipped_digits()[0]).as_model()
    return model, f"trained in-process from shipped digits ({time.perf_counter() - started:.1f}s)"


# ---------------------------------------------------------------- report --
@dataclass
class SetResult:
    """Every answer of one set: true labels and the ten probabilities of each."""

    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """Confusion matrix, true x predicted."""
        matrix = np.zeros((10, 10), dtype=np.int64)
        np.add.at(matrix, (self.labels, np.argmax(self.probabilities, axis=1)), 1)
        return matrix


def evaluate_set(name: str, samples: Iterator[tuple[int, bytes]], total: int,
                 predict: Callable[[bytes], np.ndarray]) -> SetResult:
    from tqdm import tqdm

    labels, probabilities = [], []
    for label, png in tqdm(samples, total=total, desc=name, unit="digit", leave=False):
        labels.append(label)
        probabilities.append(predict(png))
    return SetResult(np.asarray(labels, dtype=np.int64), np.asarray(probabilities).reshape(-1, 10))


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% confidence interval of a proportion (Wilson score): honest at small n and near 100%."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def unsure_report(result: SetResult, threshold: float) -> str:
    """What the page's "not sure" question does on this set at ``threshold``."""
    order = np.argsort(result.probabilities, axis=1)[:, ::-1]
    top = result.probabilities[np.arange(len(order)), order[:, 0]]
    right = order[:, 0] == result.labels
    in_two = right | (order[:, 1] == result.labels)
    unsure = top < threshold
    share = lambda mask: f"{np.mean(mask) * 100:.1f}%" if mask.size else "n/a"
    return (f"  unsure below {threshold:g}: {share(unsure)} asked; right {share(right[~unsure])} when sure, "
            f"{share(right[unsure])} when unsure; the two guesses hold the answer {share(in_two[unsure])} "
            f"of the time asked")


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    arr = np.asarray(values) * 1000.0
    return f"mean {arr.mean():.3f} ms, p99 {np.percentile(arr, 99):.3f} ms"


def format_report(name: str, matrix: np.ndarray, top: int = 8) -> str:
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    low, high = wilson_interval(correct, total)
    lines = [f"{name}: accuracy {correct / max(total, 1):.4f} ({correct}/{total}), "
             f"95% CI [{low:.4f}, {high:.4f}]"]
    recalls = []
    for d in range(10):
        n = int(matrix[d].sum())
        recalls.append(f"{d}:{matrix[d, d] / n:.3f}" if n else f"{d}:n/a")
    lines.append("  recall per digit  " + "  ".join(recalls))
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:top]
    confusions = [f"{t}->{p} x{off[t, p]}" for t, p in (np.unravel_index(i, off.shape) for i in order)
                  if off[t, p] > 0]
    lines.append("  most common confusions (true->predicted)  " + (", ".join(confusions) or "none"))
    return "\n".join(lines)


def plot_confusions(matrices: dict[str, np.ndarray], path: Path) -> None:
    """Row-normalised confusion matrices side by side, drawn with Pillow."""
    from PIL import Image, ImageDraw

    cell, left, top, gap = 36, 40, 50, 30
    side = left + 10 * cell
    width = len(matrices) * side + (len(matrices) + 1) * gap
    img = Image.new("RGB", (width, top + 10 * cell + 40), "white")
    draw = ImageDraw.Draw(img)
    for k, (name, matrix) in enumerate(matrices.items()):
        x0 = gap + k * (side + gap) + left
        acc = np.trace(matrix) / max(matrix.sum(), 1)
        draw.text((x0, 10), f"{name}  accuracy {acc:.3f}", fill="black")
        draw.text((x0, 28), "predicted ->", fill="black")
        rows = matrix.sum(axis=1, keepdims=True)
        share = matrix / np.maximum(rows, 1)
        for t in range(10):
            draw.text((x0 - 20, top + t * cell + cell // 2 - 5), str(t), fill="black")
            draw.text((x0 + t * cell + cell // 2 - 3, top + 10 * cell + 5), str(t), fill="black")
            for p in range(10):
                v = float(share[t, p])
                if t == p:
                    colour = (int(255 - 200 * v), int(255 - 60 * v), int(255 - 200 * v))
                else:
                    v = min(1.0, v * 4)
                    colour = (255, int(255 - 200 * v), int(255 - 200 * v))
                box = (x0 + p * cell, top + t * cell, x0 + (p + 1) * cell - 1, top + (t + 1) * cell - 1)
                draw.rectangle(box, fill=colour, outline=(220, 220, 220))
                if matrix[t, p]:
                    draw.text((box[0] + 3, box[1] + cell // 2 - 5), str(int(matrix[t, p])), fill="black")
    img.save(path)


def run(args, config) -> int:
    sets = []
    if args.mnist:
        sets.append(("mnist", args.mnist, mnist_drawings))
    if args.pendigits:
        sets.append(("pendigits", args.pendigits,
                     lambda path, limit: pendigits_drawings(path, limit, brush=args.brush)))
    if not sets:
        log.error("nothing to evaluate: give --mnist and/or --pendigits")
        return 2
    for _, path, _ in sets:
        if not Path(path).is_file():
            log.error("no such file: %s", path)
            return 2
    if args.limit is not None and args.limit < 1:
        log.error("--limit must be at least 1")
        return 2
    if not 1.0 <= args.brush <= 100.0:
        log.error("--brush must be between 1 and 100 pixels")
        return 2

    if args.url:
        predictor = Remote(args.url)
        source = f"running stack at {args.url}"
    else:
        model, source = production_model(config)
        limits = ImageLimits.from_config(config) if config is not None else _DEFAULT_LIMITS
        predictor = InProcess(model, limits)
    print(f"model: {source}")

    matrices: dict[str, np.ndarray] = {}
    threshold = config.unsure_below if config is not None else 0.6
    try:
        for name, path, reader in sets:
            total = _count(Path(path), name, args.limit)
            result = evaluate_set(name, reader(Path(path), args.limit), total, predictor)
            matrices[name] = result.matrix
            print(format_report(name, matrices[name]))
            print(unsure_report(result, threshold))
    except (RuntimeError, urllib.error.URLError, OSError) as exc:
        log.error("evaluation failed: %s", exc)
        return 1

    timings = predictor.timings
    if args.url:
        print(f"round trip per drawing: {_ms(timings.predict)}")
    else:
        print(f"PNG decode per drawing: {_ms(timings.decode)}")
        print(f"preprocess + predict per drawing: {_ms(timings.predict)}")
    if args.plot:
        plot_confusions(matrices, args.plot)
        print(f"confusion matrices written to {args.plot}")
    return 0
