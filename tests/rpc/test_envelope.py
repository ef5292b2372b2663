"""The wire format on its own: envelope shape, object primitives, version rule, error mapping."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bayport import errors
from bayport.objects.context import RequestContext
from bayport.rpc import MalformedMessageError, RemoteError, UnknownMethodError, codec
from bayport.rpc.envelope import (
    decode_reply,
    decode_request,
    encode_error,
    encode_request,
    encode_result,
    is_compatible,
)
from bayport.rpc.transport import get_transport
from tests.rpc.conftest import Widget


def test_request_envelope_has_the_designed_shape() -> None:
    ctx = RequestContext(request_id="req-1", user_id="u1", project_id="p1", roles=["member"])
    widget = Widget(name="testbay", size=1)
    body = encode_request(ctx, "bay_create", "1.0", {"bay": widget, "bay_create_timeout": None})

    wire = orjson.loads(body)
    assert wire == {
        "method": "bay_create",
        "version": "1.0",
        "context": {"request_id": "req-1", "user_id": "u1", "project_id": "p1", "roles": ["member"]},
        "args": {
            "bay_create_timeout": None,
            "bay": {
                "bayport_object.name": "RpcTestWidget",
                "bayport_object.namespace": "bayport",
                "bayport_object.version": "1.2",
                "bayport_object.data": {"name": "testbay", "size": 1, "tags": []},
                "bayport_object.changes": ["name", "size"],
            },
        },
    }


def test_decoded_request_rebuilds_objects_at_any_depth() -> None:
    loaded = Widget.loaded(name="a", size=2)
    loaded.tags = ["x"]
    body = encode_request(RequestContext(), "m", "1.0", {"deep": {"list": [loaded, (loaded,)]}})

    request = decode_request(body)
    rebuilt = codec.from_wire(request.args)["deep"]["list"]
    assert isinstance(rebuilt[0], Widget)
    assert rebuilt[0].obj_what_changed() == {"tags"}
    assert isinstance(rebuilt[1][0], Widget)


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1, 2]",
    b'{"version": "1.0", "args": {}}',
    b'{"method": "m", "version": "one", "args": {}}',
    b'{"method": "m", "version": "1.0", "args": []}',
    b'{"method": "m", "version": "1.0", "args": {}, "context": {"roles": "admin"}}',
])
def test_malformed_requests_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode_request(body)


@pytest.mark.parametrize(("requested", "served", "ok"), [
    ("1.0", "1.0", True), ("1.0", "1.2", True), ("1.2", "1.2", True),
    ("1.3", "1.2", False), ("2.0", "1.2", False), ("1.0", "2.0", False),
])
def test_version_rule_same_major_and_minor_not_above_served(requested: str, served: str, ok: bool) -> None:
    assert is_compatible(requested, served) is ok


def test_result_reply_rebuilds_objects() -> None:
    reply = decode_reply(encode_result({"widget": Widget(name="w")}))
    assert isinstance(reply["widget"], Widget)
    assert reply["widget"].obj_what_changed() == {"name"}


@pytest.mark.parametrize("exc", [
    errors.NotFound("bay x not found", field="bay_uuid"),
    errors.InvalidState("bay is CREATE_IN_PROGRESS", status_now="CREATE_IN_PROGRESS"),
    errors.TemporaryError("cluster restarting", delay=2.5),
    errors.ClusterAPIError("forbidden by the bay", status=403),
    errors.RPCTimeout("slow", method="m"),
    UnknownMethodError("no such method", method="m"),
])
def test_bayport_errors_cross_with_class_detail_and_fields(exc: errors.BayportError) -> None:
    with pytest.raises(errors.BayportError) as raised:
        decode_reply(encode_error(exc))
    got = raised.value
    assert type(got) is type(exc)
    assert got.detail == exc.detail
    assert got.field == exc.field
    assert got.extra == exc.extra
    assert got.to_dict() == exc.to_dict()
    if isinstance(exc, errors.TemporaryError):
        assert isinstance(got, errors.TemporaryError) and got.delay == 2.5


def test_reply_error_body_names_code_detail_and_field() -> None:
    wire = orjson.loads(encode_error(errors.NotFound("gone", field="uuid")))
    assert wire["error"]["code"] == "NotFound"
    assert wire["error"]["detail"] == "gone"
    assert wire["error"]["field"] == "uuid"


def test_other_exceptions_become_remote_errors_with_type_and_message() -> None:
    with pytest.raises(RemoteError) as raised:
        decode_reply(encode_error(KeyError("missing")))
    assert raised.value.detail == "KeyError: 'missing'"
    assert raised.value.extra["exc_type"] == "KeyError"


def test_an_error_code_this_process_does_not_know_stays_visible() -> None:
    body = orjson.dumps({"error": {"code": "FutureError", "detail": "from a newer conductor"}})
    with pytest.raises(RemoteError) as raised:
        decode_reply(body)
    assert raised.value.detail == "from a newer conductor"
    assert raised.value.extra["remote_code"] == "FutureError"


def test_error_extras_that_json_cannot_carry_still_produce_a_reply() -> None:
    exc = errors.Conflict("odd", blob=object())
    with pytest.raises(errors.Conflict) as raised:
        decode_reply(encode_error(exc))
    assert raised.value.extra["blob"].startswith("<object object")


def test_arguments_json_cannot_carry_are_refused_before_sending() -> None:
    with pytest.raises(errors.InvalidInput):
        encode_request(RequestContext(), "m", "1.0", {"handle": object()})


def test_unknown_object_type_in_a_reply_is_invalid_input() -> None:
    result: dict[str, Any] = {"bayport_object.name": "NoSuchThing", "bayport_object.data": {}}
    with pytest.raises(errors.InvalidInput, match="NoSuchThing"):
        decode_reply(orjson.dumps({"result": result}))


@pytest.mark.parametrize("body", [b"garbage", b'{"neither": 1}'])
def test_replies_that_are_not_replies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode_reply(body)


def test_transport_url_scheme_is_checked() -> None:
    assert type(get_transport("memory://")).__name__ == "MemoryTransport"
    assert type(get_transport("amqp://guest:guest@127.0.0.1:5672/")).__name__ == "AmqpTransport"
    with pytest.raises(errors.InvalidInput):
        get_transport("kafka://somewhere")
