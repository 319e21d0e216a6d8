"""Strict REST input: JSON types exactly as docs/protocol.md §9 gives them, and ids in
the range of the database's ids, in bodies, query strings and paths.

DRF's own fields coerce: CharField stores 123 as "123", IntegerField takes "5" and
5.0. An id beyond the database's range went to the driver and failed there (SQLite's
OverflowError, a 500 with Django's HTML page).
"""

from rest_framework import serializers

from realtime.api.errors import PathError

# Every id column is a BigAutoField (DEFAULT_AUTO_FIELD): a signed 64-bit integer on
# SQLite and PostgreSQL, and auto ids start at 1.
MIN_ID = 1
MAX_ID = 2**63 - 1
# Digits of MAX_ID: a longer string of digits is out of range without parsing it
# (int() refuses strings of more than 4300 digits).
MAX_ID_DIGITS = len(str(MAX_ID))


class StrictCharField(serializers.CharField):
    """A JSON string, never a number or boolean turned into one."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: not a string of digits, a float such as 5.0, or a boolean."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictFloatField(serializers.FloatField):
    """A JSON number (integer or not): not a string or a boolean."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class IdField(StrictIntegerField):
    """A database id, from MIN_ID to MAX_ID. In a JSON body it is a JSON integer; with
    `text=True` (query strings and paths, which are text) a string of digits."""

    def __init__(self, *, text: bool = False, **kwargs) -> None:
        self.text = text
        super().__init__(min_value=MIN_ID, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data):
        if not self.text:
            return super().to_internal_value(data)
        if not (isinstance(data, str) and data.isascii() and data.isdigit()):
            self.fail("invalid")
        if len(data) > MAX_ID_DIGITS:
            self.fail("max_value", max_value=MAX_ID)
        return int(data)


class PathIdsMixin:
    """For views whose path carries numeric ids (`<str:...>` in the URL): each kwarg
    named in `path_ids` is checked like an IdField before the handler runs, and
    replaced by its int. A malformed id names nothing, so it is 400 `invalid path`
    before any lookup, whoever asks."""

    path_ids: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        errors = {}
        for name in self.path_ids:
            try:
                # self.kwargs is the dict the handler is called with.
                self.kwargs[name] = IdField(text=True).run_validation(self.kwargs[name])
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
        if errors:
            raise PathError(errors)
