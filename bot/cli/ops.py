"""Operator commands: init, serve, db upgrade, org sync, outbox, jobs."""
from __future__ import annotations

import argparse
import functools
import logging
import shutil
import signal
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from wechatpy.exceptions import WeChatClientException

from bot.appraisal.org_sync import OrgNotVisible
from bot.appraisal.workcalendar import local
from bot.cli.support import (CliError, cli_error, config_from_args, first_line, help_text, open_engine, require_current_schema,
                             subcommand_group)
from bot.clock import SystemClock, clock_from_environment
from bot.config import Config, default_config_path
from bot.fakes.wecom import FakeWeCom
from bot.sandbox import demo_org
from bot.shipped_files import EXAMPLE_CONFIG
from bot.storage.db import current_revision, make_session_factory, transaction, upgrade_database
from bot.storage.models import OutboxMessage
from bot.templates import render
from bot.wecom.sender import current_pause


# The composition root and the job table are imported inside the commands that run them: together they load
# every handler, job and the web app, about 400 ms more at every `kpibot` command, `--help` included.


# -- init / db upgrade --------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.config or default_config_path())
    created = False
    if not path.exists():
        shutil.copyfile(EXAMPLE_CONFIG, path)
        created = True
    config = config_from_args(argparse.Namespace(config=str(path)))
    engine = open_engine(config)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()
    print(render("ops/init.txt.j2", path=str(path), created=created))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    engine = open_engine(config)
    try:
        before = current_revision(engine)
        upgrade_database(engine)
        after = current_revision(engine)
    except Exception as error:  # noqa: BLE001
        raise cli_error("database.upgrade_failed", reason=first_line(error)) from None
    finally:
        engine.dispose()
    print(render("ops/db_upgrade.txt.j2", before=before, after=after))
    return 0


# -- serve ------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from bot.app import KpiBot  # the composition root: see the top of this module

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    fake = None
    if args.fake_wecom:
        fake = FakeWeCom(corp_id=config.wecom.corp_id, corp_secret=config.wecom.secret.reveal(),
                         agent_id=config.wecom.agent_id)
        demo_org.populate(fake)
        fake.start()
        # Without a WeCom client to look at, the log is where a person sees what the bot sent.
        fake.subscribe(lambda message: logging.getLogger("bot.fakes.wecom").info(
            "fake WeCom delivered %s to %s: %s", message.msgtype, message.touser,
            (message.content or "")[:120].replace("\n", " ")))
        config = replace(config, wecom=replace(config.wecom, api_base_url=fake.base_url),
                         org=replace(config.org, admins=tuple(sorted(set(config.org.admins) | set(demo_org.DEMO_ADMINS)))))
    bot = KpiBot(config)
    require_current_schema(bot.engine)
    bot.start(scheduler=not args.no_scheduler)
    port = bot.start_http()
    print(render("ops/serving.txt.j2", host=config.server.host, port=port, fake_url=fake.base_url if fake else None,
                 scheduler=not args.no_scheduler), flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    bot.stop()
    if fake is not None:
        fake.stop()
    return 0


# -- org sync -----------------------------------------------------------------------------------------
def cmd_org_sync(args: argparse.Namespace) -> int:
    from bot.app import KpiBot  # the composition root: see the top of this module

    config = config_from_args(args)
    bot = KpiBot(config)
    require_current_schema(bot.engine)
    try:
        report = bot.sync_org()
    except OrgNotVisible as error:
        raise CliError(str(error), 1) from None
    except WeChatClientException as error:
        raise cli_error("org_sync.wecom", 1, errcode=error.errcode, errmsg=error.errmsg) from None
    except Exception as error:  # noqa: BLE001 - network and the like: one line
        raise cli_error("org_sync.failed", 1, reason=f"{type(error).__name__}: {str(error)[:200]}") from None
    finally:
        bot.engine.dispose()
    print(render("ops/org_sync.txt.j2", report=report))
    return 0


# -- outbox -------------------------------------------------------------------------------------------
def cmd_outbox(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    engine = open_engine(config)
    require_current_schema(engine)
    sessions = make_session_factory(engine)
    try:
        with transaction(sessions) as session:
            if args.retry:
                changed = session.execute(update(OutboxMessage).where(
                    OutboxMessage.id.in_(args.retry), OutboxMessage.status == "failed").values(
                    status="pending", attempts=0, next_attempt_at=SystemClock().now(), last_error=None)).rowcount
                print(render("ops/outbox_retry.txt.j2", count=changed, ids=args.retry))
                return 0 if changed else 1
            query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(args.limit)
            if args.status != "all":
                query = query.where(OutboxMessage.status == args.status)
            rows = list(reversed(session.scalars(query).all()))
            pause = current_pause(session)
        zone = config.schedule.zone
        print(render("ops/outbox.txt.j2", rows=rows, status=args.status, zone=zone, pause=pause))
    finally:
        engine.dispose()
    return 0


# -- jobs ---------------------------------------------------------------------------------------------
def _moment(config: Config, text: str, option: str) -> datetime:
    """An ISO time from the command line; without an offset it is in the configured zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise cli_error("time.invalid", option=option, text=repr(text)) from None
    return moment.replace(tzinfo=config.schedule.zone) if moment.tzinfo is None else moment


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """Each job with its next *effective* fire time: the next time it will have something to do."""
    from bot.jobs.table import next_fire_times  # the job table: see the top of this module

    config = config_from_args(args)
    now = _moment(config, args.after, "--after") if args.after else SystemClock().now()
    rows = [(spec, local(config, fire)) for spec, fire in next_fire_times(config, now)]
    watched, unreadable = _watched_runs(config)
    print(render("ops/jobs_list.txt.j2", rows=rows, watched=watched, unreadable=unreadable, zone=config.schedule.zone))
    return 0


def _watched_runs(config: Config) -> tuple[list[Any], str | None]:
    """Recent runs that are planned, running, stuck or were taken over; or why the database could not say."""
    from bot.jobs.runner import watched_runs  # the job table: see the top of this module

    engine = open_engine(config)
    try:
        require_current_schema(engine)
        with transaction(make_session_factory(engine)) as session:
            return watched_runs(session, clock_from_environment().now()), None
    except CliError as error:
        return [], str(error)
    finally:
        engine.dispose()


def cmd_jobs_run(args: argparse.Namespace) -> int:
    # The composition root and the job table: see the top of this module.
    from bot.app import KpiBot
    from bot.jobs.table import all_jobs, job_by_id

    config = config_from_args(args)
    try:
        job_by_id(args.name)
    except KeyError:
        raise cli_error("job.unknown", name=repr(args.name),
                        available=", ".join(spec.id for spec in all_jobs())) from None
    at = _moment(config, args.at, "--at") if args.at else None
    bot = KpiBot(config)
    require_current_schema(bot.engine)
    bot.sender.start()
    try:
        result = bot.job_runner().run(args.name, at, force=args.force, period=args.period)
        bot.sender.stop()  # after a final pass, queued messages are left for the running bot if any remain
    except Exception as error:  # noqa: BLE001
        bot.sender.stop()
        raise cli_error("job.failed", 1, name=args.name, reason=f"{type(error).__name__}: {str(error)[:200]}") from None
    finally:
        bot.engine.dispose()
    print(render("ops/jobs_run.txt.j2", result=result))
    return 0


def add_parsers(subparsers: Any) -> None:
    text = functools.partial(help_text, "ops")
    subparsers.add_parser("init", help=text("init")).set_defaults(func=cmd_init)

    serve = subparsers.add_parser("serve", help=text("serve"))
    serve.add_argument("--no-scheduler", action="store_true", help=text("serve.--no-scheduler"))
    serve.add_argument("--fake-wecom", action="store_true", help=text("serve.--fake-wecom"))
    serve.set_defaults(func=cmd_serve)

    db = subcommand_group(subparsers, "db", text("db"))
    db.add_parser("upgrade", help=text("db.upgrade")).set_defaults(func=cmd_db_upgrade)

    org = subcommand_group(subparsers, "org", text("org"))
    org.add_parser("sync", help=text("org.sync")).set_defaults(func=cmd_org_sync)

    outbox = subparsers.add_parser("outbox", help=text("outbox"))
    outbox.add_argument("--status", default="all", choices=["all", "pending", "sending", "sent", "failed"])
    outbox.add_argument("--limit", type=int, default=50)
    outbox.add_argument("--retry", type=int, nargs="+", metavar="ID", help=text("outbox.--retry"))
    outbox.set_defaults(func=cmd_outbox)

    jobs = subcommand_group(subparsers, "jobs", text("jobs"))
    listing = jobs.add_parser("list", help=text("jobs.list"))
    listing.add_argument("--after", help=text("jobs.list.--after"))
    listing.set_defaults(func=cmd_jobs_list)
    run = jobs.add_parser("run", help=text("jobs.run"))
    run.add_argument("name")
    run.add_argument("--at", help=text("jobs.run.--at"))
    run.add_argument("--period", help=text("jobs.run.--period"))
    run.add_argument("--force", action="store_true", help=text("jobs.run.--force"))
    run.set_defaults(func=cmd_jobs_run)
