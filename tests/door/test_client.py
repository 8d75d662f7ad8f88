"""DoorClient and `smartlock unlock`: against a real door server, and retries through MockTransport."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from smartlock.cli import main
from smartlock.door.auth import HEADER_NONCE, RequestVerifier, generate_secret
from smartlock.door.client import DoorClient, base_url_of
from smartlock.errors import AuthError, DoorError
from smartlock.service import Health
from tests.door.helpers import door_server, levels
from tests.support import free_port, wait_for


def test_base_url_is_derived_from_the_unlock_url():
    assert base_url_of("http://10.0.0.5/unlock") == "http://10.0.0.5"
    assert base_url_of("http://door:8080/api/unlock/") == "http://door:8080/api"
    assert base_url_of("http://door") == "http://door"


def test_client_unlocks_reads_status_and_events_and_locks(tmp_path):
    with door_server(tmp_path, lock_delay=5.0) as server, \
            DoorClient(server.url + "/unlock", server.secret) as client:
        client.unlock(person="dave", confidence=0.88, source="engine")
        assert server.pin.state is False
        status = client.status()
        assert status["locked"] is False and status["last_unlock"]["person"] == "dave"
        client.lock()
        assert server.pin.state is True
        events = client.events(limit=2)
        assert [e["action"] for e in events["events"]] == ["lock", "unlock"]
        older = client.events(limit=2, before=events["next_before"])
        assert [e["action"] for e in older["events"]] == ["start"]
        assert client.health() == Health.of("door").model_dump()


def test_client_with_the_wrong_secret_gets_auth_error_without_retrying(tmp_path):
    with door_server(tmp_path) as server:
        stranger = generate_secret(tmp_path / "stranger.secret")
        server.pin.clear_states()
        with DoorClient(server.url + "/unlock", stranger, tries=3) as client, \
                pytest.raises(AuthError, match="unknown key id"):
            client.unlock()
        assert levels(server.pin) == [True]
        refusals = [e for e in server.events.page() if e["outcome"] == "refused"]
        assert len(refusals) == 1


def test_client_gives_up_with_door_error_when_nobody_answers():
    with DoorClient(f"http://127.0.0.1:{free_port()}/unlock", None, timeout=0.3, tries=3) as client, \
            pytest.raises(DoorError, match="after 3 tries"):
        client.unlock()


def test_each_retry_is_signed_afresh(secret):
    seen: list[httpx.Request] = []
    verifier = RequestVerifier(secret)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        verifier.verify(request.method, request.url.raw_path.decode(), request.headers, request.content)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) == 2:
            return httpx.Response(503, json={"message": "relay busy"})
        return httpx.Response(202, json={"status": "unlocked"})

    with DoorClient("http://door/unlock", secret, transport=httpx.MockTransport(handler)) as client:
        client.unlock(person="erin")
    assert len(seen) == 3
    assert len({r.headers[HEADER_NONCE] for r in seen}) == 3  # a retry is not a replay
    assert seen[0].content == b'{"person":"erin"}'
    assert {r.headers["x-smartlock-request"] for r in seen} == {"1"}  # what a --no-auth door requires


def test_a_4xx_is_not_retried(secret):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(422, json={"message": "confidence: too big"})

    with DoorClient("http://door/unlock", secret, transport=httpx.MockTransport(handler)) as client, \
            pytest.raises(DoorError, match="422"):
        client.unlock(confidence=0.5)
    assert len(calls) == 1


def test_cli_unlock_sends_one_signed_unlock(tmp_path, capsys):
    with door_server(tmp_path, lock_delay=5.0) as server:
        code = main(["unlock", "--door-api-url", server.url + "/unlock", "--secret-file",
                     str(server.secret_path), "--person", "frank"])
        assert code == 0
        assert "accepted" in capsys.readouterr().out
        assert server.pin.state is False
        accepted = server.events.last("unlock", "accepted")
        assert (accepted["person"], accepted["source"]) == ("frank", "cli")


def test_cli_unlock_opens_a_no_auth_door(tmp_path, capsys):
    with door_server(tmp_path, no_auth=True, lock_delay=5.0) as server:
        assert main(["unlock", "--door-api-url", server.url + "/unlock", "--no-auth"]) == 0
        assert server.pin.state is False
        assert server.events.last("unlock", "accepted")["key_id"] is None


def test_cli_unlock_needs_a_secret_or_no_auth(capsys):
    assert main(["unlock", "--door-api-url", "http://127.0.0.1:9/unlock"]) == 2
    assert "--secret-file" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_printed_curl_command_works_once(tmp_path, capsys):
    with door_server(tmp_path, lock_delay=5.0) as server:
        server.pin.clear_states()
        assert main(["unlock", "--door-api-url", server.url + "/unlock", "--secret-file",
                     str(server.secret_path), "--print-curl", "--person", "o'hara"]) == 0
        captured = capsys.readouterr()
        command = captured.out.strip()
        assert command.startswith("curl ") and "\n" not in command
        assert "valid for 30 s" in captured.err
        assert levels(server.pin) == [True]  # printing sends nothing

        first = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert first.stdout.startswith("HTTP/1.1 202"), first.stdout + first.stderr
        wait_for(lambda: server.pin.state is False)
        assert server.events.last("unlock", "accepted")["person"] == "o'hara"

        second = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert second.stdout.startswith("HTTP/1.1 401") and "replayed" in second.stdout
