"""The composition root: builds the whole bot from a Config, with real or fake parts, and runs it."""
from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.appraisal import workcalendar
from bot.appraisal.org_sync import SyncReport, sync_org
from bot.chat.dispatcher import Dispatcher
from bot.chat.routing import Router
from bot.clock import Clock, clock_from_environment
from bot.config import Config
from bot.jobs.runner import BotScheduler, JobRunner
from bot.jobs.table import all_jobs
from bot.storage.db import make_engine, make_session_factory, transaction
from bot.wecom.callback import create_callback_blueprint
from bot.wecom.client import WeComClient
from bot.wecom.edge import Rejections, create_edge_server
from bot.wecom.health import metrics_registry, snapshot_source
from bot.wecom.inbox import InboxProcessor
from bot.wecom.sender import Sender
from handlers import ROUTERS

log = logging.getLogger(__name__)


class KpiBot:
    """One running kpibot: HTTP callback server, inbox workers, sender and scheduler over one database."""

    def __init__(self, config: Config, *, clock: Clock | None = None, engine: Engine | None = None,
                 routers: list[Router] | None = None) -> None:
        self.config = config
        workcalendar.use_calendar_file(config.calendar)  # every date rule follows the admin's file
        self.clock = clock or clock_from_environment()
        self.engine = engine or make_engine(config.database.url.reveal(), pool_size=config.server.threads + 8)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.client = WeComClient(config.wecom, self.sessions, self.clock)
        self.dispatcher = Dispatcher(routers if routers is not None else ROUTERS, config, self.clock)
        self.sender = Sender(config, self.sessions, self.client, self.clock)
        self.inbox = InboxProcessor(config, self.sessions, self.dispatcher.handle, self.clock,
                                    after_commit=self.sender.wake)
        self.rejections = Rejections(self.clock)
        self.flask = self._create_flask()
        self._http_server: Any = None
        self._http_thread: threading.Thread | None = None
        self.scheduler: Any = None  # a BotScheduler once started (the sandbox puts its own here)

    def job_runner(self, holder: str | None = None) -> JobRunner:
        """A runner of the job table over this bot's parts; `holder` names the process in its claims."""
        return JobRunner(all_jobs, sessions=self.sessions, config=self.config, clock=self.clock, client=self.client,
                         dispatcher=self.dispatcher, wake_sender=self.sender.wake, holder=holder)

    def _create_flask(self) -> Flask:
        app = Flask("kpibot")
        app.config["MAX_CONTENT_LENGTH"] = None  # the callback enforces its own limit with a clear 413
        app.register_blueprint(create_callback_blueprint(self.config, self.sessions, self.clock, self.inbox.notify,
                                                         self.rejections))
        snapshot = snapshot_source(self.sessions, [spec.id for spec in all_jobs()], self.rejections.counts)
        registry = metrics_registry(snapshot)

        @app.get("/healthz")
        def health() -> Any:
            return jsonify(snapshot().as_json())

        @app.get("/metrics")
        def metrics() -> Any:
            return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

        return app

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, *, scheduler: bool = True, sync_org_now: bool = True) -> None:
        """Start the background parts; the HTTP server is started separately (serve_* below)."""
        if sync_org_now:
            try:
                self.sync_org()
            except Exception as error:  # noqa: BLE001 - the bot still answers with the org it has
                log.error("org sync at start-up failed: %s", error)
        self.sender.start()
        self.inbox.start()
        self.inbox.resume_pending()
        if scheduler:
            self.scheduler = BotScheduler(self.job_runner())
            self.scheduler.start()

    def stop(self) -> None:
        self.stop_http()
        if self.scheduler is not None:
            self.scheduler.stop()
        self.inbox.stop()
        self.sender.stop()
        self.engine.dispose()

    def sync_org(self) -> SyncReport:
        with transaction(self.sessions) as session:
            return sync_org(session, self.client, self.config, self.clock.now())

    # -- HTTP ----------------------------------------------------------------------------------------
    def start_http(self, host: str | None = None, port: int | None = None) -> int:
        """Serve the callback with waitress (bot/wecom/edge.py) in a background thread; returns the bound port."""
        self._http_server = create_edge_server(self.flask, self.config.server, self.rejections,
                                               host=host or self.config.server.host,
                                               port=self.config.server.port if port is None else port)
        self._http_thread = threading.Thread(target=self._http_server.run, name="http", daemon=True)
        self._http_thread.start()
        return int(self._http_server.effective_port)

    def stop_http(self) -> None:
        server, thread = self._http_server, self._http_thread
        self._http_server = self._http_thread = None
        if server is None:
            return

        def close_all_channels() -> None:
            # Runs inside waitress's event loop, which ends once its map is empty: closing the
            # listening socket from another thread instead breaks a select() already under way.
            for channel in list(server._map.values()):
                channel.close()

        # Let the request threads finish first: one finishing after the channels are closed would
        # write to the loop's closed wake-up pipe, whose descriptor may already be reused.
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.trigger.pull_trigger(close_all_channels)
        if thread is not None:
            thread.join(timeout=10)
