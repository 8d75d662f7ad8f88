"""`up`'s dashboard options: --tls-cert/--tls-key (the engine's webhook then on a loopback HTTP listener)
and --forwarded-allow-ips."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import pytest

from smartlock.errors import ConfigError
from smartlock.web.commands import register
from smartlock.web.up import HookListener
from smartlock.web.up_plan import DataLayout, Plan, Ports, UpSettings
from tests.support import free_port, wait_for
from tests.web.conftest import WEBHOOK_TOKEN
from tests.web.serve_dashboard import fake_dashboard


def test_the_flags_exist_and_are_checked() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["up", "--tls-cert", "c.pem", "--tls-key", "k.pem",
                              "--forwarded-allow-ips", "10.0.0.0/8, 127.0.0.1"])
    options = UpSettings.from_args(args)
    assert options.tls and options.scheme == "https"
    assert options.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert UpSettings().trusted_proxies == () and UpSettings().scheme == "http"  # default: nobody's
    with pytest.raises(ConfigError, match="anyone picks their address"):
        UpSettings.validated(forwarded_allow_ips="10.0.0.1,*")
    with pytest.raises(ConfigError, match="--forwarded-allow-ips"):
        UpSettings.validated(forwarded_allow_ips="proxy.example")
    with pytest.raises(ConfigError, match="go together"):
        UpSettings.validated(tls_cert=Path("c.pem"))


def test_under_tls_the_engine_posts_to_a_loopback_listener(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    ports = Ports(door=1001, recognition=1002, camera=1003)
    plain = Plan(UpSettings(port=8123), layout, ports, "clip.mp4")
    assert plain.hook_port is None and plain.webhook_url == "http://127.0.0.1:8123/hooks/engine"
    tls = Plan(UpSettings(port=8123, tls_cert=Path("c.pem"), tls_key=Path("k.pem")), layout, ports, None)
    assert tls.hook_port and tls.webhook_url == f"http://127.0.0.1:{tls.hook_port}/hooks/engine"
    engine = tls.vision()
    assert engine[engine.index("--webhook-url") + 1] == tls.webhook_url
    assert engine[engine.index("--live-url") + 1] == f"http://127.0.0.1:{tls.hook_port}/hooks/engine/live"

    dashboard = fake_dashboard(tmp_path / "data")
    port = free_port()
    hook = HookListener(dashboard, port)
    hook.start()
    try:
        wait_for(lambda: hook.server.started, what="the webhook listener")
        url = f"http://127.0.0.1:{port}"
        answer = httpx.post(f"{url}/hooks/engine", json={"event": "unlocked", "person": "ada"},
                            headers={"authorization": f"Bearer {WEBHOOK_TOKEN}"})
        assert answer.status_code == 200 and answer.json()["recorded"] is True
        assert httpx.post(f"{url}/hooks/engine", json={"event": "unlocked"}).status_code == 404  # no token
        assert httpx.get(f"{url}/api/auth/state").status_code == 404  # the webhook only, nothing else
        assert httpx.get(f"{url}/live").status_code == 404
        assert [event.person for event in dashboard.events.list()] == ["ada"]
    finally:
        hook.stop()
        dashboard.events.close()
