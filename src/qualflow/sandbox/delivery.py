"""Event-subscription delivery: the sandbox really POSTs webhooks, in the background.

When the state emits an event, :class:`WebhookDispatcher` finds the subscriptions whose topic
pattern matches, builds the form body Qualtrics sends (flat fields; or ``Topic`` + ``MSG`` +
``HMAC`` when the subscription has a ``sharedKey``) and schedules a delivery task. The API call
that caused the event never waits: tasks run on the event loop that served it (or on a private
background loop when the event came from plain synchronous code). Each attempt is recorded;
failures are retried with exponential backoff. A delivery whose subscription is deleted before
it got through is cancelled: no attempt is made after the deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from qualflow.sandbox import ids
from qualflow.sandbox.state import Event, SandboxState, Subscription, iso, utcnow
from qualflow.tls import verified_context

MAX_CONCURRENT_DELIVERIES = 32


def sign(msg: str, key: str) -> str:
    """Lowercase hex HMAC-SHA512 of ``msg`` keyed with ``key`` (what Qualtrics sends as HMAC)."""
    return hmac.new(key.encode("utf-8"), msg.encode("utf-8"), hashlib.sha512).hexdigest()


def topic_matches(pattern: str, topic: str, brand_id: str) -> bool:
    """``*`` wildcards; a pattern may carry the brand prefix or not."""
    return fnmatch.fnmatchcase(topic, pattern) or fnmatch.fnmatchcase(
        f"{brand_id}.{topic}", pattern
    )


def form_fields(event: Event, subscription: Subscription) -> dict[str, str]:
    """The form fields POSTed for ``event`` to ``subscription``."""
    topic = f"{subscription.brand_id}.{event.topic}"
    if subscription.shared_key:
        msg = json.dumps(event.fields, separators=(",", ":"))
        return {"Topic": topic, "MSG": msg, "HMAC": sign(msg, subscription.shared_key)}
    return {"Topic": topic, **event.fields}


@dataclass
class Attempt:
    number: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "at": self.at,
            "statusCode": self.status_code,
            "error": self.error,
            "durationMs": round(self.duration_ms, 2),
        }


@dataclass
class Delivery:
    id: str
    subscription_id: str
    topic: str
    url: str
    body: dict[str, str]
    created_at: str
    #: pending | delivered | failed | cancelled (its subscription was deleted before it was
    #: delivered: no attempt is made after that)
    status: str = "pending"
    attempts: list[Attempt] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscriptionId": self.subscription_id,
            "topic": self.topic,
            "publicationUrl": self.url,
            "body": self.body,
            "createdAt": self.created_at,
            "status": self.status,
            "attempts": [a.to_json() for a in self.attempts],
        }


class WebhookDispatcher:
    """Matches events to subscriptions and delivers them asynchronously with retries."""

    def __init__(
        self,
        state: SandboxState,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.state = state
        self.transport = transport
        self.deliveries: deque[Delivery] = deque(maxlen=state.config.delivery_log_size)
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)
        self._pending = 0

    # -- publishing ----------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """State listener: schedule deliveries for ``event``."""
        self.publish(event)

    def publish(self, event: Event) -> list[Delivery]:
        """Schedule deliveries of ``event``; returns them at once (never blocks on HTTP)."""
        with self.state.lock:
            subs = [
                s
                for s in self.state.subscriptions.values()
                if any(topic_matches(p, event.topic, s.brand_id) for p in s.patterns)
            ]
        created: list[Delivery] = []
        for sub in subs:
            delivery = Delivery(
                id=ids.request_id(),
                subscription_id=sub.id,
                topic=event.topic,
                url=sub.publication_url,
                body=form_fields(event, sub),
                created_at=iso(utcnow(), millis=True),
            )
            with self._lock:
                self.deliveries.append(delivery)
                self._pending += 1
            self._schedule(delivery)
            created.append(delivery)
        return created

    def _schedule(self, delivery: Delivery) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and not loop.is_closed():
            task = loop.create_task(self._deliver(delivery))
            self._track(task)
            return
        # No loop here (plain synchronous caller): deliver on the private background loop.
        asyncio.run_coroutine_threadsafe(self._deliver(delivery), self._background_loop())

    def _track(self, task: asyncio.Future[Any]) -> None:
        with self._lock:
            self._tasks.add(task)
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Future[Any]) -> None:
        with self._lock:
            self._tasks.discard(task)

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._thread_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="sandbox-webhooks", daemon=True
                )
                thread.start()
                self._thread_loop, self._thread = loop, thread
            return self._thread_loop

    # -- delivering ----------------------------------------------------------------------
    def _slots(self) -> asyncio.Semaphore:
        """Bounds concurrent POSTs per event loop, so a burst does not flood the receiver."""
        loop = asyncio.get_running_loop()
        slots = self._semaphores.get(loop)
        if slots is None:
            slots = self._semaphores[loop] = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        return slots

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                transport=self.transport,
                verify=verified_context(),
                timeout=self.state.config.webhook_timeout,
                follow_redirects=False,
            )
            self._clients[loop] = client
        return client

    async def _deliver(self, delivery: Delivery) -> None:
        cfg = self.state.config
        payload = urlencode(delivery.body)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "qualflow-sandbox-webhooks/1",
        }
        try:
            for number in range(1, max(1, cfg.webhook_max_attempts) + 1):
                if not self._still_subscribed(delivery):
                    # Deleted while this delivery waited (for a slot or a retry): Qualtrics
                    # sends nothing to a subscription that is gone.
                    delivery.status = "cancelled"
                    return
                started = time.perf_counter()
                status: int | None = None
                error: str | None = None
                try:
                    async with self._slots():
                        response = await self._client().post(
                            delivery.url, content=payload, headers=headers
                        )
                    status = response.status_code
                    if not 200 <= status < 300:
                        error = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                except Exception as exc:  # a receiving in-process app may raise anything
                    error = f"{type(exc).__name__}: {exc}"
                delivery.attempts.append(
                    Attempt(
                        number,
                        iso(utcnow(), millis=True),
                        status,
                        error,
                        (time.perf_counter() - started) * 1000,
                    )
                )
                if error is None:
                    delivery.status = "delivered"
                    with self.state.lock:
                        sub = self.state.subscriptions.get(delivery.subscription_id)
                        if sub is not None:
                            sub.successful_calls += 1
                    self.state.mark_dirty()
                    return
                if number < cfg.webhook_max_attempts:
                    await asyncio.sleep(cfg.webhook_backoff * (2 ** (number - 1)))
            delivery.status = "failed"
        finally:
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()

    def _still_subscribed(self, delivery: Delivery) -> bool:
        with self.state.lock:
            return delivery.subscription_id in self.state.subscriptions

    # -- waiting / shutting down ----------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._pending

    async def drain(self, timeout: float | None = 30.0) -> bool:  # noqa: ASYNC109
        """Wait until every scheduled delivery finished; False if ``timeout`` elapsed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._pending == 0:
                    return True
                tasks = [t for t in self._tasks if not t.done()]
            if deadline is not None and time.monotonic() >= deadline:
                return False
            here = asyncio.get_running_loop()
            local = [t for t in tasks if t.get_loop() is here]
            if local:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                await asyncio.wait(local, timeout=remaining)
            else:
                await asyncio.sleep(0.01)

    def wait_idle(self, timeout: float | None = 30.0) -> bool:
        """Blocking variant of :meth:`drain` for deliveries on the background loop."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    async def aclose(self) -> None:
        here = asyncio.get_running_loop()
        client = self._clients.pop(here, None)
        if client is not None:
            await client.aclose()
        for task in [t for t in self._tasks if t.get_loop() is here and not t.done()]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._thread_loop is not None:
            loop = self._thread_loop
            # Deliveries waiting there (for a retry, say) end now, cancelled, rather than be
            # destroyed pending with the loop.
            asyncio.run_coroutine_threadsafe(_cancel_the_other_tasks(), loop).result(timeout=5)
            bg_client = self._clients.pop(loop, None)
            if bg_client is not None:
                asyncio.run_coroutine_threadsafe(bg_client.aclose(), loop).result(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            loop.close()
            self._thread_loop = None
            self._thread = None

    def list(
        self, *, subscription_id: str | None = None, status: str | None = None
    ) -> list[Delivery]:
        with self._lock:
            items = list(self.deliveries)
        return [
            d
            for d in items
            if (subscription_id is None or d.subscription_id == subscription_id)
            and (status is None or d.status == status)
        ]


async def _cancel_the_other_tasks() -> None:
    """Cancel every task of the running loop but this one, and wait until they have ended."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
