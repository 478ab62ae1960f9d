"""Actions used by the engine tests: real actions registered through the public decorator,
recording what they were asked to do and failing on demand."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import text

from qualflow.engine import ActionContext, FatalError, RetriableError, SkipStep, action

# -- actions used by the tests --------------------------------------------------------------
# Real actions registered through the public decorator, recording what they were asked to do.

CALLS: dict[str, list[dict[str, Any]]] = {}
FAILURES: dict[str, list[str]] = {}
GATES: dict[str, threading.Event] = {}


class RecordConfig(BaseModel):
    label: str
    fail_with: list[Literal["retriable", "fatal", "skip"]] = Field(default_factory=list)
    gate: str | None = None
    #: Note the attempt on the run's trigger summary, written with the step's row.
    note_with_step: bool = False


_NOTE = text("UPDATE runs SET trigger_summary = :note WHERE id = :run_id")


@action("test.record", config=RecordConfig)
async def record(ctx: ActionContext, config: RecordConfig) -> dict[str, Any]:
    """Record the call; fail as told by FAILURES[label] (consumed one per attempt)."""
    CALLS.setdefault(config.label, []).append(
        {
            "run_id": ctx.run_id,
            "attempt": ctx.attempt,
            "outputs": ctx.outputs,
            "trigger": ctx.trigger,
            "version": ctx.automation_version,
            "loop": type(asyncio.get_running_loop()),
        }
    )
    if config.note_with_step:
        ctx.write_with_step(
            _NOTE, {"note": f"{config.label} attempt {ctx.attempt}", "run_id": ctx.run_id}
        )
    if config.gate is not None:
        gate = GATES.setdefault(config.gate, threading.Event())
        await asyncio.to_thread(gate.wait, 30)
    pending = FAILURES.get(config.label) or []
    if pending:
        kind = pending.pop(0)
        if kind == "retriable":
            raise RetriableError(f"{config.label}: temporary problem")
        if kind == "fatal":
            raise FatalError(f"{config.label}: permanent problem")
        if kind == "skip":
            raise SkipStep(f"{config.label}: nothing to do")
    return {"label": config.label, "n": len(CALLS[config.label])}


# -- a real SMTP server (aiosmtpd) on a loopback port chosen by the OS --------------------------


class SmtpSink:
    """aiosmtpd on 127.0.0.1:<port 0>, in its own thread; collects the messages it receives."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refuse_next: list[str] = []
        #: SMTP connections accepted so far.
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_next:
            return self.refuse_next.pop(0)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", errors="replace"),
            }
        )
        return "250 Message accepted"

    def _run(self) -> None:
        from aiosmtpd.smtp import SMTP

        asyncio.set_event_loop(self._loop)

        def connection() -> SMTP:
            self.connections += 1
            return SMTP(self)

        server = self._loop.run_until_complete(self._loop.create_server(connection, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def start(self) -> SmtpSink:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


# -- an HTTP server on a loopback port chosen by the OS, recording every request ----------------


class RecordingServer:
    """Records requests; paths registered with :meth:`block` hang until released."""

    def __init__(self) -> None:
        import http.server

        self.requests: list[dict[str, Any]] = []
        self.statuses: dict[str, list[int]] = {}
        self._blocked: dict[str, int] = {}
        self._release = threading.Event()
        self._seen = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                with outer._seen:
                    outer.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    outer._seen.notify_all()
                    block = outer._blocked.get(self.path, 0) > 0
                    if block:
                        outer._blocked[self.path] -= 1
                if block:
                    outer._release.wait(60)
                planned = outer.statuses.get(self.path)
                status = planned.pop(0) if planned else 200
                payload = b'{"ok": true}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def block(self, path: str, times: int = 1) -> None:
        self._blocked[path] = times

    def release(self) -> None:
        self._release.set()

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)

    def wait_for(self, path: str, n: int = 1, limit: float = 60.0) -> None:
        with self._seen:
            ok = self._seen.wait_for(lambda: self.count(path) >= n, timeout=limit)
        if not ok:
            raise AssertionError(f"{path} was not requested {n} time(s)")
