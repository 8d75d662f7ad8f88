"""Door API: a GPIO relay behind signed, replay-proof unlock requests, with an audit log."""
