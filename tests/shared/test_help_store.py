"""The help store against a real redis-server: atomic files, one copy per image, shared counts."""
import hashlib
import json
import threading

import pytest

from shared.messaging import protocol as p
from shared.help_store import HelpStore, is_holdout
from shared.server_secrets import ServerSecrets
from testkit.drawings import digit_png

KEY = b"k" * 32


def secrets(tmp_path, name="secrets") -> ServerSecrets:
    return ServerSecrets(tmp_path / name)


@pytest.fixture
def store(tmp_path, redis_conn):
    return HelpStore(tmp_path / "help", redis_conn, secrets=secrets(tmp_path))


def test_an_image_is_stored_under_its_label_with_metadata(store):
    image = digit_png(3)
    added = store.add(image, 3, predicted=5, model_version="v1", job_id="a" * 32, client="203.0.113.9")
    assert added.created and added.pending == 1
    png = store.root / "3" / f"{added.id}.png"
    assert png.read_bytes() == image
    meta = json.loads(png.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(image).hexdigest()
    assert (meta["label"], meta["predicted"], meta["model_version"]) == (3, 5, "v1")
    assert meta["received_at"] and meta["client"]
    assert "203.0.113.9" not in png.with_suffix(".json").read_text()


def test_the_same_image_is_kept_once_even_with_another_label(store):
    image = digit_png(7)
    first = store.add(image, 7)
    again = store.add(image, 7)
    other = store.add(image, 1)
    assert first.created and not again.created and not other.created
    assert first.id == again.id == other.id and other.label == 7
    assert [e.id for e in store.entries()] == [first.id]
    assert store.pending() == 1


def test_entries_already_known_are_skipped_without_reading_their_metadata(store):
    known = store.add(digit_png(1), 1)
    fresh = store.add(digit_png(2), 2)
    (store.root / "1" / f"{known.id}.json").write_text("{ unreadable")   # read it and it would warn
    assert [e.id for e in store.entries(skip={known.id})] == [fresh.id]
    assert [e.id for e in store.entries()] == [fresh.id], "without skip the broken entry is read (and left out)"


def test_client_hashes_are_stable_per_address_and_differ_between_addresses(store):
    a = store.add(digit_png(1), 1, client="198.51.100.1")
    b = store.add(digit_png(2), 2, client="198.51.100.1")
    c = store.add(digit_png(4), 4, client="198.51.100.2")
    meta = {x.id: json.loads((store.root / str(x.label) / f"{x.id}.json").read_text())["client"]
            for x in (a, b, c)}
    assert meta[a.id] == meta[b.id] != meta[c.id]


def test_twenty_concurrent_senders_store_every_image_once_and_no_partial_file(tmp_path, redis_server):
    import redis

    images = [digit_png(d, brush=8 + i) for i in range(10) for d in range(10)]   # 100 distinct
    barrier = threading.Barrier(20)
    results, errors = [], []

    def client(n):
        conn = redis.Redis.from_url(redis_server.url)
        store = HelpStore(tmp_path / "help", conn, secrets=secrets(tmp_path))   # its own "web process"
        barrier.wait()
        try:
            for i in range(n % 5, len(images), 4):    # overlapping shares: many duplicates
                results.append(store.add(images[i], i % 10, client=f"10.0.0.{n}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    created = [r for r in results if r.created]
    assert len(created) == len({r.id for r in results}) == len(images)
    files = sorted(f.name for f in (tmp_path / "help").rglob("*") if f.is_file())
    assert not [f for f in files if f.endswith(".tmp")]
    pngs = list((tmp_path / "help").rglob("*.png"))
    assert len(pngs) == len(images)
    assert {png.read_bytes() for png in pngs} == set(images)
    assert sorted(r.pending for r in created) == list(range(1, len(images) + 1))
    redis.Redis.from_url(redis_server.url).flushdb()


def test_pending_counts_images_since_the_last_retraining(store):
    for d in range(4):
        store.add(digit_png(d), d)
    assert store.pending() == 4
    store.mark_trained(3)
    assert store.pending() == 1
    store.mark_trained(2)       # an older, slower retraining finishing late changes nothing
    assert store.pending() == 1
    assert store.add(digit_png(9), 9).pending == 2


def test_a_lost_total_is_rebuilt_from_the_files(store, redis_conn):
    for d in range(3):
        store.add(digit_png(d), d)
    redis_conn.delete(p.HELP_TOTAL_KEY, p.HELP_TRAINED_KEY)
    assert store.pending() == 3
    assert store.add(digit_png(5), 5).pending == 4


def test_the_held_back_share_is_about_the_configured_share():
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    assert 320 < sum(is_holdout(h, 0.1, KEY) for h in hashes) < 480
    assert not any(is_holdout(h, 0.0, KEY) for h in hashes)
    assert all(is_holdout(h, 1.0, KEY) for h in hashes)


def test_a_sender_cannot_predict_which_of_its_images_are_held_back():
    """Issue 17: the split was ``sha256(image)[:8] < share``, and the sender knows its bytes (the
    normalisation is public code), so it could choose which images it sends get trained on.
    Keyed by the server's secret, the sender's best guess from the hash agrees by chance only,
    and two deployments (two secrets) split the same images differently."""
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    sender_guess = [int(h[:8], 16) < 0.5 * 0x1_0000_0000 for h in hashes]    # the old rule
    held = [is_holdout(h, 0.5, KEY) for h in hashes]
    assert 1800 < sum(g == h for g, h in zip(sender_guess, held)) < 2200
    other = [is_holdout(h, 0.5, b"o" * 32) for h in hashes]
    assert 1800 < sum(a == b for a, b in zip(held, other)) < 2200
    assert held == [is_holdout(h, 0.5, KEY) for h in hashes]


_HELD_IN_A_CHILD = """
import json, sys
from pathlib import Path
from shared.help_store import HelpStore
from shared.server_secrets import ServerSecrets
store = HelpStore(Path(sys.argv[1]), secrets=ServerSecrets(Path(sys.argv[2])))
held = store.holdout(0.5)
print(json.dumps(sorted(h for h in json.load(sys.stdin) if held(h))))
"""


def test_which_images_are_held_back_depends_on_the_image_and_the_deployment_alone(tmp_path, redis_conn):
    """README: an image never moves between training and held-back: not with the order images
    arrive in, the store they are in, or the process (a restart, another run of the retrain
    worker) asking. Another deployment, with its own secret, holds back others."""
    import subprocess
    import sys

    images = [digit_png(d, brush=b) for b in (10, 14, 18, 22) for d in range(10)]
    first = HelpStore(tmp_path / "a", redis_conn, secrets=secrets(tmp_path))
    second = HelpStore(tmp_path / "b", secrets=secrets(tmp_path))
    elsewhere = HelpStore(tmp_path / "c", secrets=secrets(tmp_path, "other-secrets"))
    for i, image in enumerate(images):
        first.add(image, i % 10)
        elsewhere.add(image, i % 10)
    for i, image in reversed(list(enumerate(images))):
        second.add(image, i % 10)

    def held(store):
        is_held = store.holdout(0.5)
        return {e.png.read_bytes() for e in store.entries() if is_held(e.sha256)}

    assert 5 < len(held(first)) < 35
    assert held(first) == held(second)
    assert held(first) != held(elsewhere)
    shas = [e.sha256 for e in first.entries()]
    child = subprocess.run([sys.executable, "-c", _HELD_IN_A_CHILD, str(tmp_path / "a"),
                            str(tmp_path / "secrets")], input=json.dumps(shas),
                           capture_output=True, text=True, timeout=60, env={**__import__("os").environ,
                                                                            "PYTHONHASHSEED": "12345"})
    assert child.returncode == 0, child.stderr
    assert set(json.loads(child.stdout)) == {hashlib.sha256(b).hexdigest() for b in held(first)}


def test_client_hashes_are_keyed_by_the_server_secret_not_a_file_beside_the_help_data(tmp_path):
    a = HelpStore(tmp_path / "a", secrets=secrets(tmp_path))
    b = HelpStore(tmp_path / "b", secrets=secrets(tmp_path, "other-secrets"))
    x = a.add(digit_png(1), 1, client="198.51.100.1")
    y = b.add(digit_png(1), 1, client="198.51.100.1")
    [ea], [eb] = a.entries(), b.entries()
    assert ea.client and eb.client and ea.client != eb.client
    assert x.id == y.id
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".claims", "1"]


def test_bad_labels_are_refused_before_anything_is_written(store):
    for label in (10, -1, True, "3"):
        with pytest.raises(ValueError):
            store.add(digit_png(3), label)
    assert not store.root.exists() or not list(store.root.rglob("*.png"))


def test_a_quota_refuses_an_image_that_would_not_fit_and_writes_nothing(tmp_path, redis_conn):
    from shared.help_store import HelpStoreFull

    store = HelpStore(tmp_path / "help", redis_conn, secrets=secrets(tmp_path))
    store.add(digit_png(1), 1)
    used = store.stored_bytes()
    assert used == store.bytes_on_disk() > 0
    full = HelpStore(tmp_path / "help", redis_conn, secrets=secrets(tmp_path), max_bytes=used + 100)
    with pytest.raises(HelpStoreFull) as refused:
        full.add(digit_png(2), 2)
    assert refused.value.errno == __import__("errno").ENOSPC
    assert store.count() == 1 and not (store.root / ".claims").joinpath("x").exists()
    roomy = HelpStore(tmp_path / "help", redis_conn, secrets=secrets(tmp_path), max_bytes=used * 10)
    assert roomy.add(digit_png(2), 2).created
    assert roomy.stored_bytes() == roomy.bytes_on_disk()


def test_the_byte_figure_is_recounted_from_the_files_when_redis_lost_it(store, redis_conn):
    store.add(digit_png(1), 1)
    redis_conn.delete(p.HELP_BYTES_KEY)
    assert store.stored_bytes() == store.bytes_on_disk()
    assert 0 < redis_conn.ttl(p.HELP_BYTES_KEY) <= 3600   # and again within the hour
