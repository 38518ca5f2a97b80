"""The official Triton client (``tritonclient[http]``) against a real stack: redis-server,
a predict worker process and the gunicorn web tier.

Why the real client and never a hand-written one: what matters is that the
tools people already use work unchanged, including what they do by default
(tritonclient sends inputs with the binary tensor data extension and no
Content-Type, and asks for binary outputs when none are named) and what
they do when told otherwise (``binary_data=False``: BYTES as JSON strings,
so images as base64).
"""
from __future__ import annotations

import base64

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from testkit.drawings import digit_png

# Clearly drawn digits the shipped model reads right (the same drawings
# tests/integration/test_serving.py sends over /api/predict).
DIGITS = [3, 1, 4, 7, 5, 9, 2, 6, 0]


def images_tensor(digits: list[int], binary: bool) -> httpclient.InferInput:
    pngs = [digit_png(d) for d in digits]
    # binary_data=False puts BYTES elements in the JSON as UTF-8 strings: base64 the images
    data = np.array(pngs if binary else [base64.b64encode(p) for p in pngs], dtype=np.object_)
    tensor = httpclient.InferInput("images", [len(digits)], "BYTES")
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def check_answer(result: httpclient.InferResult, digits: list[int], version: str) -> None:
    read = result.as_numpy("digit")
    probabilities = result.as_numpy("probabilities")
    assert read.dtype == np.int64 and read.shape == (len(digits),)
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(digits), 10)
    assert read.tolist() == digits
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    assert probabilities.argmax(axis=1).tolist() == digits
    assert result.get_response()["model_name"] == "digits"
    assert result.get_response()["model_version"] == version


@pytest.fixture
def served(stack):
    stack.start("worker", "predict")
    url = stack.start_web()
    ready = stack.wait_ready(url)
    client = httpclient.InferenceServerClient(url.removeprefix("http://"), network_timeout=30)
    yield client, ready["model_versions"][0]
    client.close()


def test_health_and_metadata_through_tritonclient(served):
    client, version = served
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", version)
    assert not client.is_model_ready("digits", "not-a-version") and not client.is_model_ready("mnist")
    server = client.get_server_metadata()
    assert server["name"] == "swagdigits" and server["version"] and "extensions" in server
    model = client.get_model_metadata("digits")
    assert model["name"] == "digits" and model["versions"] == [version] and model["platform"]
    assert model["inputs"] == [{"name": "images", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in model["outputs"]} == {
        "probabilities": ("FP32", [-1, 10]), "digit": ("INT64", [-1])}
    assert client.get_model_metadata("digits", version) == model
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata("digits", "not-a-version")
    assert refused.value.status() == "404" and "production" in refused.value.message()


def test_infer_one_and_several_drawings_with_binary_and_json_tensors(served):
    client, version = served
    for binary_in in (True, False):
        for binary_out in (True, False):
            outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary_out),
                       httpclient.InferRequestedOutput("digit", binary_data=binary_out)]
            for digits in ([7], DIGITS):
                request_id = f"{binary_in}-{binary_out}-{len(digits)}"
                result = client.infer("digits", [images_tensor(digits, binary_in)], outputs=outputs,
                                      request_id=request_id)
                check_answer(result, digits, version)
                assert result.get_response()["id"] == request_id, (binary_in, binary_out)


def test_infer_by_default_with_the_production_version_and_compressed(served):
    client, version = served
    # no outputs named: tritonclient asks for every output as binary data
    check_answer(client.infer("digits", [images_tensor([4], True)]), [4], version)
    check_answer(client.infer("digits", [images_tensor(DIGITS, True)], model_version=version,
                              request_compression_algorithm="gzip"), DIGITS, version)


def test_errors_reach_tritonclient_as_the_protocol_says(served):
    client, version = served
    with pytest.raises(InferenceServerException) as refused:
        client.infer("digits", [images_tensor([1], True)], model_version="not-a-version")
    assert refused.value.status() == "404"
    not_an_image = httpclient.InferInput("images", [2], "BYTES")
    not_an_image.set_data_from_numpy(np.array([digit_png(1), b"not a picture"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("digits", [not_an_image])
    assert refused.value.status() == "400" and "image 1" in refused.value.message()
    wrong = httpclient.InferInput("INPUT0", [1], "BYTES")
    wrong.set_data_from_numpy(np.array([digit_png(1)], dtype=np.object_))
    with pytest.raises(InferenceServerException) as refused:
        client.infer("digits", [wrong])
    assert refused.value.status() == "400" and "images" in refused.value.message()
