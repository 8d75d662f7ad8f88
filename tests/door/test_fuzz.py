"""Schemathesis against the door's own OpenAPI schema on a real server: no input ever gets a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.strategies import one_of  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from smartlock.door.auth import DoorSecret, sign_request  # noqa: E402
from tests.door.helpers import door_server  # noqa: E402

pytestmark = pytest.mark.slow
PUBLIC = {"/health", "/openapi.json", "/docs", "/redoc"}


class SignWith(requests.auth.AuthBase):
    """Signs the request exactly as it goes on the wire (path with query, final body bytes)."""

    def __init__(self, secret: DoorSecret) -> None:
        self.secret = secret

    def __call__(self, request):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        request.headers.update(sign_request(self.secret, request.method, request.path_url, body))
        return request


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    with door_server(tmp_path_factory.mktemp("fuzz"), lock_delay=0.05) as server:
        yield server


def operations(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in found} >= {"/unlock", "/lock", "/status", "/events", "/health"}
    return found


def fuzz(server, check, signed: bool) -> int:
    """Run ``check(case, response)`` on generated requests to every operation; returns the request count."""
    sent = 0
    with requests.Session() as session:
        if signed:
            session.auth = SignWith(server.secret)
        for operation in operations(server):
            strategy = one_of(operation.as_strategy(mode) for mode in GenerationMode)  # valid and invalid

            @given(case=strategy)
            # derandomize: the same examples every run, so the checks below never depend on luck
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                      derandomize=True)
            def run(case) -> None:
                nonlocal sent
                response = case.call(base_url=server.url, session=session)
                sent += 1
                check(case, response)

            run()
    return sent


def test_unsigned_fuzz_is_refused_and_never_moves_the_relay(fuzz_server):
    fuzz_server.pin.clear_states()

    def check(case, response) -> None:
        assert response.status_code < 500, response.text
        if case.path not in PUBLIC:
            assert 400 <= response.status_code < 500, response.text

    assert fuzz(fuzz_server, check, signed=False) > 50
    assert [s.state for s in fuzz_server.pin.states] == [True]


def test_signed_fuzz_never_gets_a_server_error(fuzz_server):
    def check(case, response) -> None:
        assert response.status_code < 500, response.text
        assert response.status_code != 401, response.text  # our signing matches what the server checks

    assert fuzz(fuzz_server, check, signed=True) > 50
    accepted = fuzz_server.events.last("unlock", "accepted")
    assert accepted is not None  # some fuzzed bodies were valid unlocks
