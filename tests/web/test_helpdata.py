"""POST /helpdata through the Flask test client (fakeredis): validation, storage, trigger."""
import base64
import io

import pytest
from shared.messaging import retrain_trigger

from shared.messaging import protocol as p
from shared.images.normalise import MAX_STORED_BYTES, normalised_png
from shared.images.upload import ImageLimits
from testkit.drawings import digit_png


def app_limits(config) -> ImageLimits:
    return ImageLimits.from_config(config)


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _files(help_dir):
    return sorted(f for f in help_dir.rglob("*") if f.is_file() and f.suffix in (".png", ".json"))


def test_a_labelled_drawing_is_stored_and_counted(client, web_config):
    res = client.post("/helpdata", json={"image": _data_url(digit_png(4)), "label": 4, "predicted": 9})
    assert res.status_code == 201, res.json
    body = res.json
    assert body["pending"] == 1 and len(body["id"]) == 32 and body["duplicate"] is False
    stored = (web_config.help_dir / "4" / f"{body['id']}.png").read_bytes()
    assert stored == normalised_png(digit_png(4), app_limits(web_config))   # not the bytes sent
    assert client.get("/helpdata").json["pending"] == 1


def test_multipart_with_a_label_field_works(client, web_config):
    res = client.post("/helpdata", data={"label": "2", "file": (io.BytesIO(digit_png(2)), "d.png")},
                      content_type="multipart/form-data")
    assert res.status_code == 201, res.json
    assert (web_config.help_dir / "2" / f"{res.json['id']}.png").exists()


def test_the_same_drawing_twice_is_kept_once(client, web_config):
    first = client.post("/helpdata", json={"image": _data_url(digit_png(8)), "label": 8})
    second = client.post("/helpdata", json={"image": _data_url(digit_png(8)), "label": 8})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json["duplicate"] is True and second.json["id"] == first.json["id"]
    assert second.json["pending"] == 1
    assert len(list(web_config.help_dir.rglob("*.png"))) == 1


@pytest.mark.parametrize("label", [None, 10, -1, 3.5, "seven", True, [1], "12"])
def test_bad_labels_are_refused_and_nothing_is_written(client, web_config, label):
    body = {"image": _data_url(digit_png(1))}
    if label is not None:
        body["label"] = label
    res = client.post("/helpdata", json=body)
    assert res.status_code == 400 and "label" in res.json["error"]
    assert _files(web_config.help_dir) == []


@pytest.mark.parametrize("image, status", [
    ("not base64!!", 400),
    (base64.b64encode(b"GIF89a" + b"\0" * 40).decode(), 415),
    (base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 10).decode(), 415),
    ("data:image/png;base64,", 400),
    ("A" * 400_000, 413),
])
def test_bad_images_are_refused_and_nothing_is_written(client, web_config, image, status):
    res = client.post("/helpdata", json={"image": image, "label": 1})
    assert res.status_code == status, res.json
    assert res.json["status"] == status
    assert _files(web_config.help_dir) == []


def test_other_bad_requests_are_4xx_json(client):
    assert client.post("/helpdata", data="label=1", content_type="text/plain").status_code == 415
    assert client.post("/helpdata", data="{", content_type="application/json").status_code == 400
    res = client.post("/helpdata", json={"image": _data_url(digit_png(1)), "label": 1, "job_id": "../x"})
    assert res.status_code == 400


def test_the_prediction_and_version_come_from_the_job_when_given(client, app, web_config):
    import json

    s = app.extensions["swagdigits"]
    job_id = "b" * 32
    s.conn.hset(p.JOB_KEY.format(job_id), mapping={"state": p.FINISHED, "result": json.dumps(
        {"job_id": job_id, "digit": 6, "probabilities": [0.1] * 10, "model_version": "model-x"})})
    res = client.post("/helpdata", json={"image": _data_url(digit_png(5)), "label": 5, "predicted": 1,
                                         "job_id": job_id})
    meta = json.loads((web_config.help_dir / "5" / f"{res.json['id']}.json").read_text())
    assert (meta["predicted"], meta["model_version"], meta["job_id"]) == (6, "model-x", job_id)


def test_a_correction_is_counted_for_the_model_version_that_gave_the_answer(client, app, web_config):
    from prometheus_client import REGISTRY

    def corrections(version):
        return REGISTRY.get_sample_value("swagdigits_corrections_total", {"version": version}) or 0

    import json

    s = app.extensions["swagdigits"]
    for job_id, digit in (("c" * 32, 6), ("d" * 32, 4)):
        s.conn.hset(p.JOB_KEY.format(job_id), mapping={"state": p.FINISHED, "result": json.dumps(
            {"job_id": job_id, "digit": digit, "probabilities": [0.1] * 10, "model_version": "model-c"})})
    before = corrections("model-c")
    assert client.post("/helpdata", json={"image": _data_url(digit_png(5)), "label": 5,
                                          "job_id": "c" * 32}).status_code == 201   # 6 was wrong
    assert client.post("/helpdata", json={"image": _data_url(digit_png(4)), "label": 4,
                                          "job_id": "d" * 32}).status_code == 201   # 4 was right
    assert client.post("/helpdata", json={"image": _data_url(digit_png(8)), "label": 8,
                                          "predicted": 3}).status_code == 201       # no job: whose answer?
    assert corrections("model-c") - before == 1


def test_reaching_the_threshold_queues_exactly_one_retrain(app, fake_conn, web_config):
    from dataclasses import replace

    s = app.extensions["swagdigits"]
    s.config = replace(web_config, retrain_threshold=3)
    client = app.test_client()
    job_ids = []
    for i, d in enumerate([0, 1, 2, 3, 4]):
        res = client.post("/helpdata", json={"image": _data_url(digit_png(d)), "label": d})
        assert res.status_code == 201
        job_ids.append(res.json.get("retrain_job_id"))
    assert job_ids[:2] == [None, None] and job_ids[2] and job_ids[3:] == [None, None]
    queue = retrain_trigger.retrain_queue(fake_conn)
    assert queue.job_ids == [job_ids[2]]
    assert queue.fetch_job(job_ids[2]).func_name == p.RETRAIN_JOB_FUNC


def test_json_fields_are_taken_as_the_openapi_document_types_them(client):
    """JSON integers (3.0 is one), null for an unknown prediction; a JSON string is not a digit."""
    image = _data_url(digit_png(5))
    assert client.post("/helpdata", json={"image": image, "label": 5.0, "predicted": None}).status_code == 201
    for bad in ({"label": "5"}, {"label": 5, "predicted": ""}, {"label": 5, "job_id": ""},
                {"label": 5, "job_id": 7}, {"label": 5.5}):
        res = client.post("/helpdata", json={"image": image, **bad})
        assert res.status_code == 400 and res.json["status"] == 400, bad


def _tiny_png_with_trailing_bytes(extra: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, format="PNG")
    return buffer.getvalue() + b"\0" * extra


def test_help_images_are_stored_re_encoded_small_without_trailing_bytes(client, web_config):
    """A 28x28 PNG with trailing bytes used to be kept byte for byte (issue 17, finding 6)."""
    sent = _tiny_png_with_trailing_bytes(120_000)
    res = client.post("/helpdata", json={"image": _data_url(sent), "label": 1})
    assert res.status_code == 201, res.json
    stored = (web_config.help_dir / "1" / f"{res.json['id']}.png").read_bytes()
    assert len(stored) < 200 and stored.endswith(b"IEND\xaeB`\x82")
    # The worst case, incompressible noise larger than the canvas, is bounded too.
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300), dtype=np.uint8)).save(
        buffer, format="PNG")
    big = client.post("/helpdata", json={"image": _data_url(buffer.getvalue()), "label": 3})
    assert big.status_code == 201, big.json
    stored = (web_config.help_dir / "3" / f"{big.json['id']}.png").read_bytes()
    assert len(stored) <= MAX_STORED_BYTES and Image.open(io.BytesIO(stored)).size == (150, 150)


def _with(app, **changes):
    from dataclasses import replace

    s = app.extensions["swagdigits"]
    s.config = replace(s.config, **changes)
    return s


def test_one_address_may_add_its_daily_quota_then_gets_a_429_naming_when(app, fake_conn, web_config):
    from web.rate_limit import DAY_S, HELP_QUOTA, RateLimiter

    s = app.extensions["swagdigits"]
    s.help_quota = RateLimiter(fake_conn, DAY_S, {HELP_QUOTA: 3}, s.rate_limiter.secrets)
    client = app.test_client()
    def send(d, addr="192.0.2.1"):
        return client.post("/helpdata", json={"image": _data_url(digit_png(d)), "label": d},
                           environ_base={"REMOTE_ADDR": addr})

    # A duplicate takes no room and costs nothing: the third new image still fits.
    codes = [send(d).status_code for d in (0, 1, 0, 2)]
    assert codes == [201, 201, 200, 201]
    over = send(5)
    assert over.status_code == 429 and over.json["status"] == 429
    assert "3 help images for today" in over.json["error"]
    assert 0 < int(over.headers["Retry-After"]) <= DAY_S
    other = send(5, addr="192.0.2.2")
    assert other.status_code == 201
    assert len(list(web_config.help_dir.rglob("*.png"))) == 4


def test_a_full_help_store_answers_507_json_and_writes_nothing(app, web_config):
    s = app.extensions["swagdigits"]
    client = app.test_client()
    assert client.post("/helpdata", json={"image": _data_url(digit_png(1)), "label": 1}).status_code == 201
    used = s.help_store.stored_bytes()
    assert used == s.help_store.bytes_on_disk() > 0
    s.help_store.max_bytes = used + 600   # room for metadata, not for another image
    res = client.post("/helpdata", json={"image": _data_url(digit_png(2)), "label": 2})
    assert res.status_code == 507 and res.json["status"] == 507
    assert "SWAGDIGITS_HELP_MAX_BYTES" in res.json["error"]
    assert len(list(web_config.help_dir.rglob("*.png"))) == 1
    # The refused image did not spend the address's daily quota.
    from web.rate_limit import HELP_QUOTA

    assert s.help_quota.hit(HELP_QUOTA, "127.0.0.1").count == 2


def test_get_helpdata_shows_the_configured_threshold_and_the_pending_count(app, web_config):
    from dataclasses import replace

    app.extensions["swagdigits"].config = replace(web_config, retrain_threshold=37)
    client = app.test_client()
    assert client.get("/helpdata").json == {"pending": 0, "threshold": 37}
    assert client.post("/helpdata", json={"image": _data_url(digit_png(3)), "label": 3}).status_code == 201
    assert client.get("/helpdata").json == {"pending": 1, "threshold": 37}


def test_a_label_for_a_drawing_a_shadow_scored_counts_for_both_models(client, app):
    import json

    from shared.messaging import shadows

    s = app.extensions["swagdigits"]
    job_id = "e" * 32
    s.conn.hset(p.JOB_KEY.format(job_id), mapping={"state": p.FINISHED, "result": json.dumps(
        {"job_id": job_id, "digit": 1, "probabilities": [0.1] * 10, "model_version": "model-p"})})
    shadows.record(s.conn, "model-s", [shadows.ShadowAnswer(job_id, 1, 0.5, 7, 0.9)], ttl=60)
    assert client.post("/helpdata", json={"image": _data_url(digit_png(7)), "label": 7,
                                          "job_id": job_id}).status_code == 201
    stats = shadows.stats(s.conn, "model-s")
    assert stats["labelled"] == 1
    assert (stats["production_accuracy_on_labelled"], stats["shadow_accuracy_on_labelled"]) == (0.0, 1.0)
