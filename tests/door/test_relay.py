"""The relay seam on gpiozero's MockFactory: pin levels, pin names, factories, failures."""

from __future__ import annotations

import pytest

from smartlock.door.relay import Relay, make_pin_factory
from smartlock.errors import ConfigError, RelayError
from tests.door.helpers import PIN, levels, on_a_pi


def test_active_low_by_default_high_is_locked_low_is_unlocked(relay, pin):
    # Construction drove the pin HIGH (locked) straight away.
    assert pin.function == "output"
    assert pin.state is True
    assert relay.locked and relay.level == "HIGH"
    pin.clear_states()
    relay.unlock()
    assert pin.state is False and not relay.locked and relay.level == "LOW"
    relay.lock()
    assert levels(pin) == [True, False, True]
    assert relay.locked


def test_active_high_inverts_the_levels(mock_factory):
    relay = Relay(PIN, active_high=True, pin_factory=mock_factory)
    pin = mock_factory.pin(f"BOARD{PIN}")
    assert pin.state is False and relay.locked
    relay.unlock()
    assert pin.state is True and relay.level == "HIGH"
    relay.close()


def test_board_pin_number_maps_to_the_right_gpio(relay):
    assert relay.pin_name == "BOARD11"
    assert relay.gpio_name == "GPIO17"
    assert relay.describe()["simulated"] is True


@pytest.mark.parametrize("bad_pin", [0, 41, -3, 1, 6])  # 1 is 3V3, 6 is GND
def test_pins_that_cannot_drive_a_relay_are_config_errors(mock_factory, bad_pin):
    with pytest.raises(ConfigError):
        Relay(bad_pin, pin_factory=mock_factory)


def test_close_leaves_the_pin_locked_and_is_idempotent(mock_factory):
    relay = Relay(PIN, pin_factory=mock_factory)
    pin = mock_factory.pin(f"BOARD{PIN}")
    relay.unlock()
    relay.close()
    assert pin.state is True
    relay.close()
    with pytest.raises(RelayError):
        relay.unlock()


def test_a_pin_that_cannot_be_driven_raises_relay_error(relay, pin):
    pin.function = "input"  # someone else reconfigured the pin: gpiozero refuses to write it
    with pytest.raises(RelayError, match="cannot unlock"):
        relay.unlock()
    pin.function = "output"  # repaired: the same relay object works again
    relay.lock()
    assert pin.state is True


def test_unknown_factory_name_is_a_config_error():
    with pytest.raises(ConfigError, match="mock"):
        make_pin_factory("bogus")


def test_mock_factory_by_name_and_string_injection():
    relay = Relay(PIN, pin_factory="mock")
    try:
        assert relay.simulated and relay.factory_name == "MockFactory"
    finally:
        relay.close()


@pytest.mark.skipif(on_a_pi(), reason="on a Raspberry Pi the auto factory works")
def test_auto_factory_off_a_pi_fails_with_the_mock_hint(monkeypatch):
    from gpiozero import Device

    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    with pytest.raises(RelayError, match="--pin-factory mock"):
        Relay(PIN, pin_factory=make_pin_factory("auto"))


@pytest.mark.skipif(on_a_pi(), reason="on a Raspberry Pi the native factory works")
def test_native_factory_off_a_pi_fails_with_the_mock_hint():
    with pytest.raises(RelayError, match="--pin-factory mock"):
        make_pin_factory("native")
