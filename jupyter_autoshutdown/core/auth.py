"""How every client of ours authenticates to a Jupyter server, with or without a token.

With a token: the `Authorization: token ...` header. Without one (SageMaker Studio Classic runs its
server token-less behind Studio's proxy), jupyter_server still requires an XSRF token on every
write: a client may send its *own* random value as both the `_xsrf` cookie and the `X-XSRFToken`
header (tornado only checks that they match). Both are always sent; a scraped cookie never is.
"""

from __future__ import annotations

import secrets


def request_headers(token: str = "") -> dict[str, str]:
    """Headers for one request: the token when there is one, and a fresh matching XSRF pair."""
    xsrf = secrets.token_hex(16)
    headers = {"Cookie": f"_xsrf={xsrf}", "X-XSRFToken": xsrf}
    if token:
        headers["Authorization"] = f"token {token}"
    return headers
