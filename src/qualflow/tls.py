"""One verified TLS context per process, shared by every HTTP client qualflow makes.

Building a context loads the whole CA bundle (~13 ms of CPU here); httpx does it for each client
it creates unless it is handed one. Clients made per request (a REST call listing surveys, an
``http.request`` step) would otherwise pay that on every use. The context is built the way
httpx builds its default one (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else certifi), once, when
first needed; an ``ssl.SSLContext`` may be shared by any number of clients and threads.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def verified_context() -> ssl.SSLContext:
    """The process's TLS context for verified HTTPS (pass it as httpx's ``verify``)."""
    return httpx.create_ssl_context()
