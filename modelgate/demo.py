"""``modelgate demo``: a working prediction API in one command, and how to call it.

Talks to the running management API over HTTP for everything it can (train, export, rotate the
key, read the docs) and to the metadata DB only for what HTTP cannot do: creating the first admin
if none exists and setting the demo account's password. Run again, it reuses the demo model, API,
key and password, so browsers logged in as the demo stay logged in; ``--reset`` makes a new key and
password. The product stores both only as hashes, so their plaintext is kept for the demo in 0600
files of the data dir (``demo-password``, ``demo-api-key``), as is a generated first-admin
password (``admin-password``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from infra.private_files import create_private_file
from management_api.accounts import Accounts, same_username
from management_api.app import ADMIN_PASSWORD_FILE, save_admin_password
from management_api.db import User, create_engine, migrate, session_factory
from management_api.security import TokenIssuer, generate_password
from management_api.settings import ManagementSettings
from modelgate.stack import StackSettings
from schemas.resources import Role

DEMO_USERNAME = "demo"
DEMO_MODEL = "demo-iris"
DEMO_PASSWORD_FILE = "demo-password"
DEMO_KEY_FILE = "demo-api-key"


def read_secret(path: Path) -> str | None:
    """A secret kept in a file of the data dir, or None if there is none."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def write_secret(path: Path, value: str) -> None:
    """Keep a secret in a 0600 file (created with that mode), replacing an older one."""
    path.unlink(missing_ok=True)
    create_private_file(path, f"{value}\n".encode())


class DemoError(Exception):
    """Something the person running the demo has to fix; the message says what."""


@dataclass
class DemoResult:
    dashboard_url: str
    username: str
    password: str
    api_id: str
    api_url: str
    api_key: str
    example_request: dict[str, Any]
    verified: bool

    def curl(self) -> str:
        return (
            f"curl -sS -X POST {shlex.quote(self.api_url)} -H 'Content-Type: application/json' "
            f"-H {shlex.quote('X-API-Key: ' + self.api_key)} "
            f"-d {shlex.quote(json.dumps(self.example_request))}"
        )


def management_url(settings: ManagementSettings) -> str:
    host = settings.management_host
    if host in {"0.0.0.0", "::", ""}:
        host = "127.0.0.1"
    return f"http://{host}:{settings.management_port}"


async def prepare_demo_account(
    settings: ManagementSettings, username: str, reset: bool
) -> tuple[str, bool]:
    """The demo account's password (kept in the data dir; new with ``reset`` or if none) and
    whether it changed. Also creates the first admin if there is none (password in a file)."""
    data_dir = settings.management_data_dir
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        # The demo never issues tokens here (it logs in over HTTP); the issuer is a formality.
        accounts = Accounts(sessions, TokenIssuer(secrets.token_urlsafe(32), 60))
        try:
            admin_password = await accounts.ensure_admin(
                settings.management_admin_username, settings.management_admin_password
            )
            if admin_password is not None:
                save_admin_password(data_dir, settings.management_admin_username, admin_password)
            path = data_dir / DEMO_PASSWORD_FILE
            kept = None if reset else read_secret(path)
            if kept is not None:
                async with sessions() as session:
                    user = await session.scalar(select(User).where(same_username(username)))
                if user is not None and await accounts.hashing.verify(user.password_hash, kept):
                    return kept, False
            password = kept or generate_password()
            await accounts.set_password(username, password, Role.ADMIN)
            if password != kept:
                write_secret(path, password)
            return password, True
        finally:
            accounts.close()
    finally:
        await engine.dispose()


class ManagementClient:
    """The few management API calls the demo makes."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers: dict[str, str] = {}

    async def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        async with self._session.request(
            method, self._base + path, headers=self._headers, **kwargs
        ) as response:
            body = await response.json(content_type=None) if response.status != 204 else None
            if response.status != expect:
                raise DemoError(f"{method} {path} answered {response.status}: {body}")
            return body

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                async with self._session.get(self._base + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError as exc:
                last = exc
            await asyncio.sleep(0.5)
        raise DemoError(
            f"the management API at {self._base} is not answering ({last}); "
            "start the stack with `make run` or `modelgate up`"
        )

    async def login(self, username: str, password: str) -> None:
        token = await self.call(
            "POST", "/api/auth/token", json={"username": username, "password": password}
        )
        self._headers = {"Authorization": f"Bearer {token['access_token']}"}

    async def demo_model(self, name: str, timeout: float) -> dict[str, Any]:
        me = await self.call("GET", "/api/users/me")
        models = await self.call("GET", "/api/models")
        for model in models["items"]:
            # The demo account is an admin and sees every model: pick its own.
            if model["name"] == name and model["owner_id"] == me["id"] and model["latest_version"]:
                return dict(model)
        job = await self.call(
            "POST",
            "/api/models/train",
            expect=202,
            json={"name": name, "dataset": "iris", "algorithm": "logistic_regression"},
        )
        deadline = time.monotonic() + timeout
        while job["status"] not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise DemoError(f"training {name!r} did not finish in {timeout:.0f}s")
            await asyncio.sleep(0.2)
            job = await self.call("GET", f"/api/training-jobs/{job['id']}")
        if job["status"] == "failed":
            raise DemoError(f"training {name!r} failed: {job['error']}")
        return dict(await self.call("GET", f"/api/models/{job['model_id']}"))

    async def demo_api(
        self, model: dict[str, Any], name: str, rate_limit: int | None, kept_key: str | None
    ) -> tuple[dict[str, Any], str]:
        """The demo API (created once, then reused) and its key: ``kept_key`` if it is still the
        API's, else a new one."""
        listing = await self.call("GET", "/api/exports", params={"model_id": model["id"]})
        existing = [api for api in listing["items"] if api["name"] == name]
        if not existing:
            body: dict[str, Any] = {"name": name}
            if rate_limit is not None:
                body["rate_limit_per_minute"] = rate_limit
            created = await self.call("POST", f"/api/export/{model['id']}", expect=201, json=body)
            return created["api"], created["api_key"]
        api = existing[0]
        if rate_limit is not None and api["rate_limit_per_minute"] != rate_limit:
            await self.call(
                "PATCH", f"/api/exports/{api['id']}", json={"rate_limit_per_minute": rate_limit}
            )
        if api["status"] != "active":
            await self.call("PUT", f"/api/exports/{api['id']}/status", json={"status": "active"})
        if kept_key is not None and kept_key.startswith(api["key_prefix"]):
            return dict(api), kept_key
        return await self.rotate_key(api)

    async def rotate_key(self, api: dict[str, Any]) -> tuple[dict[str, Any], str]:
        rotated = await self.call("POST", f"/api/exports/{api['id']}/regenerate-key")
        return rotated["api"], rotated["api_key"]


async def key_works(url: str, key: str, body: dict[str, Any], timeout: float) -> bool:
    """Call the API through ingress until the new key is accepted (ingress follows ApiChanged)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(url, json=body, headers={"X-API-Key": key}) as response:
                    # 429 still means the key was accepted (the demo's limit may be tiny).
                    if response.status in (200, 429):
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    return False


async def run_demo(
    settings: ManagementSettings, rate_limit: int | None, wait_s: float, verify: bool, reset: bool
) -> DemoResult:
    base = management_url(settings)
    password, _ = await prepare_demo_account(settings, DEMO_USERNAME, reset)
    key_file = settings.management_data_dir / DEMO_KEY_FILE
    kept_key = None if reset else read_secret(key_file)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = ManagementClient(session, base)
        await client.wait_ready(wait_s)
        await client.login(DEMO_USERNAME, password)
        model = await client.demo_model(DEMO_MODEL, timeout=120)
        api, key = await client.demo_api(model, DEMO_MODEL, rate_limit, kept_key)
        docs = await client.call("GET", f"/api/exports/{api['id']}/docs")
        example = dict(docs["example_request"])
        verified = (
            await key_works(api["endpoint_url"], key, example, timeout=15) if verify else False
        )
        if verify and not verified and key == kept_key:
            # The kept key is not accepted (e.g. its API was recreated): a new one.
            api, key = await client.rotate_key(api)
            verified = await key_works(api["endpoint_url"], key, example, timeout=15)
    if key != kept_key:
        write_secret(key_file, key)
    result = DemoResult(
        dashboard_url=base + "/",
        username=DEMO_USERNAME,
        password=password,
        api_id=api["id"],
        api_url=api["endpoint_url"],
        api_key=key,
        example_request=example,
        verified=verified,
    )
    return result


def render(result: DemoResult, data_dir: Path) -> str:
    lines = ["", "modelgate demo is ready."]
    admin_file = data_dir / ADMIN_PASSWORD_FILE
    if admin_file.exists():
        lines += [f"  first admin   password in {admin_file} (0600)"]
    lines += [
        f"  dashboard     {result.dashboard_url}",
        f"  username      {result.username}",
        f"  password      {result.password}",
        f"  API URL       {result.api_url}",
        f"  API key       {result.api_key}",
        f"  (kept across runs, in {data_dir / DEMO_PASSWORD_FILE} and {data_dir / DEMO_KEY_FILE},"
        " 0600; `modelgate demo --reset` makes new ones)",
        "",
        "Try it:",
        f"  {result.curl()}",
        "",
    ]
    if not result.verified:
        lines.insert(2, "  warning: ingress did not accept the key yet; is ingress running?")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelgate demo", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--rate-limit", type=int, metavar="N", help="requests per minute of the demo API"
    )
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the management API"
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="do not call the API through ingress"
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="new demo password and API key (logs the demo out of every browser)",
    )
    args = parser.parse_args(argv)
    if args.rate_limit is not None and args.rate_limit < 1:
        parser.error("--rate-limit must be at least 1")
    settings = ManagementSettings()
    # The same paths as `modelgate up` on this data dir (its SQLite DB, its secrets), unless set.
    stack = StackSettings()
    stack.resolve_paths()
    settings.database_url = stack.database_url
    assert stack.management_data_dir is not None
    settings.management_data_dir = stack.management_data_dir
    try:
        result = asyncio.run(
            run_demo(settings, args.rate_limit, args.wait, not args.no_verify, args.reset)
        )
    except DemoError as exc:
        sys.stderr.write(f"modelgate demo: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"modelgate demo: cannot reach the metadata DB or the API: {exc}\n")
        return 1
    if args.json:
        payload = {
            "dashboard_url": result.dashboard_url,
            "username": result.username,
            "password": result.password,
            "api_id": result.api_id,
            "api_url": result.api_url,
            "api_key": result.api_key,
            "example_request": result.example_request,
            "curl": result.curl(),
            "verified": result.verified,
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        sys.stdout.write(render(result, settings.management_data_dir) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
