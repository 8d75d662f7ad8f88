"""Settings shared by the parts: a strict pydantic base, default folders and the face-data location."""

from __future__ import annotations

import os
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartlock.errors import ConfigError

APP_NAME = "smartlock"


class StrictModel(BaseModel):
    """Base for every settings model: a misspelt setting is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def default_data_dir() -> Path:
    """Where `smartlock up` keeps its gallery, events and secrets (``SMARTLOCK_DATA_DIR`` overrides)."""
    override = os.environ.get("SMARTLOCK_DATA_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def project_root() -> Path:
    """The checkout this package runs from (used to find ``../shared/faces`` next to it)."""
    return Path(__file__).resolve().parent.parent


def faces_dir() -> Path | None:
    """The labelled face photos for tests and benchmarks, or None when they are not on this machine.

    ``SMARTLOCK_FACES_DIR`` overrides the default ``<checkout>/../shared/faces``.
    """
    override = os.environ.get("SMARTLOCK_FACES_DIR")
    path = Path(override).expanduser() if override else project_root().parent / "shared" / "faces"
    return path if (path / "people").is_dir() else None


class PartSettings(StrictModel):
    """The settings of one part: its CLI flags are made from the fields, and `up` turns them back into argv.

    Each field's flag is ``--`` plus its name with dashes (``flag`` in ``json_schema_extra`` overrides it,
    ``short`` adds e.g. ``-p``); its default, limits and help live in the field only, so the CLI, the code
    and `up` agree. A bool field is an on/off flag (``store_true``, or with ``negate`` a ``--no-...`` flag
    that turns a True default off). Secrets are never fields: only the paths of the files holding them.
    """

    @classmethod
    def flag(cls, name: str) -> str:
        extra = cls.model_fields[name].json_schema_extra
        flag = extra.get("flag") if isinstance(extra, dict) else None
        return str(flag) if flag else "--" + name.replace("_", "-")

    @classmethod
    def add_option(cls, parser: Any, name: str, **overrides: Any) -> Any:
        """Add field ``name`` to an argparse parser or group; ``overrides`` go to ``add_argument``."""
        field = cls.model_fields[name]
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        flags = [cls.flag(name)] + ([str(extra["short"])] if extra.get("short") else [])
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        help_text = field.description or ""
        kwargs: dict[str, Any] = {"dest": name, "default": default}
        if extra.get("metavar"):
            kwargs["metavar"] = extra["metavar"]
        annotation = _unwrap_optional(field.annotation)
        if annotation is bool:
            kwargs["action"] = "store_false" if extra.get("negate") else "store_true"
        else:
            choices = get_args(annotation) if get_origin(annotation) is Literal else None
            if choices:
                kwargs["choices"] = choices
                kwargs["type"] = type(choices[0])
            elif annotation in (int, float, str, Path):
                kwargs["type"] = annotation
            if default is not None and "default" not in help_text.lower():
                help_text = f"{help_text} (default: {default})" if help_text else f"default: {default}"
            if field.is_required():
                kwargs["required"] = True
        kwargs["help"] = help_text.replace("%", "%%")
        kwargs.update(overrides)
        return parser.add_argument(*flags, **kwargs)

    @classmethod
    def from_args(cls, args: Any, **values: Any) -> Self:
        """The settings from an argparse namespace (fields it lacks keep their defaults); ``values``
        override. A bad value is a ConfigError naming the flag."""
        data = {name: getattr(args, name) for name in cls.model_fields if hasattr(args, name)}
        data.update(values)
        return cls.validated(**data)

    @classmethod
    def validated(cls, **data: Any) -> Self:
        try:
            return cls(**data)
        except ValidationError as err:
            problems = []
            for error in err.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                where = cls.flag(name) if name in cls.model_fields else name or "settings"
                problems.append(f"{where}: {error['msg']}")
            raise ConfigError("; ".join(problems)) from None

    def to_argv(self) -> list[str]:
        """The command-line flags that give these settings (defaults left out), for a child process."""
        argv: list[str] = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            if value is None or (not field.is_required() and value == default):
                continue
            flag = self.flag(name)
            if isinstance(value, bool):
                argv.append(flag)  # differs from the default: store_true given, or the --no-... flag
            else:
                argv += [flag, _flag_value(value)]
        return argv


class TlsSettings(PartSettings):
    """``--tls-cert`` and ``--tls-key`` for a part that serves HTTP: given together, it serves HTTPS."""

    tls_cert: Path | None = Field(None, description="TLS certificate chain (PEM); with --tls-key, HTTPS")
    tls_key: Path | None = Field(None, description="TLS private key (PEM, mode 600); with --tls-cert")

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _flag_value(value: Any) -> str:
    """A value as a flag: floats exactly (0.8123456 stays so), whole ones without ".0"."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return annotation
