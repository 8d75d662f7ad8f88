"""Settings of `smartlock door` and `smartlock unlock`: one model each, read by the CLI, the code and `up`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from smartlock.config import PartSettings, TlsSettings
from smartlock.door.events import DEFAULT_MAX_ROWS, DEFAULT_RETENTION_DAYS
from smartlock.door.relay import PinFactoryName  # the relay module imports gpiozero only when a relay is made
from smartlock.errors import ConfigError
from smartlock.integrations.settings import MqttSettings

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 80
DEFAULT_LOCK_DELAY = 3.0
MAX_LOCK_DELAY = 600.0  # ten minutes: longer is a door left open, not an unlock
DEFAULT_PIN_FACTORY: PinFactoryName = "auto"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class DoorSettings(TlsSettings, MqttSettings):
    """`smartlock door`: the relay's wiring, the unlock window, where to listen (HTTP or HTTPS), how
    requests are signed, how long the audit keeps its history."""

    pin: int | None = Field(
        None, ge=1, le=40, json_schema_extra={"short": "-p"},
        description="Index of GPIO pin (in GPIO.BOARD mode) which controls relay.",
    )
    lock_delay: float = Field(
        DEFAULT_LOCK_DELAY, gt=0, le=MAX_LOCK_DELAY, json_schema_extra={"short": "-d"},
        description="How long the relay stays activated (door unlocked), in seconds",
    )
    host: str = Field(DEFAULT_HOST, description="address to listen on")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="port to listen on")
    secret_file: Path | None = Field(
        None, description="shared secret that signs requests (see --generate-secret)",
    )
    no_auth: bool = Field(
        False, description="accept UNSIGNED requests (only for the seed's clients): anyone can unlock",
    )
    pin_factory: PinFactoryName = Field(
        DEFAULT_PIN_FACTORY, description="gpiozero pin library; `mock` simulates the relay off a Pi",
    )
    active_high: bool = Field(
        False, description="pin HIGH unlocks (default: active-low as the seed: HIGH locked, LOW unlocked)",
    )
    events_db: Path | None = Field(
        None, description="SQLite audit log (default: <data dir>/door/events.sqlite3)",
    )
    audit_retention_days: float = Field(
        DEFAULT_RETENTION_DAYS, gt=0, le=36500,
        description="audit rows older than this many days are deleted",
    )
    audit_max_rows: int = Field(
        DEFAULT_MAX_ROWS, ge=100, le=100_000_000,
        description="the audit keeps at most this many rows (the oldest go first)",
    )
    log_level: LogLevel = Field("INFO", description="how much the service logs")

    def check_complete(self) -> None:
        """ConfigError unless a relay pin and exactly one way of authenticating are given (the model allows
        an incomplete door so that `--generate-secret` needs neither)."""
        if self.pin is None:
            raise ConfigError("--pin is required: the physical (BOARD) pin number that drives the relay")
        if self.no_auth and self.secret_file:
            raise ConfigError("--no-auth and --secret-file exclude each other")
        if not self.no_auth and self.secret_file is None:
            raise ConfigError(
                "give --secret-file FILE (create one with `smartlock door --generate-secret FILE`), "
                "or --no-auth to accept the seed's unsigned requests"
            )


class UnlockSettings(PartSettings):
    """`smartlock unlock`: one signed POST /unlock to a door (or the curl command that sends it)."""

    door_api_url: str = Field(description="the door's unlock URL, e.g. http://DOOR_IP/unlock")
    secret_file: Path | None = Field(None, description="the door's shared secret")
    no_auth: bool = Field(False, description="send an unsigned request (--no-auth doors only)")
    ca_file: Path | None = Field(
        None,
        description="CA certificate (PEM) of an https door (default: the usual CA bundle)",
    )
    print_curl: bool = Field(
        False, description="print the signed curl command instead of sending it (valid for 30 s, once)",
    )
    person: str | None = Field(None, max_length=200, description="recorded in the door's audit")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="recorded in the door's audit")
    source: str = Field("cli", max_length=200, description="recorded in the door's audit")
    timeout: float = Field(2.0, gt=0, le=600, description="seconds per try")
    tries: int = Field(3, ge=1, le=100, description="tries on network errors")

    def check_complete(self) -> None:
        """ConfigError unless exactly one of a secret and --no-auth is given."""
        if self.no_auth == (self.secret_file is not None):
            raise ConfigError(
                "give --secret-file FILE (the door's secret), or --no-auth for an unsigned door"
            )
