"""The control API and the dashboard, one FastAPI app over the supervisor.

    GET  /healthz                        no token: is the server up
    GET  /                               the dashboard (a page with no data of its own)
    GET  /api/v1/bots                    every bot's report (as `botwarden status`)
    POST /api/v1/bots                    {"config": PATH}: make a bot known, not started
    GET  /api/v1/bots/{id}               report, config (keys masked), state summary
    GET  /api/v1/bots/{id}/positions | orders | fills | trades | pnl | events
    GET  /api/v1/bots/{id}/market        each symbol's bars, price, position and trades
                                         as the bot's last pass saw them; the balance
    POST /api/v1/bots/{id}/start | stop | restart | resolve
    POST /api/v1/keys                    {"name", "api_key", "secret_key"}: a venue key,
                                         kept encrypted; shown only by name and last 4
    GET  /api/v1/keys · DELETE /api/v1/keys/{name}
    GET  /api/v1/backtests               the backtests written with --out, with summaries
    GET  /api/v1/backtests/{id}/report   one's report.html
    GET  /api/v1/events/stream           server-sent events: status changes, fills,
                                         stops placed, alerts, every event of the bots
    GET  /metrics                        Prometheus text format
    GET  /openapi.json                   the API described

Everything but `/healthz` and the dashboard's files asks for `Authorization: Bearer
TOKEN`, decided from the headers before a byte of the body is read, and a body is
read up to a cap (gate.py); the bodies' fields have limits of their own (bodies.py).
Errors are JSON `{"error": ...}` with a 4xx status; an operator's mistake is
never a 500, and no response carries a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path as FilePath
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from botwarden.api.bodies import NewBot, NewKey
from botwarden.api.gate import Gate
from botwarden.api.watch import Watcher, metrics_text
from botwarden.backtest.listing import RUN_ID, UnknownBacktest, kept_report, kept_runs
from botwarden.errors import BotwardenError, ConfigError, StateError
from botwarden.keystore import KeyExists, KeyStore, KeyStoreError, UnknownKey
from botwarden.process.clock import bot_time
from botwarden.process.home import UnknownBot
from botwarden.process.lock import AlreadyRunning
from botwarden.process.market import read_market
from botwarden.process.supervisor import (
    BotReport,
    DrivenByCode,
    NothingToResolve,
    StartFailed,
    Supervisor,
)
from botwarden.state.factory import StoredBot, open_store
from botwarden.state.history import History
from botwarden.state.memory import MemoryStore
from botwarden.state.records import document
from botwarden.views import (
    config_as_json,
    market_as_json,
    pnl_periods,
    since_time,
)

log = logging.getLogger(__name__)

STATIC = FilePath(__file__).parent / "static"
CHART_TRADES = 500
"""The newest closed trades drawn on a bot's price charts."""
T = TypeVar("T")

BotIdParam = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The bot's id.")
]
KeyNameParam = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The key's name.")
]
RunIdParam = Annotated[str, Path(pattern=RUN_ID.pattern, description="The backtest's id.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest.")]

STATUS_OF_ERROR: dict[type[BotwardenError], int] = {  # the first that matches
    UnknownBot: 404,
    UnknownBacktest: 404,
    UnknownKey: 404,
    KeyExists: 409,
    KeyStoreError: 503,  # no master key, or not one: the server's setting
    AlreadyRunning: 409,
    NothingToResolve: 409,
    DrivenByCode: 409,
    ConfigError: 422,
    StartFailed: 422,
    StateError: 503,
}


def create_app(supervisor: Supervisor, token: str, watch_interval: float = 1.0) -> FastAPI:
    watcher = Watcher(supervisor, watch_interval)
    keys = KeyStore(supervisor.root)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(watcher.run())
        try:
            yield
        finally:
            watcher.close()
            task.cancel()

    app = FastAPI(
        title="botwarden",
        summary="Watch and control crash-safe trading bots.",
        lifespan=lifespan,
        openapi_url=None,  # served below, behind the token
        docs_url=None,  # the interactive pages load their scripts from a CDN
        redoc_url=None,
    )

    app.add_middleware(Gate, token=token)
    api = APIRouter(prefix="/api/v1")

    async def off_loop(work: Callable[[], T]) -> T:
        """Supervisor calls block (processes, files, stores): never on the event loop."""
        return await asyncio.to_thread(work)

    async def look(bot_id: str) -> tuple[BotReport, StoredBot]:
        report, stored = await off_loop(lambda: asyncio.run(supervisor.look(bot_id)))
        if stored is None:
            raise StateError(f"bot {bot_id}: its state cannot be read now: {report.problem}")
        return report, stored

    async def history(bot_id: str, read: Callable[[History], Awaitable[T]]) -> T:
        """What `read` finds in the bot's history, its store opened read-only."""
        config = await off_loop(lambda: supervisor.config(bot_id))

        async def reading() -> T:
            store = open_store(config.state, config.bot_id, config.base_dir, readonly=True)
            path = getattr(store, "path", None)
            if path is not None and not path.exists():  # no state yet: no history either
                return await read(History(MemoryStore(), config.bot_id))
            await store.open()
            try:
                return await read(History(store, config.bot_id))
            finally:
                await store.close()

        return await off_loop(lambda: asyncio.run(reading()))

    # -- bots ---------------------------------------------------------------------------
    @api.get("/bots")
    async def bots() -> list[dict[str, Any]]:
        reports = await off_loop(lambda: asyncio.run(supervisor.reports()))
        return [r.as_json() for r in reports]

    @api.post("/bots", status_code=201)
    async def add_bot(body: NewBot) -> dict[str, Any]:
        bot_id = await off_loop(lambda: supervisor.register(FilePath(body.config)))
        report = await off_loop(lambda: asyncio.run(supervisor.report(bot_id)))
        watcher.poke()
        return report.as_json()

    @api.get("/bots/{bot_id}")
    async def bot(bot_id: BotIdParam) -> dict[str, Any]:
        report, stored = await off_loop(lambda: asyncio.run(supervisor.look(bot_id)))
        config = await off_loop(lambda: supervisor.config(bot_id))
        shown: dict[str, Any] = {"report": report.as_json(), "config": config_as_json(config)}
        if stored is not None:
            state = stored.state
            shown["state"] = {
                "bot": document(state.bot),
                "risk": document(state.risk),
                "positions": len(state.positions),
                "open_orders": len(state.intents),
                "fills": await history(bot_id, lambda h: h.store.count(h.flow_id, "fills")),
                "cooldowns": {s: u.isoformat() for s, u in state.cooldowns.items()},
            }
        return shown

    @api.get("/bots/{bot_id}/positions")
    async def positions(bot_id: BotIdParam) -> list[dict[str, Any]]:
        report, stored = await look(bot_id)
        live = {p.symbol: p.stop_live for p in report.positions}
        return [
            {**document(p), "stop_live": live.get(p.symbol)}
            for p in stored.state.positions.values()
        ]

    @api.get("/bots/{bot_id}/orders")
    async def orders(
        bot_id: BotIdParam,
        limit: Limit = 100,
        pending: Annotated[bool, Query(description="Only those not final yet.")] = False,
    ) -> list[dict[str, Any]]:
        _, stored = await look(bot_id)
        intents = list(stored.state.intents.values())
        if not pending:
            intents += await history(bot_id, lambda h: h.orders())
        intents.sort(key=lambda i: i.created_at)
        return [document(i) for i in intents[-limit:]]

    @api.get("/bots/{bot_id}/fills")
    async def fills(bot_id: BotIdParam, limit: Limit = 100) -> list[dict[str, Any]]:
        fills = await history(bot_id, lambda h: h.recent_fills(limit))
        return [document(f) for f in fills]

    @api.get("/bots/{bot_id}/trades")
    async def trades(
        bot_id: BotIdParam,
        limit: Limit = 100,
        since: Annotated[
            str | None,
            Query(
                description="Only trades closed from then on: a UTC date or time, or a"
                " length of time ago by the bot's clock (7d, 24h)."
            ),
        ] = None,
    ) -> list[dict[str, Any]]:
        """The newest closed trades (from `since`), oldest first."""
        start = None
        if since is not None:
            _, stored = await look(bot_id)
            config = await off_loop(lambda: supervisor.config(bot_id))
            when = await off_loop(lambda: bot_time(config, stored.state, datetime.now(UTC)))
            start = since_time(since, when.now, "since")
        newest = await history(
            bot_id, lambda h: h.trades(since=start, limit=limit, newest_first=True)
        )
        return [document(t) for t in reversed(newest)]

    @api.get("/bots/{bot_id}/pnl")
    async def pnl(bot_id: BotIdParam) -> dict[str, Any]:
        """PnL per trading day, and today, the last 7 and 30 days and all time."""
        _, stored = await look(bot_id)
        config = await off_loop(lambda: supervisor.config(bot_id))
        days = await history(bot_id, lambda h: h.days())
        when = await off_loop(lambda: bot_time(config, stored.state, datetime.now(UTC)))
        today = when.today
        book = stored.state.pnl
        return {
            "bot_id": bot_id,
            "trading_day": today.isoformat(),
            "periods": {key: document(s) for key, s in pnl_periods(book, days, today).items()},
            "days": [{"day": day.isoformat(), **document(s)} for day, s in days.items()],
        }

    @api.get("/bots/{bot_id}/market")
    async def market(bot_id: BotIdParam) -> dict[str, Any]:
        """Each symbol's recent bars and last price as the bot's last pass saw them,
        its position there (stop, take-profit, unrealized PnL) and the trades closed on
        those bars; the account's balance and equity. `seen_at` is null (and the bars
        empty) before the bot's first pass."""
        report, stored = await look(bot_id)
        config = await off_loop(lambda: supervisor.config(bot_id))
        seen = await off_loop(lambda: read_market(supervisor.files(bot_id).market))
        first = [t for s in (seen or {}).get("symbols", {}).values() for t in s["bars"]["time"][:1]]
        since = min(datetime.fromisoformat(t) for t in first) if first else None

        async def closed(h: History) -> tuple[list[Any], dict[str, Any]]:
            trades = await h.trades(since=since, limit=CHART_TRADES, newest_first=True)
            orders = await h.orders_by_id([t.closed_by for t in trades])
            return trades[::-1], {cid: o.purpose for cid, o in orders.items()}

        trades, purposes = await history(bot_id, closed)
        live = {p.symbol: p.stop_live for p in report.positions}
        return market_as_json(config, stored.state, seen, live, trades, purposes)

    @api.get("/bots/{bot_id}/events")
    async def events(
        bot_id: BotIdParam,
        limit: Limit = 100,
        after: Annotated[int, Query(ge=-1, description="Only events after this seq.")] = -1,
    ) -> list[dict[str, Any]]:
        if after >= 0:  # the next ones, for a client paging forward
            newer = await history(bot_id, lambda h: h.events(after=after, limit=limit))
            return [document(e) for e in newer]
        newest = await history(bot_id, lambda h: h.events(limit=limit, newest_first=True))
        return [document(e) for e in reversed(newest)]

    # -- control ------------------------------------------------------------------------
    @api.post("/bots/{bot_id}/start")
    async def start(bot_id: BotIdParam) -> dict[str, Any]:
        # (the server never imports a user's strategy: a broken one is the bot's last
        # words, in the answer)
        launch = await off_loop(lambda: supervisor.start_known(bot_id))
        watcher.poke()
        return {"bot_id": bot_id, "pid": launch.pid, "started": launch.confirmed}

    @api.post("/bots/{bot_id}/stop")
    async def stop(
        bot_id: BotIdParam,
        grace: Annotated[
            float,
            Query(alias="timeout", ge=0, le=600, description="Seconds from SIGTERM to SIGKILL."),
        ] = 30,
    ) -> dict[str, Any]:
        done = await off_loop(lambda: supervisor.stop(bot_id, grace))
        watcher.poke()
        return {**asdict(done), "was_running": done.pid is not None}

    @api.post("/bots/{bot_id}/restart")
    async def restart(bot_id: BotIdParam) -> dict[str, Any]:
        launch = await off_loop(lambda: supervisor.restart(bot_id, check_strategy=False))
        watcher.poke()
        return {"bot_id": bot_id, "pid": launch.pid, "started": launch.confirmed}

    @api.post("/bots/{bot_id}/resolve")
    async def resolve(bot_id: BotIdParam) -> dict[str, Any]:
        done = await off_loop(lambda: supervisor.resolve(bot_id))
        watcher.poke()
        return asdict(done)

    # -- backtests ----------------------------------------------------------------------
    @api.get("/backtests")
    async def backtests() -> list[dict[str, Any]]:
        """Every backtest written with `--out` from this home, newest first, with its
        summary (while its folder holds it)."""
        return [run.as_json() for run in await off_loop(lambda: kept_runs(supervisor.root))]

    @api.get("/backtests/{run_id}/report", response_class=HTMLResponse)
    async def backtest_report(run_id: RunIdParam) -> HTMLResponse:
        """The run's report.html (its script is plotly's, at /static/plotly.min.js)."""
        path = await off_loop(lambda: kept_report(run_id, supervisor.root))
        return HTMLResponse(await off_loop(lambda: path.read_text(encoding="utf-8")))

    # -- stored venue keys ----------------------------------------------------------------
    @api.post("/keys", status_code=201)
    async def add_key(body: NewKey) -> dict[str, str]:
        secret = body.secret_key.get_secret_value()
        stored = await off_loop(
            lambda: keys.put(body.name, body.api_key.get_secret_value(), secret)
        )
        return asdict(stored)

    @api.get("/keys")
    async def list_keys() -> list[dict[str, str]]:
        return [asdict(k) for k in await off_loop(keys.list)]

    @api.delete("/keys/{name}", status_code=204)
    async def delete_key(name: KeyNameParam) -> None:
        await off_loop(lambda: keys.delete(name))

    # -- live ---------------------------------------------------------------------------
    @api.get("/events/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def messages() -> AsyncIterator[str]:
            queue = watcher.subscribe()
            try:
                yield ": botwarden events\n\n"
                while not await request.is_disconnected():
                    try:
                        kind, data = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": still here\n\n"  # keeps proxies from closing the stream
                        continue
                    yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
            finally:
                watcher.unsubscribe(queue)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)

    app.include_router(api)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        reports = await off_loop(lambda: asyncio.run(supervisor.reports()))
        return metrics_text(reports)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        # plotly's own script, from the installed package: the dashboard needs no CDN.
        # Asked again each load, answered "not modified" while the package is the same.
        spec = find_spec("plotly")  # (without it, the page says its charts cannot load)
        if spec is None or spec.origin is None:
            raise HTTPException(404, "plotly is not installed: pip install plotly")
        script = FilePath(spec.origin).parent / "package_data" / "plotly.min.js"
        return FileResponse(script, headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _error_handlers(app)
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BotwardenError)
    async def operator_error(request: Request, error: BotwardenError) -> JSONResponse:
        status = next((s for kind, s in STATUS_OF_ERROR.items() if isinstance(error, kind)), 400)
        return JSONResponse({"error": str(error)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error: see the server's log"}, status_code=500)
