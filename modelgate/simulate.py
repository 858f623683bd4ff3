"""``modelgate simulate``: realistic traffic for an API, drawn from its training distribution.

Rows are drawn from the served version's reference profile (``GET /api/models/{id}/versions/{n}/
reference``): numbers from their quantile bins (uniform within a bin), categories and booleans at
their shares. ``--drift F=+2sd`` shifts a number by k standard deviations, at once or ramping over
``--drift-ramp``. Requests leave at ``--rate`` per second whatever the answers' pace (open loop),
with at most ``--max-in-flight`` waiting (the others are counted as skipped, never queued). Each
answered request gets feedback (``POST /api/predict/{id}/feedback``) after ``--feedback-delay``:
the prediction itself, or at ``--feedback-error-rate`` another class / a perturbed value. Bounded
by ``--duration`` and ``--requests``; Ctrl-C stops it and prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import math
import os
import random
import re
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

FEEDBACK_BATCH = 1000
"""Items per feedback request (the route's limit)."""

OTHER = "(other)"
"""``management_api.reference.OTHER``: the label of a profile's rare categories summed."""

ADMIN_PASSWORD_FILE = "admin-password"
"""``management_api.app.ADMIN_PASSWORD_FILE`` (importing that module costs seconds of start)."""


class SimulateError(Exception):
    """Something the person running the simulation has to fix; the message says what."""


# --- parsing ----------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DRIFT = re.compile(r"^\s*([^=]+?)\s*=\s*([+-]?\d+(?:\.\d+)?)\s*(sd|std)?\s*$")


def parse_duration(text: str) -> float:
    """``5m`` → 300, ``30s`` / ``30`` → 30, ``1h`` → 3600, ``500ms`` → 0.5 (seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


@dataclass(frozen=True)
class Drift:
    """Shift ``feature`` by ``k`` standard deviations of its reference."""

    feature: str
    k: float


def parse_drift(text: str) -> Drift:
    """``petal_length=+2sd`` → Drift("petal_length", 2.0); ``x=-1.5sd``, ``x=0.5`` too."""
    match = _DRIFT.match(text)
    if match is None:
        raise ValueError(f"not a drift: {text!r} (e.g. FEATURE=+2sd)")
    return Drift(match.group(1), float(match.group(2)))


# --- sampling ---------------------------------------------------------------------------------


def _share_table(items: list[dict[str, Any]]) -> tuple[list[Any], list[float]]:
    """Items and the running sum of their shares (normalised), for bisecting a uniform draw."""
    shares = [max(0.0, float(item.get("share") or 0.0)) for item in items]
    total = sum(shares)
    if total <= 0:
        shares, total = [1.0] * len(items), float(len(items))
    running, acc = [], 0.0
    for share in shares:
        acc += share / total
        running.append(acc)
    running[-1] = 1.0
    return items, running


@dataclass
class FeatureSampler:
    """Draws one feature's values as its reference profile describes them."""

    name: str
    type: str
    mean: float | None
    std: float | None
    bins: list[tuple[float, float]] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    cumulative: list[float] = field(default_factory=list)
    missing_share: float = 0.0
    """Share of rows that leave it out (a feature missing in training is optional)."""

    @classmethod
    def of(cls, feature: dict[str, Any]) -> FeatureSampler:
        name, kind = str(feature["name"]), str(feature.get("type") or "number")
        mean = feature.get("mean")
        std = feature.get("std")
        sampler = cls(
            name,
            kind,
            None if mean is None else float(mean),
            None if std is None else float(std),
        )
        sampler.missing_share = min(1.0, max(0.0, float(feature.get("missing_share") or 0.0)))
        if kind in ("number", "integer") and feature.get("bins"):
            sampler._set_bins(list(feature["bins"]))
        elif feature.get("categories"):
            # The profile sums rare labels under OTHER: no value a client could send.
            known = [c for c in feature["categories"] if c.get("value") != OTHER]
            items, cumulative = _share_table(known or list(feature["categories"]))
            sampler.values = [sampler._category_value(item["value"]) for item in items]
            sampler.cumulative = cumulative
        elif sampler.mean is not None:
            # No bins: a normal around the mean (or the mean itself).
            sampler.bins = []
        else:
            raise SimulateError(f"the reference profile has no distribution for {name!r}")
        return sampler

    def _category_value(self, value: Any) -> Any:
        if self.type == "boolean":
            return str(value).strip().lower() in ("true", "1", "yes")
        return str(value)

    def _set_bins(self, bins: list[dict[str, Any]]) -> None:
        """Closed bins: an open end (``lo``/``hi`` null) spans ``c`` times its neighbour's width,
        ``c`` chosen so that the draws' std is the profile's (quantile tails are wider than
        their neighbours: a fixed width would draw too narrow a distribution)."""
        items, cumulative = _share_table(bins)
        shares = [b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]
        edges = [(b.get("lo"), b.get("hi")) for b in items]
        widths = [float(hi) - float(lo) for lo, hi in edges if lo is not None and hi is not None]
        fallback = (self.std or 0.0) or min((w for w in widths if w > 0), default=1.0)

        def closed_with(c: float) -> list[tuple[float, float]]:
            out: list[tuple[float, float]] = []
            for index, (lo, hi) in enumerate(edges):
                if lo is None and hi is None:
                    centre = self.mean or 0.0
                    out.append((centre - c * fallback, centre + c * fallback))
                elif lo is None:
                    nxt = edges[index + 1] if index + 1 < len(edges) else (None, None)
                    out.append((float(hi) - c * _width(nxt, fallback), float(hi)))
                elif hi is None:
                    prev = edges[index - 1] if index > 0 else (None, None)
                    out.append((float(lo), float(lo) + c * _width(prev, fallback)))
                else:
                    out.append((float(lo), float(hi)))
            return out

        def std_of(closed: list[tuple[float, float]]) -> float:
            mean = sum(s * (lo + hi) / 2 for s, (lo, hi) in zip(shares, closed, strict=True))
            square = sum(
                s * (lo * lo + lo * hi + hi * hi) / 3
                for s, (lo, hi) in zip(shares, closed, strict=True)
            )
            return math.sqrt(max(0.0, square - mean * mean))

        c = 1.0
        open_ends = any(lo is None or hi is None for lo, hi in edges)
        if open_ends and self.std and std_of(closed_with(0.0)) < self.std:
            low, high = 0.0, 1.0
            while std_of(closed_with(high)) < self.std and high < 1e6:
                high *= 2
            for _ in range(60):
                c = (low + high) / 2
                low, high = (c, high) if std_of(closed_with(c)) < self.std else (low, c)
            c = (low + high) / 2
        self.bins, self.cumulative = closed_with(c), cumulative

    def draw(self, rng: random.Random, shift_sd: float = 0.0) -> Any:
        if self.values:
            return self.values[bisect.bisect_left(self.cumulative, rng.random())]
        if self.bins:
            lo, hi = self.bins[bisect.bisect_left(self.cumulative, rng.random())]
            value = rng.uniform(lo, hi)
        else:
            value = rng.gauss(self.mean or 0.0, self.std or 0.0)
        value += shift_sd * (self.std or 0.0)
        if self.type == "integer":
            # A bin holds (lo, hi]: an integer drawn in it is one of lo+1 .. hi (rounding would
            # move draws to the bin below, where a point mass at an edge already sits).
            return math.ceil(value)
        return round(value, 6)


def _width(edge: tuple[Any, Any], fallback: float) -> float:
    lo, hi = edge
    if lo is not None and hi is not None and float(hi) > float(lo):
        return float(hi) - float(lo)
    return fallback


class Sampler:
    """Rows of an API's inputs drawn from a reference profile, with drifts applied."""

    def __init__(self, profile: dict[str, Any], seed: int | None = None) -> None:
        features = profile.get("features")
        if not isinstance(features, list) or not features:
            raise SimulateError("the reference profile lists no features")
        self.features = [FeatureSampler.of(f) for f in features]
        self.rng = random.Random(seed)
        prediction = profile.get("prediction") or {}
        self.classes = [str(c["value"]) for c in prediction.get("categories") or [] if "value" in c]
        self.prediction_std = float(prediction.get("std") or 0.0)

    def check_drifts(self, drifts: list[Drift]) -> None:
        by_name = {f.name: f for f in self.features}
        for drift in drifts:
            feature = by_name.get(drift.feature)
            if feature is None:
                raise SimulateError(
                    f"--drift names {drift.feature!r}, which is not a feature of this API "
                    f"(features: {', '.join(sorted(by_name))})"
                )
            if feature.values or not feature.std:
                raise SimulateError(
                    f"--drift {drift.feature}: only numbers with a spread can shift by standard "
                    f"deviations ({drift.feature!r} is a {feature.type})"
                )

    def row(self, shifts: dict[str, float] | None = None) -> dict[str, Any]:
        shifts = shifts or {}
        row: dict[str, Any] = {}
        for feature in self.features:
            if feature.missing_share and self.rng.random() < feature.missing_share:
                continue
            row[feature.name] = feature.draw(self.rng, shifts.get(feature.name, 0.0))
        return row

    def truth(self, prediction: Any, error_rate: float) -> Any:
        """The ground truth reported for an answer: itself, or at ``error_rate`` a wrong one."""
        if self.rng.random() >= error_rate:
            return prediction
        if isinstance(prediction, (int, float)) and not isinstance(prediction, bool):
            spread = self.prediction_std or max(1.0, abs(float(prediction)) * 0.2)
            return float(prediction) + self.rng.choice((-1, 1)) * spread
        others = [c for c in self.classes if c != str(prediction)]
        return self.rng.choice(others) if others else prediction


def drift_shifts(drifts: list[Drift], elapsed: float, ramp_s: float) -> dict[str, float]:
    """Each drifted feature's shift now: full at once, or growing linearly over ``ramp_s``."""
    factor = 1.0 if ramp_s <= 0 else min(1.0, max(0.0, elapsed / ramp_s))
    return {d.feature: d.k * factor for d in drifts}


# --- running ----------------------------------------------------------------------------------


@dataclass
class Summary:
    """What a run did: requests by outcome, feedback sent."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failed: int = 0
    """Requests without an HTTP answer (connection refused, timeout)."""
    skipped: int = 0
    """Requests not sent because ``max_in_flight`` were already waiting."""
    feedback_sent: int = 0
    feedback_accepted: int = 0
    feedback_failed: int = 0
    feedback_errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    interrupted: bool = False
    request_ids: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def line(self) -> str:
        statuses = " ".join(f"{code}:{n}" for code, n in sorted(self.statuses.items())) or "-"
        return (
            f"{self.elapsed_s:6.1f}s sent {self.sent} answered {self.answered} ({statuses}) "
            f"failed {self.failed} skipped {self.skipped} feedback {self.feedback_accepted}"
            f"/{self.feedback_sent}"
        )

    def render(self) -> str:
        lines = [
            "modelgate simulate: "
            + ("interrupted" if self.interrupted else "done")
            + f" after {self.elapsed_s:.1f}s",
            f"  requests sent      {self.sent}"
            + (f" ({self.sent / self.elapsed_s:.1f}/s)" if self.elapsed_s > 0 else ""),
            "  answered           "
            + (", ".join(f"{n} x {code}" for code, n in sorted(self.statuses.items())) or "none"),
            f"  no answer          {self.failed}",
        ]
        unanswered = self.sent - self.answered - self.failed
        if unanswered > 0:
            lines.append(f"  stopped waiting    {unanswered}")
        lines += [
            f"  skipped (in flight cap) {self.skipped}",
            f"  feedback sent      {self.feedback_sent} (accepted {self.feedback_accepted}, "
            f"failed {self.feedback_failed})",
        ]
        for error, n in self.feedback_errors.most_common(3):
            lines.append(f"    feedback error: {error} ({n})")
        return "\n".join(lines)


@dataclass
class Target:
    """Where and how to call the API."""

    predict_url: str
    feedback_url: str
    key: str


def target_of(ingress_url: str, api_id: str, key: str) -> Target:
    base = ingress_url.rstrip("/")
    return Target(f"{base}/api/predict/{api_id}", f"{base}/api/predict/{api_id}/feedback", key)


async def run(
    target: Target,
    profile: dict[str, Any],
    *,
    rate: float,
    duration_s: float,
    max_requests: int | None = None,
    drifts: list[Drift] | None = None,
    ramp_s: float = 0.0,
    feedback_error_rate: float | None = 0.0,
    feedback_delay_s: float = 0.0,
    max_in_flight: int = 200,
    progress_every_s: float = 5.0,
    progress: Callable[[str], None] | None = None,
    seed: int | None = None,
    stop: asyncio.Event | None = None,
    keep_request_ids: bool = False,
    session: aiohttp.ClientSession | None = None,
) -> Summary:
    """Send ``rate`` requests per second for ``duration_s`` (or ``max_requests``), drawn from
    ``profile`` with ``drifts``; feedback for every answered request unless
    ``feedback_error_rate`` is None. Returns what was done (also when ``stop`` is set)."""
    if rate <= 0:
        raise SimulateError("--rate must be positive")
    if feedback_error_rate is not None and not 0.0 <= feedback_error_rate <= 1.0:
        raise SimulateError("--feedback-error-rate must be between 0 and 1")
    drifts = drifts or []
    sampler = Sampler(profile, seed)
    sampler.check_drifts(drifts)
    summary = Summary()
    stop = stop or asyncio.Event()
    headers = {"X-API-Key": target.key, "Content-Type": "application/json"}
    pending_feedback: list[tuple[float, dict[str, Any]]] = []
    feedback_ready = asyncio.Event()
    in_flight: set[asyncio.Task[None]] = set()
    own_session = session is None
    http = session or aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=max(10, max_in_flight)),
    )
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(row: dict[str, Any]) -> None:
        try:
            async with http.post(
                target.predict_url, data=orjson.dumps(row), headers=headers
            ) as response:
                body = await response.read()
                summary.statuses[response.status] += 1
                if response.status != 200:
                    return
                answer = orjson.loads(body)
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            summary.failed += 1
            return
        request_id = answer.get("request_id")
        if not isinstance(request_id, str):
            return
        if keep_request_ids:
            summary.request_ids.append(request_id)
        if feedback_error_rate is not None and "prediction" in answer:
            actual = sampler.truth(answer["prediction"], feedback_error_rate)
            due = loop.time() + feedback_delay_s
            pending_feedback.append((due, {"request_id": request_id, "actual": actual}))
            feedback_ready.set()

    async def send_feedback(items: list[dict[str, Any]]) -> None:
        summary.feedback_sent += len(items)
        try:
            async with http.post(
                target.feedback_url, data=orjson.dumps({"items": items}), headers=headers
            ) as response:
                body = await response.read()
                if response.status == 202:
                    summary.feedback_accepted += int(orjson.loads(body).get("accepted", 0))
                    return
                summary.feedback_failed += len(items)
                summary.feedback_errors[f"HTTP {response.status}: {body[:200].decode()}"] += 1
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            summary.feedback_failed += len(items)
            summary.feedback_errors[f"{type(exc).__name__}: {exc}"[:200]] += 1

    async def flush_feedback(everything: bool) -> None:
        now = loop.time()
        due = [item for at, item in pending_feedback if everything or at <= now]
        pending_feedback[:] = [
            (at, it) for at, it in pending_feedback if not (everything or at <= now)
        ]
        for index in range(0, len(due), FEEDBACK_BATCH):
            await send_feedback(due[index : index + FEEDBACK_BATCH])

    flushing: list[asyncio.Future[None]] = []

    async def feedback_loop() -> None:
        while True:
            await feedback_ready.wait()
            feedback_ready.clear()
            await asyncio.sleep(max(0.2, min(1.0, feedback_delay_s)))
            # Shielded: a batch being sent when the run ends is still sent and counted.
            flushing[:] = [asyncio.ensure_future(flush_feedback(everything=False))]
            await asyncio.shield(flushing[0])
            if pending_feedback:
                feedback_ready.set()

    async def progress_loop() -> None:
        while progress is not None:
            await asyncio.sleep(progress_every_s)
            summary.elapsed_s = loop.time() - start
            progress(summary.line())

    feeder = asyncio.create_task(feedback_loop())
    reporter = asyncio.create_task(progress_loop())
    try:
        index = 0
        while not stop.is_set():
            if max_requests is not None and index >= max_requests:
                break
            due = start + index / rate
            if due - start >= duration_s:
                break
            delay = due - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    break
            index += 1
            if len(in_flight) >= max_in_flight:
                summary.skipped += 1
                continue
            row = sampler.row(drift_shifts(drifts, loop.time() - start, ramp_s))
            summary.sent += 1
            task = asyncio.create_task(one(row))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            waiter = asyncio.ensure_future(asyncio.wait(set(in_flight)))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            waiter.cancel()
        if feedback_error_rate is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            if flushing:
                await flushing[0]
            # What is due later is sent now, once: the run's bound covers its feedback too.
            remaining = max(0.0, max((at for at, _ in pending_feedback), default=0.0) - loop.time())
            if remaining and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), remaining)
            await flush_feedback(everything=True)
    finally:
        summary.interrupted = stop.is_set()
        for task in (feeder, reporter, *in_flight):
            task.cancel()
        for task in (feeder, reporter, *in_flight):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if own_session:
            await http.close()
        summary.elapsed_s = loop.time() - start
    return summary


# --- the management API -----------------------------------------------------------------------


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with http.get(url, headers=headers) as response:
        body = await response.json(content_type=None)
        if response.status != 200:
            raise _http_error(url, response.status, body)
        return body


def _http_error(url: str, status: int, body: Any) -> SimulateError:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else str(body)[:200]
    return SimulateError(f"{url} answered {status}: {message}")


async def fetch_api(
    http: aiohttp.ClientSession, management_url: str, username: str, password: str, api_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API (as its owner sees it) and its served version's reference profile."""
    base = management_url.rstrip("/")
    async with http.post(
        f"{base}/api/auth/token", json={"username": username, "password": password}
    ) as response:
        body = await response.json(content_type=None)
        if response.status != 200:
            raise SimulateError(
                f"cannot log in to {base} as {username!r} ({response.status}); give "
                "--username and --password of the API's owner or an admin"
            )
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    try:
        api = await _get(http, f"{base}/api/exports/{api_id}", headers)
    except SimulateError as exc:
        raise SimulateError(f"no API {api_id!r} for {username!r}: {exc}") from None
    url = f"{base}/api/models/{api['model_id']}/versions/{api['version_number']}/reference"
    async with http.get(url, headers=headers) as response:
        profile = await response.json(content_type=None)
        if response.status == 404:
            raise SimulateError(
                f"version {api['version_number']} of model {api['model_name']!r} has no "
                "reference profile (trained before profiles, or uploaded without a reference "
                "CSV); retrain it, or give --profile FILE"
            )
        if response.status != 200:
            raise _http_error(url, response.status, profile)
    return dict(api), dict(profile)


# --- the command ------------------------------------------------------------------------------


def _local_defaults() -> tuple[str, str, str, str | None]:
    """The local stack's ingress and management URLs, admin name and password (its file)."""
    from modelgate.stack import StackSettings

    stack = StackSettings()
    stack.resolve_paths()

    def url(host: str, port: int) -> str:
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"

    password = os.environ.get("MODELGATE_MANAGEMENT_ADMIN_PASSWORD")
    if not password and stack.management_data_dir is not None:
        with contextlib.suppress(OSError):
            password = (stack.management_data_dir / ADMIN_PASSWORD_FILE).read_text().strip()
    return (
        url(stack.ingress_host, stack.ingress_port),
        url(stack.management_host, stack.management_port),
        os.environ.get("MODELGATE_MANAGEMENT_ADMIN_USERNAME", "admin"),
        password or None,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelgate simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--api", required=True, help="the API's id")
    parser.add_argument("--key", help="the API's key (or MODELGATE_API_KEY)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--duration", default="1m", help="how long (30s, 5m, 1h)")
    parser.add_argument("--requests", type=int, help="stop after this many requests")
    parser.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="FEATURE=+2sd",
        help="shift a numeric feature by k standard deviations (repeatable)",
    )
    parser.add_argument("--drift-ramp", default="0s", help="reach the full drift over this time")
    parser.add_argument(
        "--feedback-error-rate",
        type=float,
        default=0.0,
        help="share of feedback that contradicts the prediction (0..1)",
    )
    parser.add_argument("--feedback-delay", default="0s", help="send feedback this late")
    parser.add_argument("--no-feedback", action="store_true", help="send no feedback")
    parser.add_argument("--max-in-flight", type=int, default=200)
    parser.add_argument("--seed", type=int, help="random seed (same rows on each run)")
    parser.add_argument("--ingress", help="ingress URL (default: the local stack's)")
    parser.add_argument("--management", help="management API URL (default: the local stack's)")
    parser.add_argument("--username", help="management user (default: the first admin)")
    parser.add_argument("--password", help="its password (default: the admin-password file)")
    parser.add_argument("--profile", type=Path, help="a reference profile JSON file to use instead")
    return parser


async def _main(args: argparse.Namespace) -> Summary:
    ingress, management, username, password = _local_defaults()
    ingress = args.ingress or ingress
    management = args.management or management
    username = args.username or username
    password = args.password or password
    key = args.key or os.environ.get("MODELGATE_API_KEY")
    if not key:
        raise SimulateError("give the API's key: --key KEY (or MODELGATE_API_KEY)")
    drifts = [parse_drift(d) for d in args.drift]
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        if args.profile is not None:
            try:
                profile = orjson.loads(args.profile.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise SimulateError(f"cannot read the profile {args.profile}: {exc}") from None
        else:
            if not password:
                raise SimulateError(
                    "no management password: give --username and --password (the local "
                    "stack's first-admin password file was not found)"
                )
            try:
                _, profile = await fetch_api(http, management, username, password, args.api)
            except aiohttp.ClientError as exc:
                raise SimulateError(
                    f"the management API at {management} is not answering ({exc}); start the "
                    "stack (`modelgate up`) or give --management URL"
                ) from None
        target = target_of(ingress, args.api, key)
        try:
            async with http.get(ingress.rstrip("/") + "/health") as response:
                await response.read()
        except aiohttp.ClientError as exc:
            raise SimulateError(
                f"ingress at {ingress} is not answering ({exc}); start the stack or give "
                "--ingress URL"
            ) from None
        sys.stderr.write(
            f"simulating {args.rate:g} req/s for {args.duration} on {target.predict_url}"
            + (f", drift {', '.join(args.drift)}" if drifts else "")
            + "\n"
        )
        # From here Ctrl-C (or SIGTERM) ends the run cleanly with its summary.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        return await run(
            target,
            profile,
            rate=args.rate,
            duration_s=parse_duration(args.duration),
            max_requests=args.requests,
            drifts=drifts,
            ramp_s=parse_duration(args.drift_ramp),
            feedback_error_rate=None if args.no_feedback else args.feedback_error_rate,
            feedback_delay_s=parse_duration(args.feedback_delay),
            max_in_flight=max(1, args.max_in_flight),
            progress=say,
            seed=args.seed,
            stop=stop,
        )


def say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for text in (args.duration, args.drift_ramp, args.feedback_delay):
            parse_duration(text)
        for text in args.drift:
            parse_drift(text)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        summary = asyncio.run(_main(args))
    except SimulateError as exc:
        sys.stderr.write(f"modelgate simulate: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("modelgate simulate: interrupted before any request was sent\n")
        return 130
    sys.stdout.write(summary.render() + "\n")
    if summary.answered and 200 not in summary.statuses:
        codes = ", ".join(str(code) for code in sorted(summary.statuses))
        sys.stderr.write(
            f"modelgate simulate: no request was answered 200 ({codes}): is the key right "
            "(401/403), the API active (403), its rate limit high enough (429)?\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
