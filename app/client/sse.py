"""A Server-Sent Events decoder (the WHATWG event-stream rules), fed one line at a time.

Both clients read lines from their own transport and hand them here, so parsing is written once.
"""

from __future__ import annotations

import json

from app.client.models import Event


class SSEDecoder:
    """Turns ``id:``/``event:``/``data:`` lines into `Event`s; a blank line ends an event."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id  # kept across events, as a browser does
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """Take one line (without its end of line); return the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive pings
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        event, data, self._event, self._data = self._event or "message", self._data, "", []
        if not data:
            return None
        text = "\n".join(data)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        return Event(id=self.last_event_id, event=event, data=payload)
