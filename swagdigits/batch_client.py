"""``swagdigits batch PATH...``: send a folder of digit images to a running service.

Posts every PNG/JPEG found (folders are searched recursively, in sorted
order) as multipart batches of at most --request-mb each (the service refuses
larger bodies with 413), follows their progress with one progress bar, and
writes one CSV row per image in input order with the file it came from.
Exit status: 0 when every image got a digit, 2 when some images could not be
read (their rows say why), 1 when the batch could not be sent or did not finish.
"""
from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path

import requests
from tqdm import tqdm

log = logging.getLogger("swagdigits.batch")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
POLL_S = 0.25
REQUEST_MB = 32            # default body per request: under the service's SWAGDIGITS_BATCH_MAX_BYTES (48 MiB)
MAX_IMAGES = 10_000        # the service's default SWAGDIGITS_BATCH_MAX_IMAGES
PART_OVERHEAD = 200        # multipart headers per file, bytes
BUSY_RETRIES = 30          # 503 + Retry-After: the server is reading other batches


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch", help="predict every image in files or folders through a running service",
        description=__doc__.split("\n\n")[1])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--url", default=None,
                        help="service base URL (default: http://SWAGDIGITS_HOST:SWAGDIGITS_PORT)")
    parser.add_argument("--out", type=Path, help="write results here as CSV (default: stdout)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the batch")
    parser.add_argument("--request-mb", type=float, default=REQUEST_MB,
                        help=f"largest request body in MB; more images go in further batches (default {REQUEST_MB})")
    parser.set_defaults(func=run)


def find_images(paths: list[str]) -> list[Path]:
    found = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def run(args, config) -> int:
    url = (args.url or f"http://{config.host}:{config.port}").rstrip("/")
    try:
        files = find_images(args.paths)
    except FileNotFoundError as exc:
        print(f"swagdigits batch: {exc}", file=sys.stderr)
        return 1
    if not files:
        print("swagdigits batch: no PNG or JPEG files found", file=sys.stderr)
        return 1
    results: list[dict] = []
    deadline = time.monotonic() + args.timeout
    try:
        with tqdm(total=len(files), unit="img", file=sys.stderr) as bar:
            for group in split(files, int(args.request_mb * 1024 * 1024)):
                res = _submit(url, group)
                if res.status_code != 202:
                    print(f"swagdigits batch: {res.status_code} {_error(res)}", file=sys.stderr)
                    return 1
                body = _follow(url + res.json()["status_url"], bar, deadline)
                if body is None:
                    print("swagdigits batch: timed out waiting for the batch", file=sys.stderr)
                    return 1
                results += [{**r, "index": r["index"] + len(results)} for r in body["results"]]
    except requests.RequestException as exc:
        print(f"swagdigits batch: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    _write(results, files, args.out)
    errors = sum("error" in r for r in results)
    print(f"{len(files) - errors} of {len(files)} images predicted"
          + (f"; {errors} could not be read" if errors else ""), file=sys.stderr)
    return 2 if errors else 0


def split(files: list[Path], max_bytes: int) -> list[list[Path]]:
    """Consecutive groups of files whose multipart bodies stay under ``max_bytes`` (a larger
    file goes alone: the service says whether it takes it) and ``MAX_IMAGES`` files."""
    groups: list[list[Path]] = [[]]
    size = 0
    for f in files:
        cost = f.stat().st_size + PART_OVERHEAD
        if groups[-1] and (size + cost > max_bytes or len(groups[-1]) == MAX_IMAGES):
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += cost
    return groups


def _submit(url: str, files: list[Path]) -> requests.Response:
    """POST one batch, waiting out 503 + Retry-After (the server is reading other batches)."""
    parts = [("file", (f.name, f.read_bytes(), "application/octet-stream")) for f in files]
    for _ in range(BUSY_RETRIES):
        res = requests.post(f"{url}/api/batches", files=parts, timeout=300)
        if res.status_code != 503 or "Retry-After" not in res.headers:
            return res
        time.sleep(min(30.0, float(res.headers["Retry-After"])))
    return res


def _follow(status_url: str, bar: tqdm, deadline: float) -> dict | None:
    """Poll one batch until it finishes, adding its progress to ``bar``; None at the deadline."""
    start = bar.n
    while time.monotonic() < deadline:
        body = requests.get(status_url, timeout=60).json()
        bar.update(start + body["done"] - bar.n)
        if body["state"] == "finished":
            return body
        time.sleep(POLL_S)
    return None


def _write(results: list[dict], files: list[Path], out: Path | None) -> None:
    handle = open(out, "w", newline="") if out else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(["index", "file", "digit", "confidence", "model_version", "error"])
        for r in results:
            probs = r.get("probabilities")
            writer.writerow([r["index"], files[r["index"]], r.get("digit", ""),
                             max(probs) if probs else "", r.get("model_version", ""), r.get("error", "")])
    finally:
        if out:
            handle.close()


def _error(res: requests.Response) -> str:
    try:
        return res.json()["error"]
    except (ValueError, KeyError):
        return res.text[:200]
