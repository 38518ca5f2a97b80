"""Open Inference Protocol tensors on the wire: the infer request's body and the answer's.

Why a module of its own: the protocol has two encodings and clients use both.
A request or answer is a JSON object; with Triton's binary tensor data
extension the JSON header is followed by raw tensor bytes, and the
``Inference-Header-Content-Length`` header says where the JSON ends. The
official ``tritonclient`` sends inputs that way by default, and asks for
outputs that way unless told otherwise; with ``binary_data=False`` a BYTES
element must be a UTF-8 JSON string, so an image then travels as base64 (or
a ``data:image/png;base64,`` URL), exactly as ``/api/predict`` takes it.
A binary BYTES tensor is its elements one after another, each a 4-byte
little-endian length and that many bytes.

This module only parses and encodes (every malformed request is an
``ApiError`` 400 naming what is wrong); ``web.inference_v2`` checks the images
and queues them.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

from web.errors import ApiError

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_MIMETYPE = "application/octet-stream"
INPUT_NAME = "images"
INPUT_DATATYPE = "BYTES"
PROBABILITIES, DIGIT = "probabilities", "digit"
CLASSES = 10
# name -> (datatype, shape with -1 for the number of images)
OUTPUTS = {PROBABILITIES: ("FP32", [-1, CLASSES]), DIGIT: ("INT64", [-1])}
_PACK = {"FP32": "f", "INT64": "q"}
_UNSUPPORTED_PARAMETERS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
_ENCODINGS = {"gzip": 31, "deflate": 15}   # zlib wbits; tritonclient's "deflate" is zlib.compress


@dataclass(frozen=True)
class InferRequest:
    request_id: str | None
    images: list[bytes | str]           # raw bytes (binary extension) or text (JSON: base64)
    outputs: list[tuple[str, bool]]     # (output name, answer it as binary data)


def decoded_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body with ``Content-Encoding`` (gzip, deflate: tritonclient's request compression)
    undone, never growing past ``max_bytes`` (413: a compressed bomb stops there)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _ENCODINGS:
        raise ApiError(f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or none", 415)
    inflater = zlib.decompressobj(_ENCODINGS[encoding])
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise ApiError(f"the body is not valid {encoding} data", 400) from None
    if len(out) > max_bytes:
        raise ApiError(f"the decompressed body is larger than {max_bytes} bytes", 413)
    if not inflater.eof:
        raise ApiError(f"the {encoding} body is truncated", 400)
    return out


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """Read an infer request: a JSON object, or with ``header_length`` a JSON header then binary data."""
    binary = b""
    if header_length is not None:
        if not header_length.strip().isdigit() or int(header_length) > len(body):
            raise ApiError(f"{HEADER_LENGTH} must be a byte count no larger than the body "
                           f"({len(body)} bytes)", 400)
        split = int(header_length)
        body, binary = body[:split], body[split:]
    header = _json_object(body)
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError("'id' must be a string", 400)
    parameters = _parameters(header, "the request")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise ApiError("parameters.binary_data_output must be true or false", 400)
    images = _input_images(header.get("inputs"), binary)
    return InferRequest(request_id, images, _requested_outputs(header.get("outputs"), binary_output))


def encode_response(model_name: str, model_version: str, request_id: str | None,
                    outputs: list[tuple[str, bool]], results: list[dict]) -> tuple[bytes, dict]:
    """The answer's body and headers: JSON, or JSON then raw data when an output is binary."""
    n = len(results)
    values = {PROBABILITIES: [float(x) for r in results for x in r["probabilities"]],
              DIGIT: [int(r["digit"]) for r in results]}
    tensors, blobs = [], []
    for name, binary in outputs:
        datatype, shape = OUTPUTS[name]
        tensor = {"name": name, "datatype": datatype, "shape": [n if d == -1 else d for d in shape]}
        if binary:
            blob = struct.pack(f"<{len(values[name])}{_PACK[datatype]}", *values[name])
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values[name]
        tensors.append(tensor)
    answer = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request_id is not None:
        answer["id"] = request_id
    header = json.dumps(answer, separators=(",", ":")).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {"Content-Type": BINARY_MIMETYPE, HEADER_LENGTH: str(len(header))}


def _json_object(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except RecursionError:
        raise ApiError("JSON body is nested too deeply", 400) from None
    except ValueError:
        raise ApiError("the inference request is not valid JSON (with binary data, "
                       f"{HEADER_LENGTH} must give the JSON header's length)", 400) from None
    if not isinstance(value, dict):
        raise ApiError("the inference request must be a JSON object", 400)
    return value


def _parameters(holder: dict, what: str) -> dict:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ApiError(f"parameters of {what} must be an object", 400)
    for name in _UNSUPPORTED_PARAMETERS:
        if name in parameters:
            raise ApiError(f"{what}: shared memory is not supported; send the data in the request", 400)
    return parameters


def _input_images(inputs: object, binary: bytes) -> list[bytes | str]:
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError(f"'inputs' must hold exactly one tensor, '{INPUT_NAME}' ({INPUT_DATATYPE}, "
                       "shape [N]: N PNG/JPEG images)", 400)
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise ApiError(f"unexpected input {tensor.get('name')!r}: the model's one input is '{INPUT_NAME}'", 400)
    if tensor.get("datatype") != INPUT_DATATYPE:
        raise ApiError(f"input '{INPUT_NAME}' has datatype {INPUT_DATATYPE} (PNG/JPEG bytes), "
                       f"not {tensor.get('datatype')!r}", 400)
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or len(shape) != 1 or not isinstance(shape[0], int)
            or isinstance(shape[0], bool) or shape[0] < 1):
        raise ApiError(f"input '{INPUT_NAME}' must have shape [N], N >= 1 images", 400)
    parameters = _parameters(tensor, f"input '{INPUT_NAME}'")
    size = parameters.get("binary_data_size")
    if size is None:
        if binary:
            raise ApiError("binary data follows the JSON header but no input declares "
                           "parameters.binary_data_size", 400)
        if "data" not in tensor:
            raise ApiError(f"input '{INPUT_NAME}' needs 'data' (base64 strings) or binary data", 400)
        images = _flat_strings(tensor["data"])
    else:
        if "data" in tensor:
            raise ApiError(f"input '{INPUT_NAME}' has both 'data' and binary_data_size", 400)
        if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
            raise ApiError(f"binary_data_size of '{INPUT_NAME}' must be the {len(binary)} bytes "
                           "that follow the JSON header", 400)
        images = _byte_elements(binary)
    if len(images) != shape[0]:
        raise ApiError(f"input '{INPUT_NAME}' has shape [{shape[0]}] but {len(images)} elements", 400)
    return images


def _flat_strings(data: object) -> list[str]:
    """A JSON BYTES tensor's elements, row-major: flat or nested lists of strings."""
    if not isinstance(data, list):
        raise ApiError(f"'data' of '{INPUT_NAME}' must be a list of base64 strings", 400)
    out: list[str] = []
    stack = [iter(data)]
    while stack:
        item = next(stack[-1], StopIteration)
        if item is StopIteration:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise ApiError(f"'data' of '{INPUT_NAME}' must hold strings (base64 PNG/JPEG)", 400)
    return out


def _byte_elements(binary: bytes) -> list[bytes]:
    """A binary BYTES tensor: each element a 4-byte little-endian length, then its bytes."""
    out, at = [], 0
    while at < len(binary):
        if at + 4 > len(binary):
            raise ApiError("binary BYTES data ends inside an element's 4-byte length", 400)
        (length,) = struct.unpack_from("<I", binary, at)
        at += 4
        if at + length > len(binary):
            raise ApiError("binary BYTES data ends inside an element", 400)
        out.append(binary[at:at + length])
        at += length
    return out


def _requested_outputs(outputs: object, binary_default: bool) -> list[tuple[str, bool]]:
    if outputs is None:
        return [(name, binary_default) for name in OUTPUTS]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise ApiError(f"'outputs' must be a non-empty list of {{\"name\"}} objects ({', '.join(OUTPUTS)})", 400)
    chosen: list[tuple[str, bool]] = []
    for output in outputs:
        name = output.get("name")
        if name not in OUTPUTS:
            raise ApiError(f"unknown output {name!r}: the model's outputs are {', '.join(OUTPUTS)}", 400)
        if any(name == seen for seen, _ in chosen):
            raise ApiError(f"output '{name}' is asked for twice", 400)
        parameters = _parameters(output, f"output '{name}'")
        if parameters.get("classification"):
            raise ApiError("the classification extension is not supported: ask for "
                           f"'{PROBABILITIES}' and '{DIGIT}'", 400)
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise ApiError(f"parameters.binary_data of output '{name}' must be true or false", 400)
        chosen.append((name, binary))
    return chosen
