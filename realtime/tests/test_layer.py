"""The registry of messages between instances (realtime.layer)."""

import pytest

from realtime.layer import MESSAGES, layer_handler, on_layer


def test_a_type_without_a_definition_cannot_be_registered():
    with pytest.raises(RuntimeError, match="no definition"):
        on_layer("no.such")(lambda hub, message: None)


def test_a_type_is_registered_once():
    handler = layer_handler("room.emit")
    assert handler is not None
    assert on_layer("room.emit")(handler) is handler  # the same one again: fine
    with pytest.raises(RuntimeError, match="twice"):
        on_layer("room.emit")(lambda hub, message: None)
    assert layer_handler("room.emit") is handler


def test_every_definition_names_its_type():
    for kind, definition in MESSAGES.items():
        assert "type" in definition.__annotations__, kind
    assert layer_handler(None) is None
