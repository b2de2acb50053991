"""Open the dashboard in a browser once it answers, from a small helper process.

`memp dashboard` runs Streamlit always headless (Streamlit's own browser opening comes with a
first-run e-mail prompt that blocks, or exits 255 without a terminal) and starts this helper
just before it turns into the Streamlit process. The helper waits for Streamlit's health
endpoint, opens the URL with :mod:`webbrowser`, and gives up quietly when the server stops
or does not answer within a minute; it never outlives its parent by more than a second.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
import webbrowser

WAIT_S = 60.0


def display_available() -> bool:
    """Whether a browser window could appear (Linux without DISPLAY: a server, a container)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def wait_then_open(url: str, parent: int, wait_s: float = WAIT_S) -> bool:
    """Open ``url`` when ``{url}/_stcore/health`` answers; False if the server never did."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and os.getppid() == parent:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                return webbrowser.open(url)
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return False


if __name__ == "__main__":  # python -m memp_core.opener URL
    wait_then_open(sys.argv[1], parent=os.getppid())
