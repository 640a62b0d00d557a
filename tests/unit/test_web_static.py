"""The vendored htmx is exactly the recorded release, and the page's SRI matches it."""

from __future__ import annotations

import base64
import hashlib
import re

from herald.web.render import STATIC_DIR, TEMPLATES_DIR, build_templates


def _recorded_checksums() -> dict[str, str]:
    lines = (STATIC_DIR / "CHECKSUMS").read_text().splitlines()
    rows = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {row[1]: row[0] for row in rows}


def test_htmx_matches_its_recorded_sha256() -> None:
    recorded = _recorded_checksums()
    data = (STATIC_DIR / "htmx.min.js").read_bytes()
    assert recorded["htmx.min.js"] == hashlib.sha256(data).hexdigest()
    assert b'version:"2.0.11"' in data


def test_base_template_sri_matches_the_file() -> None:
    data = (STATIC_DIR / "htmx.min.js").read_bytes()
    sri = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
    base = (TEMPLATES_DIR / "base.html").read_text()
    assert re.search(r'src="/static/htmx\.min\.js" integrity="([^"]+)"', base).group(1) == sri  # type: ignore[union-attr]


def test_templates_autoescape() -> None:
    env = build_templates().env
    rendered = env.from_string("{{ value }}").render(value='<script>alert("x")</script>')
    assert rendered == "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
