"""The alert inbox: an ASGI app (Starlette) beside the Dagster UI.

Pages: the inbox (three columns: alerts by priority, the selected alert, quick actions), sign-in
by emailed link, and the confirmation pages of the signed links in alert emails. It reads the
published snapshot (never the warehouse) and records actions in its own store at once; the
pipeline applies them to the warehouse (inbox.apply).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from inbox import store, views
from inbox.fonts import find_inter
from inbox.snapshot import SnapshotMissing, SnapshotReader
from notifications.content import PALETTE, local_time
from notifications.links import (
    ACTION_LABELS,
    SNOOZE_DAYS,
    LinkError,
    verify_action,
)
from notifications.mail import SmtpConfig, SmtpSender
from notifications.outbox import DeliveryError, OutboxRow
from notifications.reasons import glossary_at
from service.status import human_bytes

log = logging.getLogger("inbox")
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class InboxSettings:
    """Everything the app needs; built from environment variables by inbox.cli."""

    public_url: str
    secret: str
    store_path: Path
    snapshot_path: Path
    config_dir: Path
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    session_hours: int = 12
    sign_in_minutes: int = 15
    # Sign-in links: per address and per client (IP) within the window.
    sign_in_per_email: int = 3
    sign_in_per_client: int = 20
    sign_in_window_minutes: int = 15
    poll_seconds: int = 20
    product_name: str = "Engagement Alerts"
    # The data team's status page (service.status): a callable returning the view, or None.
    status: Callable[[], Any] | None = None
    status_cache_seconds: int = 30

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.lower().startswith("https://")


class _State:
    """Per-app objects: the store connection (one writer; a lock keeps its use serial)."""

    def __init__(self, settings: InboxSettings):
        self.settings = settings
        self.snapshot = SnapshotReader(settings.snapshot_path)
        self.store = store.connect(settings.store_path)
        self.lock = threading.Lock()
        self.seen_stamp: tuple | None = None
        self.fonts = find_inter()
        self.status_lock = threading.Lock()
        self.status_view: tuple[float, Any] | None = None

    def status(self):
        """The status view, collected at most every `status_cache_seconds` (one at a time)."""
        with self.status_lock:
            now = time.monotonic()
            if self.status_view is None or now - self.status_view[0] > (
                self.settings.status_cache_seconds
            ):
                self.status_view = (now, self.settings.status())
            return self.status_view[1]

    def cursor(self):
        cur = self.snapshot.cursor()
        # A newly published snapshot: remember when each alert was first seen (new-alert count).
        if self.snapshot.stamp != self.seen_stamp:
            ids = [r[0] for r in cur.execute("select alert_id from alerts").fetchall()]
            with self.lock:
                store.note_seen(self.store, ids)
            self.seen_stamp = self.snapshot.stamp
        return cur


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


async def _check_csrf(request: Request) -> dict:
    form = await request.form()
    sent = str(form.get("csrf") or "")
    expected = request.session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "This form expired or did not come from this site. Reload it.")
    return dict(form)


def _safe_next(value: str | None) -> str:
    """Only local paths: a sign-in link must never redirect elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def create_app(settings: InboxSettings) -> Starlette:
    """The ASGI app (run it with uvicorn: `ea inbox`)."""
    state = _State(settings)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        palette=PALETTE,
        product=settings.product_name,
        action_labels=ACTION_LABELS,
        snooze_days=SNOOZE_DAYS,
        local_time=local_time,
        inter=bool(state.fonts),
    )
    templates.env.filters["human_bytes"] = human_bytes

    def glossary():
        return glossary_at(settings.config_dir / "glossary.yml")

    def page(request: Request, name: str, status: int = 200, **context) -> Response:
        context.setdefault("csrf", _csrf(request))
        context.setdefault("me", request.session.get("email"))
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    def problem(request: Request, status: int, title: str, message: str, **extra) -> Response:
        return page(request, "problem.html", status, title=title, message=message, **extra)

    def signed_in(request: Request, cur) -> views.Viewer | None:
        email = request.session.get("email")
        started = request.session.get("signed_in_at")
        if not email or not started:
            return None
        age = _now() - dt.datetime.fromisoformat(started)
        if age > dt.timedelta(hours=settings.session_hours):
            request.session.clear()
            return None
        return views.viewer(cur, email)

    def to_login(request: Request) -> Response:
        target = urllib.parse.quote(
            request.url.path + ("?" + request.url.query if request.url.query else "")
        )
        return RedirectResponse(f"/login?next={target}", status_code=303)

    # --- the inbox ----------------------------------------------------------------------------

    def _inbox(request: Request, alert_id: str | None) -> Response:
        try:
            cur = state.cursor()
        except SnapshotMissing as exc:
            return problem(request, 503, "The inbox has nothing to show yet", str(exc))
        me = signed_in(request, cur)
        if me is None:
            return to_login(request)
        info = views.meta(cur)
        today = info.get("as_of_date") or _now().date()
        alerts = views.alerts_for(cur, me.email)
        with state.lock:
            actions = store.actions_since(
                state.store, [a["alert_id"] for a in alerts], info.get("published_at")
            )
        views.overlay(alerts, actions, today)
        show = request.query_params.get("show", "active")
        if show not in ("active", "snoozed", "closed"):
            show = "active"
        groups = views.inbox_list(alerts, today, show, glossary())
        selected = None
        if alert_id is not None:
            selected = next((a for a in alerts if a["alert_id"] == alert_id), None)
            if selected is None:  # not theirs, or no such alert: the same answer
                raise HTTPException(404, "No such alert in your inbox.")
        elif groups:
            selected = groups[0]["alerts"][0]
        hidden = views.hidden_tokens(cur)
        detail = None
        if selected is not None:
            with state.lock:
                detail = views.detail(cur, selected, glossary(), hidden, state.store, me)
        return page(
            request,
            "inbox.html",
            me=me.email,
            role=me.role,
            groups=groups,
            show=show,
            counts=views.counts(alerts, today),
            selected=selected,
            d=detail,
            published_at=info.get("published_at"),
            as_of=info.get("as_of_date"),
            loaded_at=_now().isoformat(timespec="microseconds"),
            poll_seconds=settings.poll_seconds,
            done=request.query_params.get("done"),
            scope={
                "csm": "your accounts",
                "manager": "your team's accounts",
                "admin": "all accounts",
            }[me.role],
        )

    def home(request: Request) -> Response:
        return _inbox(request, None)

    def alert_page(request: Request) -> Response:
        return _inbox(request, request.path_params["alert_id"])

    def status_page(request: Request) -> Response:
        """The data team's status view: admins only (the scope model's `admin` role)."""
        try:
            cur = state.cursor()
        except SnapshotMissing as exc:
            return problem(request, 503, "The inbox has nothing to show yet", str(exc))
        me = signed_in(request, cur)
        if me is None:
            return to_login(request)
        if me.role != "admin":
            raise HTTPException(
                403, "The status page is for the data team: the admins listed in routing.yml."
            )
        if settings.status is None:
            return problem(request, 503, "No status source", "This inbox has no status view.")
        view = state.status()
        return page(request, "status.html", me=me.email, role=me.role, s=view.as_dict())

    def api_new(request: Request) -> Response:
        """How many alerts in the person's inbox appeared after `since` (the page's load)."""
        try:
            cur = state.cursor()
        except SnapshotMissing:
            return JSONResponse({"new": 0, "critical": 0, "published_at": None})
        me = signed_in(request, cur)
        if me is None:
            return JSONResponse({"error": "signed out"}, status_code=401)
        try:
            since = dt.datetime.fromisoformat(request.query_params.get("since", ""))
        except ValueError:
            return JSONResponse({"error": "since must be an ISO timestamp"}, status_code=400)
        info = views.meta(cur)
        today = info.get("as_of_date") or _now().date()
        active = [
            a
            for a in views.alerts_for(cur, me.email)
            if a["status"] in views.ACTIVE and not views.is_snoozed(a, today)
        ]
        with state.lock:
            new = store.seen_after(state.store, [a["alert_id"] for a in active], since)
        return JSONResponse(
            {
                "new": len(new),
                "critical": sum(
                    a["severity"] == "critical" for a in active if a["alert_id"] in new
                ),
                "published_at": str(info.get("published_at")),
            },
            headers={"Cache-Control": "no-store"},
        )

    async def quick_action(request: Request) -> Response:
        form = await _check_csrf(request)
        alert_id = request.path_params["alert_id"]
        cur = state.cursor()
        me = signed_in(request, cur)
        if me is None:
            return to_login(request)
        if not views.alerts_for(cur, me.email, alert_id):
            raise HTTPException(404, "No such alert in your inbox.")
        action = str(form.get("action") or "")
        feedback = str(form.get("feedback") or "") or None
        if action not in ACTION_LABELS or (
            action == "resolve" and feedback not in views.RESOLVE_FEEDBACK
        ):
            raise HTTPException(400, "Choose acknowledge, snooze, or resolve with feedback.")
        with state.lock:
            store.record_action(
                state.store,
                alert_id,
                action,
                me.email,
                "inbox",
                feedback=feedback if action == "resolve" else None,
                note=(str(form.get("note") or "").strip()[:500] or None),
                snooze_until=_now().date() + dt.timedelta(days=SNOOZE_DAYS)
                if action == "snooze"
                else None,
            )
        return RedirectResponse(
            f"/alerts/{urllib.parse.quote(alert_id)}?done={action}", status_code=303
        )

    # --- signed links from emails --------------------------------------------------------------

    def _claim_or_problem(request: Request):
        token = request.path_params["token"]
        try:
            claim = verify_action(settings.secret, token)
        except LinkError as exc:
            status = 410 if exc.reason == "expired" else 400
            titles = {
                "expired": "This link has expired",
                "forged": "This link is not valid",
                "malformed": "This link is not valid",
            }
            return None, problem(
                request,
                status,
                titles[exc.reason],
                f"{exc} Nothing was changed. Open the inbox to act on the alert.",
                reason=exc.reason,
            )
        with state.lock:
            used = store.action_for_token(state.store, claim.token_id)
        if used is not None:
            return None, problem(
                request,
                409,
                "This link has already been used",
                f"It was used to {used.action} this alert on "
                f"{used.requested_at:%Y-%m-%d %H:%M} UTC by {used.actor}. Nothing else was "
                "changed.",
                reason="used",
            )
        try:
            cur = state.cursor()
        except SnapshotMissing as exc:
            return None, problem(request, 503, "The inbox is not ready yet", str(exc))
        found = views.alerts_for(cur, claim.recipient, claim.alert_id)
        if not found:
            return None, problem(
                request,
                404,
                "This alert is not in your inbox",
                "The link's alert is not one its recipient may see now (the account may have "
                "moved to someone else). Nothing was changed.",
                reason="scope",
            )
        current = request.session.get("email")
        if current and current.lower() != claim.recipient:
            return None, problem(
                request,
                403,
                "This link was sent to someone else",
                f"It was sent to {claim.recipient}, and you are signed in as {current}. "
                "Nothing was changed: act on the alert from your own inbox or email.",
                reason="forwarded",
            )
        alert = found[0]
        with state.lock:
            actions = store.actions_since(
                state.store, [alert["alert_id"]], views.meta(cur).get("published_at")
            )
        views.overlay(found, actions, _now().date())
        return (claim, alert, cur), None

    def action_confirm(request: Request) -> Response:
        ok, err = _claim_or_problem(request)
        if err is not None:
            return err
        claim, alert, cur = ok
        with state.lock:
            d = views.detail(
                cur,
                alert,
                glossary(),
                views.hidden_tokens(cur),
                state.store,
                views.Viewer(claim.recipient, "csm"),
            )
        return page(
            request,
            "confirm_action.html",
            claim=claim,
            d=d,
            closed=alert["status"] not in views.ACTIVE,
            until=_now().date() + dt.timedelta(days=SNOOZE_DAYS),
        )

    async def action_do(request: Request) -> Response:
        form = await _check_csrf(request)
        ok, err = _claim_or_problem(request)
        if err is not None:
            return err
        claim, alert, _ = ok
        if alert["status"] not in views.ACTIVE:
            return problem(
                request,
                409,
                "This alert is already closed",
                "Nothing was changed.",
                reason="closed",
            )
        feedback = str(form.get("feedback") or "") or None
        if claim.action == "resolve" and feedback not in views.RESOLVE_FEEDBACK:
            raise HTTPException(400, "Choose how useful the alert was to resolve it.")
        at = _now()
        try:
            with state.lock:
                action = store.record_action(
                    state.store,
                    claim.alert_id,
                    claim.action,
                    claim.recipient,
                    "email",
                    feedback=feedback if claim.action == "resolve" else None,
                    note=(str(form.get("note") or "").strip()[:500] or None),
                    snooze_until=at.date() + dt.timedelta(days=SNOOZE_DAYS)
                    if claim.action == "snooze"
                    else None,
                    token_id=claim.token_id,
                    at=at,
                )
        except store.LinkAlreadyUsed as used:
            a = used.action
            return problem(
                request,
                409,
                "This link has already been used",
                f"It was used to {a.action} this alert on "
                f"{a.requested_at:%Y-%m-%d %H:%M} UTC by {a.actor}.",
                reason="used",
            )
        return page(
            request,
            "action_done.html",
            action=action,
            alert=alert,
            title=glossary().term("alert_types", alert.get("alert_type")),
        )

    # --- sign-in by emailed link ---------------------------------------------------------------

    def login_form(request: Request) -> Response:
        return page(request, "login.html", next=_safe_next(request.query_params.get("next")))

    async def login_request(request: Request) -> Response:
        form = await _check_csrf(request)
        email = str(form.get("email") or "").strip().lower()
        next_path = _safe_next(str(form.get("next") or ""))
        if "@" not in email or len(email) > 254:
            return page(
                request,
                "login.html",
                400,
                next=next_path,
                error="Enter the email address your alerts are sent to.",
            )
        client = request.client.host if request.client else "unknown"
        now = _now()
        window = now - dt.timedelta(minutes=settings.sign_in_window_minutes)
        with state.lock:
            by_email, by_client = store.count_sign_in_requests(state.store, email, client, window)
            limited = (
                by_email >= settings.sign_in_per_email or by_client >= settings.sign_in_per_client
            )
            if not limited:
                store.note_sign_in_request(state.store, email, client, now)
        if limited:
            response = page(
                request,
                "problem.html",
                429,
                title="Too many sign-in links requested",
                message=f"Wait {settings.sign_in_window_minutes} minutes, then ask again. "
                "Links already sent still work until they expire.",
                reason="rate_limited",
            )
            response.headers["Retry-After"] = str(settings.sign_in_window_minutes * 60)
            return response
        try:
            allowed = views.may_sign_in(state.cursor(), email)
        except SnapshotMissing:
            allowed = False
        if allowed:
            with state.lock:
                token = store.create_sign_in_link(
                    state.store, email, settings.sign_in_minutes, next_path, now
                )
            link = settings.public_url.rstrip("/") + f"/login/{token}"
            try:
                _send_sign_in(settings, email, link)
            except DeliveryError as exc:
                log.warning("sign-in email to %s not sent: %s", email, exc)
                return problem(
                    request,
                    503,
                    "The sign-in email could not be sent",
                    "The mail relay did not take it. Try again in a minute.",
                )
        # The same answer whether or not the address may sign in (no address probing).
        return page(request, "login_sent.html", email=email, minutes=settings.sign_in_minutes)

    def login_confirm(request: Request) -> Response:
        token = request.path_params["token"]
        with state.lock:
            status, info = store.peek_sign_in_link(state.store, token)
        if status != "ok":
            return _bad_sign_in(request, status)
        return page(request, "login_confirm.html", email=info["email"])

    async def login_do(request: Request) -> Response:
        await _check_csrf(request)
        with state.lock:
            status, info = store.use_sign_in_link(state.store, request.path_params["token"])
        if status != "ok":
            return _bad_sign_in(request, status)
        request.session.clear()
        request.session.update(
            email=info["email"],
            signed_in_at=_now().isoformat(timespec="seconds"),
            sid=uuid.uuid4().hex,
            csrf=secrets.token_urlsafe(24),
        )
        return RedirectResponse(_safe_next(info.get("next_path")), status_code=303)

    def _bad_sign_in(request: Request, status: str) -> Response:
        messages = {
            "unknown": ("This sign-in link is not valid", "Ask for a new one below."),
            "used": ("This sign-in link has already been used", "Each link works once."),
            "expired": (
                "This sign-in link has expired",
                f"Links work for {settings.sign_in_minutes} minutes.",
            ),
        }
        title, message = messages[status]
        return problem(
            request,
            410 if status != "unknown" else 400,
            title,
            message + " Nothing was changed.",
            reason=f"sign_in_{status}",
            show_login=True,
        )

    async def logout(request: Request) -> Response:
        await _check_csrf(request)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def font(request: Request) -> Response:
        weight = request.path_params["weight"]
        path = state.fonts.get(weight)
        if path is None:
            raise HTTPException(404, "font not installed")
        return FileResponse(
            path, media_type="font/otf", headers={"Cache-Control": "public, max-age=86400"}
        )

    def fonts_css(request: Request) -> Response:
        rules = "".join(
            "@font-face{font-family:Inter;font-style:normal;font-display:swap;"
            f"font-weight:{w};src:url(/fonts/inter-{w}.otf) format('opentype');}}\n"
            for w in sorted(state.fonts)
        )
        note = "" if rules else "/* Inter is not installed here: the font stack falls back. */\n"
        return Response(
            note + rules, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
        )

    def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "snapshot": state.snapshot.available()})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        titles = {403: "Not allowed", 404: "Not found", 400: "Something is missing"}
        return problem(
            request, exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail)
        )

    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        # Signed links sit in URLs: never send them on to another site.
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    routes = [
        Route("/", home),
        Route("/alerts/{alert_id:path}/actions", quick_action, methods=["POST"]),
        Route("/alerts/{alert_id:path}", alert_page),
        Route("/api/new", api_new),
        Route("/status", status_page),
        Route("/a/{token}", action_confirm, methods=["GET"]),
        Route("/a/{token}", action_do, methods=["POST"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_request, methods=["POST"]),
        Route("/login/{token}", login_confirm, methods=["GET"]),
        Route("/login/{token}", login_do, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/fonts/inter-{weight}.otf", font),
        Route("/fonts.css", fonts_css),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(BaseHTTPMiddleware, dispatch=security_headers),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret,
                session_cookie="ea_inbox",
                max_age=settings.session_hours * 3600,
                same_site="lax",
                https_only=settings.secure_cookies,
            ),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.inbox = state
    return app


def _send_sign_in(settings: InboxSettings, email: str, link: str) -> None:
    minutes = settings.sign_in_minutes
    text = (
        f"Sign in to the {settings.product_name} inbox:\n\n{link}\n\n"
        f"The link works once, for {minutes} minutes. If you did not ask for it, ignore this "
        "email: nobody can sign in without it.\n"
    )
    html = (
        f'<p style="font-family:Inter,Segoe UI,Arial,sans-serif;font-size:14px;">'
        f"Sign in to the {settings.product_name} inbox:</p>"
        f'<table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>'
        f'<td bgcolor="{PALETTE["brand"]}" style="padding:8px 14px;">'
        f'<a href="{link}" style="color:#ffffff;font-weight:600;text-decoration:none;'
        f'font-family:Inter,Segoe UI,Arial,sans-serif;">Sign in</a></td></tr></table>'
        f'<p style="font-family:Inter,Segoe UI,Arial,sans-serif;font-size:12px;color:#616e7c;">'
        f"The link works once, for {minutes} minutes. If you did not ask for it, ignore this "
        "email.</p>"
    )
    row = OutboxRow(
        delivery_id=uuid.uuid4().hex,
        idempotency_key=f"sign-in:{uuid.uuid4().hex}",
        channel="email",
        alert_id=None,
        account_id=None,
        recipient=email,
        subject=f"Sign in to {settings.product_name}",
        payload={
            "to": [email],
            "subject": f"Sign in to {settings.product_name}",
            "text": text,
            "html": html,
        },
        attempts=0,
    )
    SmtpSender(settings.smtp)(row)
