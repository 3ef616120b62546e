"""``GET /``: one self-contained page to try questions against ``POST /ask``.

The page is rendered from ``ragguard/apps/templates/page.html.j2`` with the shared Jinja2
environment (:mod:`ragguard.apps.templating`). It loads nothing from elsewhere: its script and
style are inline, allowed by a per-response nonce in a Content-Security-Policy that forbids every
other source and lets the script talk to this server only. The script builds the result with
``textContent`` and ``createElement``, never ``innerHTML``, so every value the server returns is
shown as text.

``GET /`` never needs the API key (the page must load to ask for it), so it carries nothing the
key protects: only whether a key is needed, the ``samples`` limit, the sampling defaults a caller
would get anyway, and the refusal sentences the server itself shows when ragguard abstains.
"""

from __future__ import annotations

import secrets
from typing import Any

from ragguard.apps.templating import render

__all__ = ["PAGE_TEMPLATE", "content_security_policy", "page_context", "page_response", "render_page"]

PAGE_TEMPLATE = "page.html.j2"


def content_security_policy(nonce: str) -> str:
    """The page's policy: its own inline script and style (by ``nonce``), requests to this server only."""
    return "; ".join([
        "default-src 'none'",
        f"script-src 'nonce-{nonce}'",
        f"style-src 'nonce-{nonce}'",
        "connect-src 'self'",
        "img-src data:",  # the empty favicon, so that the browser asks for no /favicon.ico
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


def page_context(state: Any) -> dict[str, Any]:
    """What the page needs to know about the server (a :class:`~ragguard.apps.serve.state.ServerState`).

    Nothing here is protected by the API key: the page is served without it.
    """
    settings = state.settings
    sampling = state.guard.config.sampling
    refusals = settings.refusals
    return {
        "needs_key": settings.api_key is not None,
        "max_samples": settings.max_samples,
        "default_samples": min(sampling.samples, settings.max_samples),
        "default_seed": sampling.seed,
        # The page says why there is no answer in the words a chat reply would use (Refusals.reply).
        "refusals": {"off_topic": refusals.off_topic, "disagree": refusals.disagree, "empty": refusals.empty},
    }


def render_page(context: dict[str, Any], nonce: str) -> str:
    """The page's HTML for ``context`` (:func:`page_context`) with the inline script and style under ``nonce``."""
    return render(PAGE_TEMPLATE, nonce=nonce, page=context)


def page_response(state: Any) -> Any:
    """The HTML response for ``GET /``, with a fresh nonce and its security headers."""
    from fastapi.responses import HTMLResponse

    nonce = secrets.token_urlsafe(18)
    headers = {
        "Content-Security-Policy": content_security_policy(nonce),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        # A nonce is valid for one response only.
        "Cache-Control": "no-store",
    }
    return HTMLResponse(render_page(page_context(state), nonce), headers=headers,
                        media_type="text/html; charset=utf-8")
