"""The relay behind the door strike: one gpiozero OutputDevice on a BOARD pin, the only GPIO seam."""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any, Literal, get_args

from smartlock.errors import ConfigError, DependencyMissing, RelayError

logger = logging.getLogger(__name__)

PinFactoryName = Literal["auto", "lgpio", "rpigpio", "pigpio", "native", "mock"]
PIN_FACTORIES: tuple[str, ...] = get_args(PinFactoryName)

# gpiozero's own entry points; imported only when asked for, so this module imports anywhere.
_FACTORY_CLASSES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", "lgpio"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "RPi.GPIO"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory", "pigpio"),
    "native": ("gpiozero.pins.native", "NativeFactory", None),
    "mock": ("gpiozero.pins.mock", "MockFactory", None),
}

MOCK_HINT = "off a Raspberry Pi, run with `--pin-factory mock` to simulate the relay"


def _gpiozero() -> Any:
    try:
        import gpiozero
    except ImportError as err:
        raise DependencyMissing("gpiozero", "driving the door relay") from err
    return gpiozero


def make_pin_factory(name: str) -> Any:
    """Build the gpiozero pin factory called ``name``; ``auto`` returns None (gpiozero picks one).

    Raises ConfigError for an unknown name and RelayError (with the `--pin-factory mock` hint) when the
    factory cannot be loaded on this machine.
    """
    if name not in PIN_FACTORIES:
        raise ConfigError(f"unknown pin factory {name!r}; choose one of: {', '.join(PIN_FACTORIES)}")
    if name == "auto":
        return None
    _gpiozero()
    module_name, class_name, package = _FACTORY_CLASSES[name]
    try:
        module = __import__(module_name, fromlist=[class_name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(module, class_name)()
    except ImportError as err:
        hint = f"install {package!r} (pip install 'smartlock[pi]' on a Pi)" if package else MOCK_HINT
        raise RelayError(f"the {name} pin factory cannot be loaded ({err}); {hint}; {MOCK_HINT}") from err
    except Exception as err:
        raise RelayError(f"the {name} pin factory does not work here ({err}); {MOCK_HINT}") from err


class Relay:
    """The door relay on physical (BOARD) pin ``pin``; the device is "on" while the door is unlocked.

    Active-low by default as in the seed: the pin reads HIGH while locked and LOW while unlocked;
    ``active_high=True`` inverts that. The relay starts locked. Every failure of the GPIO layer is
    raised as RelayError.
    """

    def __init__(self, pin: int, *, active_high: bool = False, pin_factory: Any = None) -> None:
        if isinstance(pin, bool) or not isinstance(pin, int) or not 1 <= pin <= 40:
            raise ConfigError(f"--pin must be a physical (BOARD) pin number between 1 and 40, not {pin!r}")
        if isinstance(pin_factory, str):
            pin_factory = make_pin_factory(pin_factory)
        gpiozero = _gpiozero()
        self.pin = pin
        self.pin_name = f"BOARD{pin}"
        self.active_high = active_high
        self._lock = threading.Lock()
        fallbacks: list[str] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._device = gpiozero.OutputDevice(
                    self.pin_name, active_high=active_high, initial_value=False, pin_factory=pin_factory
                )
            fallbacks = [str(w.message) for w in caught]
        except gpiozero.BadPinFactory as err:
            reasons = "; ".join(str(w.message) for w in caught) or str(err)
            raise RelayError(f"no GPIO pin factory works on this machine ({reasons}); {MOCK_HINT}") from err
        except gpiozero.PinInvalidPin as err:
            raise ConfigError(f"BOARD pin {pin} cannot drive the relay: {err}") from err
        except gpiozero.GPIOZeroError as err:
            raise RelayError(f"cannot drive BOARD pin {pin}: {err}") from err
        except Exception as err:  # hardware libraries raise their own types (lgpio.error, OSError, ...)
            raise RelayError(f"cannot drive BOARD pin {pin}: {err}") from err
        for message in fallbacks:
            logger.debug("gpiozero: %s", message)
        self.factory_name = type(self._device.pin_factory).__name__
        self.simulated = self.factory_name == "MockFactory"
        self.gpio_name = str(self._device.pin)

    def unlock(self) -> None:
        self._write(True, "unlock")

    def lock(self) -> None:
        self._write(False, "lock")

    def _write(self, unlocked: bool, action: str) -> None:
        with self._lock:
            try:
                if unlocked:
                    self._device.on()
                else:
                    self._device.off()
            except Exception as err:
                raise RelayError(f"cannot {action} the relay on {self.pin_name}: {err}") from err

    @property
    def locked(self) -> bool:
        """Whether the relay reads back as locked (read from the pin, not remembered)."""
        with self._lock:
            try:
                return not self._device.value
            except Exception as err:
                raise RelayError(f"cannot read the relay on {self.pin_name}: {err}") from err

    @property
    def level(self) -> str:
        """The pin's current level, "HIGH" or "LOW", read back from the pin."""
        with self._lock:
            try:
                return "HIGH" if self._device.pin.state else "LOW"
            except Exception as err:
                raise RelayError(f"cannot read {self.pin_name}: {err}") from err

    def describe(self) -> dict[str, Any]:
        """The relay's wiring for /status and the logs."""
        return {
            "pin": self.pin,
            "pin_name": self.pin_name,
            "gpio": self.gpio_name,
            "active_high": self.active_high,
            "pin_factory": self.factory_name,
            "simulated": self.simulated,
        }

    def close(self) -> None:
        """Lock, then release the pin. Idempotent; raises RelayError if the relay could not be locked."""
        with self._lock:
            if self._device.closed:
                return
            try:
                self._device.off()
            except Exception as err:
                raise RelayError(f"cannot lock the relay on {self.pin_name} while closing: {err}") from err
            finally:
                self._device.close()

    def __repr__(self) -> str:
        return f"Relay({self.pin_name}, active_high={self.active_high}, factory={self.factory_name})"
