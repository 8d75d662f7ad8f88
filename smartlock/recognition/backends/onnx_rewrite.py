"""PRelu in an ONNX model's bytes rewritten into ops onnxruntime keeps in its fast blocked layout.

onnxruntime's CPU PRelu kernel cannot stay in the NCHWc layout its convolutions use, so every PRelu costs
a layout round trip and a slow broadcast: in w600k_mbf (34 PRelu) that is ~40% of the embedder's time on
one thread. ``PRelu(x, s) = s * x + (1 - s) * Relu(x)`` (Relu, Mul, Mul, Add) stays in the blocked
layout. Results differ from PRelu by float rounding only (a few 1e-6 on unit-length embeddings).

The model is read and written with a minimal protobuf wire-format codec: only the fields needed (graph,
nodes, initializers) are decoded; everything else is copied byte for byte. Anything unexpected (a PRelu
slope that is not a float initializer, external data, attributes) leaves the model unchanged.
"""

from __future__ import annotations

import struct

import numpy as np

# ONNX field numbers (onnx.proto)
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 1, 2, 3, 4, 5, 7
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_FLOAT_DATA, TENSOR_NAME, TENSOR_RAW_DATA = 1, 2, 4, 8, 9
TENSOR_DATA_LOCATION = 14
FLOAT = 1
LENGTH_DELIMITED, VARINT, FIXED64, FIXED32 = 2, 0, 1, 5


class _Unsupported(Exception):
    """The model has a form this rewriter does not handle: it is left as it is."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Unsupported("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, int | bytes, bytes]]:
    """(field number, wire type, value, the field's exact bytes) of one message."""
    fields: list[tuple[int, int, int | bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(data, pos)
        elif wire == LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _Unsupported("truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == FIXED64:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == FIXED32:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise _Unsupported(f"wire type {wire}")
        if pos > len(data):
            raise _Unsupported("truncated field")
        fields.append((number, wire, value, data[start:pos]))
    return fields


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | LENGTH_DELIMITED) + _encode_varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _encode_varint(number << 3 | VARINT) + _encode_varint(value)


def _node(op_type: str, inputs: list[str], output: str, name: str) -> bytes:
    body = b"".join(_bytes_field(NODE_INPUT, name_.encode()) for name_ in inputs)
    body += _bytes_field(NODE_OUTPUT, output.encode()) + _bytes_field(NODE_NAME, name.encode())
    body += _bytes_field(NODE_OP_TYPE, op_type.encode())
    return _bytes_field(GRAPH_NODE, body)


def _tensor(name: str, values: np.ndarray) -> bytes:
    body = b"".join(_varint_field(TENSOR_DIMS, int(d)) for d in values.shape)
    body += _varint_field(TENSOR_DATA_TYPE, FLOAT) + _bytes_field(TENSOR_NAME, name.encode())
    body += _bytes_field(TENSOR_RAW_DATA, values.astype("<f4").tobytes())
    return _bytes_field(GRAPH_INITIALIZER, body)


def _float_tensor(message: bytes) -> tuple[str, np.ndarray]:
    """The name and values of a float TensorProto held in the model (raw_data or float_data)."""
    name, dims, data_type, values = "", [], None, None
    floats: list[float] = []
    for number, wire, value, _ in _fields(message):
        if number == TENSOR_NAME and isinstance(value, bytes):
            name = value.decode()
        elif number == TENSOR_DIMS and wire == VARINT:
            dims.append(int(value))
        elif number == TENSOR_DIMS and isinstance(value, bytes):  # packed
            pos = 0
            while pos < len(value):
                dim, pos = _varint(value, pos)
                dims.append(dim)
        elif number == TENSOR_DATA_TYPE:
            data_type = value
        elif number == TENSOR_RAW_DATA and isinstance(value, bytes):
            values = np.frombuffer(value, "<f4")
        elif number == TENSOR_FLOAT_DATA and wire == LENGTH_DELIMITED and isinstance(value, bytes):
            floats.extend(np.frombuffer(value, "<f4").tolist())
        elif number == TENSOR_FLOAT_DATA and wire == FIXED32 and isinstance(value, bytes):
            floats.append(struct.unpack("<f", value)[0])
        elif number == TENSOR_DATA_LOCATION and value != 0:
            raise _Unsupported("external data")
    if data_type != FLOAT:
        raise _Unsupported("not a float tensor")
    if values is None:
        values = np.asarray(floats, np.float32)
    count = int(np.prod(dims)) if dims else 1
    if values.size != count:
        raise _Unsupported("tensor size does not match its dims")
    return name, values.astype(np.float32).reshape(dims)


def _strings(fields: list[tuple[int, int, int | bytes, bytes]], number: int) -> list[str]:
    return [value.decode() for n, _, value, _ in fields if n == number and isinstance(value, bytes)]


def _rewrite_graph(graph: bytes) -> tuple[bytes, int]:
    fields = _fields(graph)
    slopes: dict[str, np.ndarray] = {}
    for number, _, value, _ in fields:
        if number == GRAPH_INITIALIZER and isinstance(value, bytes):
            try:
                name, values = _float_tensor(value)
            except (_Unsupported, ValueError):
                continue
            slopes[name] = values
    out, extra, count = [], [], 0
    for number, _, value, raw in fields:
        node = _fields(value) if number == GRAPH_NODE and isinstance(value, bytes) else None
        if node is None or _strings(node, NODE_OP_TYPE) != ["PRelu"]:
            out.append(raw)
            continue
        if any(n == NODE_ATTRIBUTE for n, *_ in node) or any(_strings(node, NODE_DOMAIN)):
            raise _Unsupported("PRelu with attributes or a domain")
        inputs, outputs = _strings(node, NODE_INPUT), _strings(node, NODE_OUTPUT)
        if len(inputs) != 2 or len(outputs) != 1 or inputs[1] not in slopes:
            raise _Unsupported("PRelu whose slope is not a float initializer")
        x, slope, y = inputs[0], inputs[1], outputs[0]
        prefix = f"{y}__prelu_rewrite_{count}"
        one_minus = f"{prefix}_one_minus_slope"
        extra.append(_tensor(one_minus, 1.0 - slopes[slope]))
        out += [
            _node("Relu", [x], f"{prefix}_relu", f"{prefix}_relu"),
            _node("Mul", [x, slope], f"{prefix}_neg", f"{prefix}_neg"),
            _node("Mul", [f"{prefix}_relu", one_minus], f"{prefix}_pos", f"{prefix}_pos"),
            _node("Add", [f"{prefix}_neg", f"{prefix}_pos"], y, f"{prefix}_add"),
        ]
        count += 1
    return b"".join(out + extra), count


def rewrite_prelu(model: bytes) -> tuple[bytes, int]:
    """The model with every PRelu rewritten, and how many were; (model, 0) unchanged if it has none or
    a form this rewriter does not handle."""
    try:
        fields = _fields(model)
        out, total = [], 0
        for number, _, value, raw in fields:
            if number == MODEL_GRAPH and isinstance(value, bytes):
                graph, total = _rewrite_graph(value)
                out.append(_bytes_field(MODEL_GRAPH, graph))
            else:
                out.append(raw)
    except (_Unsupported, ValueError):  # ValueError: also bad UTF-8 names, odd float byte counts
        return model, 0
    return (b"".join(out), total) if total else (model, 0)
