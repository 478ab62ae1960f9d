"""The demo runs on the embedded default it announces, whatever a shell exported for a real hub:
its database is the data dir's SQLite, and its plain-http sign-in works."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from qualflow.demo.hub import DemoHub


def test_the_demo_keeps_to_its_data_dir_and_http_sign_in_under_a_real_hubs_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "real-hub.db"
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", f"sqlite:///{elsewhere}")
    monkeypatch.setenv("QUALFLOW_AUTO_MIGRATE", "false")
    monkeypatch.setenv("QUALFLOW_SESSION_COOKIE_SECURE", "true")
    data_dir = tmp_path / "demo"

    with DemoHub(data_dir=data_dir, port=0, respondent_interval=0, examples=False) as hub:
        assert (data_dir / "qualflow.db").exists()
        assert not elsewhere.exists()
        with httpx.Client(base_url=hub.url, timeout=10) as browser:
            browser.get("/sign-in")
            signed_in = browser.post(
                "/sign-in",
                data={
                    "email": hub.admin_email,
                    "password": hub.admin_password,
                    "csrf_token": browser.cookies["qualflow_csrf"],
                },
                headers={"Origin": hub.url},
            )
            assert signed_in.status_code == 303, signed_in.text
            # A Secure cookie is never sent back over the demo's http URL.
            assert "secure" not in signed_in.headers["set-cookie"].lower()
            assert browser.get("/runs").status_code == 200
