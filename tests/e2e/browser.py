"""Headless Chromium driven over the Chrome DevTools Protocol (one websocket, flattened sessions):
navigate, evaluate JavaScript, take screenshots, and collect what the page reported: console
messages, uncaught exceptions, log entries (CSP violations, failed loads) and dialogs (which
are dismissed at once, so an ``alert`` never blocks the page).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

START_TIMEOUT = 30.0
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-sync", "--mute-audio", "--hide-scrollbars",
         "--disable-component-update", "--disable-default-apps", "--password-store=basic"]


CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (e) => console.error(
  "CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI + " in " + e.sourceFile + ":" + e.lineNumber));"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    pass


@dataclass
class PageReport:
    """What a page said since the last :meth:`Browser.clear`."""

    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    dialogs: list[dict[str, Any]] = field(default_factory=list)

    def errors(self) -> list[str]:
        found = [f"console.{c['type']}: {' '.join(_arg_text(a) for a in c.get('args', []))}"
                 for c in self.console if c["type"] in ("error", "assert")]
        found += [f"exception: {_exception_text(e)}" for e in self.exceptions]
        found += [f"log {e['entry']['level']} ({e['entry'].get('source')}): {e['entry'].get('text')} "
                  f"{e['entry'].get('url', '')}" for e in self.log if e["entry"]["level"] == "error"]
        found += [f"dialog {d.get('type')}: {d.get('message')}" for d in self.dialogs]
        return found


def _arg_text(arg: dict[str, Any]) -> str:
    return str(arg.get("value", arg.get("description", arg.get("type"))))


def _exception_text(event: dict[str, Any]) -> str:
    details = event.get("exceptionDetails", {})
    description = details.get("exception", {}).get("description") or details.get("text", "")
    return f"{description} at {details.get('url', '')}:{details.get('lineNumber')}"


class Browser:
    """One Chromium with one page (tab)."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900):
        self.profile = Path(tempfile.mkdtemp(prefix="tuning-chromium-"))
        # Chromium's own chatter goes to a file (a pipe nobody reads could fill up and stall it).
        self.log_file = open(self.profile.with_suffix(".log"), "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [binary, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.log_file)
        self.ws: ClientConnection | None = None
        self.stack = contextlib.ExitStack()
        self.ids = itertools.count(1)
        self.report = PageReport()
        try:
            # No keepalive pings: a page that keeps Chromium busy for 20 s (optuna-dashboard with
            # 10,000 trials) would otherwise end the connection; every call has its own timeout.
            self.ws = self.stack.enter_context(connect(self._browser_url(), max_size=None, open_timeout=START_TIMEOUT,
                                                       ping_interval=None))
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=True)
            # Chromium reports a CSP refusal of eval (plotly's WebGL shader compiler) to no console
            # and no log: only the page's securitypolicyviolation event hears of it.
            self.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER}, session=True)
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        except BaseException:
            self.close()
            raise

    def _browser_url(self) -> str:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.profile.with_suffix(".log").read_text(errors="replace")[-2000:]
                raise CdpError(f"chromium exited with {self.process.returncode}: {log}")
            if port_file.is_file():
                lines = port_file.read_text().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            time.sleep(0.05)
        raise CdpError("chromium did not write DevToolsActivePort in time")

    # --- protocol --------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False,
             timeout: float = 30.0) -> dict[str, Any]:
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CdpError(f"{method}: no answer within {timeout} s")
            answer = json.loads(self.ws.recv(timeout=remaining))
            if answer.get("id") == ident:
                if "error" in answer:
                    raise CdpError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self._event(answer)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            self.report.console.append(params)
        elif method == "Runtime.exceptionThrown":
            self.report.exceptions.append(params)
        elif method == "Log.entryAdded":
            self.report.log.append(params)
        elif method == "Page.javascriptDialogOpening":
            self.report.dialogs.append(params)
            # Answered without waiting: the answer to this call is read (and dropped) later.
            self.ws.send(json.dumps({"id": next(self.ids), "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": False}, "sessionId": self.session}))

    def pump(self, seconds: float) -> None:
        """Reads events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                return
            self._event(message)

    # --- pages -----------------------------------------------------------------------------------

    def clear(self) -> None:
        self.report = PageReport()

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True}, session=True)
        if "exceptionDetails" in answer:
            raise CdpError(f"evaluating {expression!r}: {_exception_text(answer)}")
        return answer["result"].get("value")

    def open(self, url: str, *, ready: str = "document.body && document.body.dataset.ready === '1'",
             timeout: float = 20.0) -> None:
        """Navigates, then waits until ``ready`` is true in the page."""
        # The old document must not pass for the new one while the navigation is under way.
        self.evaluate("document.body && delete document.body.dataset.ready")
        self.clear()
        answer = self.call("Page.navigate", {"url": url}, session=True)
        if answer.get("errorText"):
            raise CdpError(f"navigating to {url}: {answer['errorText']}")
        self.wait_for(ready, timeout=timeout, what=f"{url} to be ready")

    def wait_for(self, expression: str, *, timeout: float = 20.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except CdpError:  # the document is being replaced
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise CdpError(f"waited {timeout} s for {what or expression}; the page said: {self.report.errors()}")
            self.pump(0.1)

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def count(self, selector: str) -> int:
        return self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")

    def screenshot(self, path: Path, max_height: int = 4000, top: int = 0) -> Path:
        """The page from ``top`` (its top by default), at most ``max_height`` pixels of it, as a PNG."""
        height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        width = self.evaluate("Math.ceil(document.documentElement.scrollWidth)")
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": top, "width": width, "height": max(1, min(height - top, max_height)), "scale": 1}},
            session=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            self.log_file.close()
            self.profile.with_suffix(".log").unlink(missing_ok=True)
            shutil.rmtree(self.profile, ignore_errors=True)
