"""Client methods of the webhook RPCs, written once for both services' webhooks, whose messages
have the same shape: the tracking service's registry webhooks (``TrackingClient.create_webhook``,
RPCs ``CreateWebhook``...) and the suggestion service's study webhooks
(``SuggestionClient.create_study_webhook``, RPCs ``CreateStudyWebhook``...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tuning_common.errors import InvalidArgument


def event_value(kind: Any, value: int | str) -> int:
    """A value of the ``WebhookEvent`` enum ``kind`` from itself or its name ("STAGE_CHANGED",
    "best_improved", "WEBHOOK_EVENT_BUDGET_SPENT", ...)."""
    if isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("WEBHOOK_EVENT_") else f"WEBHOOK_EVENT_{name}"
        if name not in kind.keys():
            raise InvalidArgument("events", f"unknown webhook event {value!r}")
        return kind.Value(name)
    return value


class WebhookCalls:
    """``call``: the client's call(method, request, retries=...); ``api``: the module of the request
    messages; ``kind``: the WebhookEvent enum; ``infix``: "" (CreateWebhook) or "Study"
    (CreateStudyWebhook); ``scope_field``: the request field naming the one model or study."""

    def __init__(self, call: Callable[..., Any], api: Any, kind: Any, infix: str, scope_field: str):
        self._call, self.api, self.kind, self.infix, self.scope_field = call, api, kind, infix, scope_field

    def _rpc(self, verb: str, plural: str = "", **fields: Any) -> Any:
        method = f"{verb}{self.infix}Webhook{plural}"
        # A repeat after a lost answer would queue a second test delivery.
        retries = 0 if verb == "Test" else None
        return self._call(method, getattr(self.api, f"{method}Request")(**fields), retries=retries)

    def create(self, name: str, url: str, events: Sequence[int | str], scope: str, secret: str,
               active: bool) -> tuple[Any, str]:
        response = self._rpc("Create", name=name, url=url, events=[event_value(self.kind, e) for e in events],
                             secret=secret, active=active, **{self.scope_field: scope})
        return response.webhook, response.secret

    def get(self, name: str) -> Any:
        return self._rpc("Get", name=name).webhook

    def list(self, page_size: int) -> Iterator[Any]:
        token = ""
        while True:
            page = self._rpc("List", "s", page_size=page_size, page_token=token)
            yield from page.webhooks
            if not (token := page.next_page_token):
                return

    def update(self, name: str, *, url: str | None, events: Sequence[int | str] | None, scope: str | None,
               secret: str | None, active: bool | None) -> Any:
        """Changes what is given (not None); the rest stays."""
        given = {"url": url, self.scope_field: scope, "secret": secret, "active": active}
        fields: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if events is not None:
            fields["events"] = {"events": [event_value(self.kind, e) for e in events]}
        return self._rpc("Update", name=name, **fields).webhook

    def delete(self, name: str) -> None:
        self._rpc("Delete", name=name)

    def test(self, name: str) -> Any:
        return self._rpc("Test", name=name).delivery

    def deliveries(self, name: str, status: int, page_size: int) -> Iterator[Any]:
        token = ""
        while True:
            page = self._rpc("List", "Deliveries", name=name, status=status, page_size=page_size, page_token=token)
            yield from page.deliveries
            if not (token := page.next_page_token):
                return
