"""``swagdigits import``: an operator's labelled folder or .npz becomes help data; bad files are skipped."""
import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from shared.help_store import HelpStore
from shared.server_secrets import ServerSecrets
from shared.images.upload import ImageLimits
from swagdigits.import_data import import_into
from testkit.drawings import digit_png

LIMITS = ImageLimits(4 * 1024 * 1024, 4096 * 4096, 8192)


def _jpeg(digit: int) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(digit_png(digit))).convert("RGBA").getchannel("A").save(out, format="JPEG")
    return out.getvalue()


def _folder(root):
    for digit in (1, 4, 7):
        (root / str(digit)).mkdir(parents=True)
        (root / str(digit) / f"a{digit}.png").write_bytes(digit_png(digit))
    (root / "7" / "same-again.png").write_bytes(digit_png(7))         # a duplicate
    (root / "3").mkdir()
    (root / "3" / "scan.jpg").write_bytes(_jpeg(3))
    (root / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (root / "3" / "notes.txt").write_text("not an image")
    (root / "x").mkdir()
    (root / "x" / "unlabelled.png").write_bytes(digit_png(2))
    return root


def test_a_labelled_folder_is_stored_once_per_image_and_bad_files_are_reported(tmp_path, redis_conn):
    store = HelpStore(tmp_path / "help", redis_conn, secrets=ServerSecrets(tmp_path / "secrets"))
    report = import_into(store, _folder(tmp_path / "in"), LIMITS, progress=False)
    assert (report.stored, report.duplicates) == (4, 1)
    assert sorted(name for name, _ in report.rejected) == ["3/broken.png", "3/notes.txt", "x/unlabelled.png"]
    assert sorted(e.label for e in store.entries()) == [1, 3, 4, 7]
    assert store.pending() == 4
    for entry in store.entries():   # stored re-encoded as PNG, readable like any help image
        assert entry.png.read_bytes().startswith(b"\x89PNG")


def test_an_npz_of_images_and_labels_is_imported(tmp_path, redis_conn):
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 6:22, 12:16] = 255                     # white bars on black, MNIST style
    images[1, 6:10, 8:20] = 255

    np.savez(tmp_path / "digits.npz", images=images, labels=np.array([1, 7, 11]))
    store = HelpStore(tmp_path / "help", redis_conn, secrets=ServerSecrets(tmp_path / "secrets"))
    report = import_into(store, tmp_path / "digits.npz", LIMITS, progress=False)
    assert report.stored == 2 and [n for n, _ in report.rejected] == ["digits.npz[2]"]
    assert sorted(e.label for e in store.entries()) == [1, 7]


def test_the_command_reports_and_exits_by_outcome(tmp_path, redis_url):
    env = {**os.environ, "REDIS_URL": redis_url, "SWAGDIGITS_HELP_DIR": str(tmp_path / "help"),
           "SWAGDIGITS_MODEL_DIR": str(tmp_path / "models")}
    run = lambda src: subprocess.run([sys.executable, "-m", "swagdigits", "import", str(src), "--quiet"],
                                     env=env, capture_output=True, text=True, timeout=60)
    ok = run(_folder(tmp_path / "in"))
    assert ok.returncode == 0, ok.stderr
    assert "4 stored, 1 already there, 3 skipped" in ok.stdout
    assert "skipped 3/broken.png" in ok.stderr
    (tmp_path / "empty" / "5").mkdir(parents=True)
    (tmp_path / "empty" / "5" / "junk.png").write_bytes(b"junk")
    assert run(tmp_path / "empty").returncode == 1
    assert run(tmp_path / "nothing-here.csv").returncode == 2
