"""The exception tree of smartlock: one root, one branch per part.

    SmartlockError
    ├── ConfigError (ValueError)             bad setting or command-line value
    ├── DependencyMissing (ImportError)      an optional package is not installed; says what to install
    ├── BadImageError (ValueError)           not an image, truncated, too large, unsupported mode
    ├── ModelError                           recognition model files
    │   ├── ModelCorrupt                     unreadable / inconsistent / failed hash check
    │   └── ModelMismatch                    gallery made by another backend or other weights
    ├── GalleryError (ValueError)            bad person name, unknown person or image
    │   └── NotEnrolled (KeyError)
    ├── CameraError                          no source could be opened, the source failed
    ├── DoorError                            the door API or its relay
    │   ├── RelayError                       the relay cannot be driven
    │   └── AuthError                        a request signature was refused
    └── ServiceError                         another smartlock service answered badly or not at all
        └── ServiceRefused                   it answered with an error status (status_code kept)
"""


class SmartlockError(Exception):
    """Root of every error smartlock raises on purpose."""


class ConfigError(SmartlockError, ValueError):
    """A setting or command-line value is invalid."""


class DependencyMissing(SmartlockError, ImportError):
    """An optional package is missing; the message names the pip command that installs it."""

    def __init__(self, package: str, purpose: str, install: str | None = None) -> None:
        self.package = package
        self.install = install or f"pip install {package}"
        super().__init__(f"{purpose} needs the package {package!r}: install it with `{self.install}`")


class BadImageError(SmartlockError, ValueError):
    """The bytes are not an image that can be used (empty, truncated, too large, unknown format)."""


class ModelError(SmartlockError):
    """A recognition model (weights or gallery) cannot be used."""


class ModelCorrupt(ModelError):
    """A model file is unreadable, inconsistent, or fails its hash check."""


class ModelMismatch(ModelError):
    """A gallery was made with another backend or other weights than the ones loaded."""


class GalleryError(SmartlockError, ValueError):
    """A request to the gallery is invalid (bad person name, unknown image, ...)."""


class NotEnrolled(GalleryError, KeyError):
    """The person or image is not in the gallery."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CameraError(SmartlockError):
    """No camera source could be opened, or the source failed."""


class DoorError(SmartlockError):
    """The door API or its relay failed."""


class RelayError(DoorError):
    """The relay cannot be driven: the door stays locked."""


class AuthError(DoorError):
    """A request's signature, timestamp or nonce was refused."""


class ServiceError(SmartlockError):
    """Another smartlock service did not answer, or answered with something unusable."""


class ServiceRefused(ServiceError):
    """The service answered with an error status; ``status_code`` says which (404: unknown person...)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code
