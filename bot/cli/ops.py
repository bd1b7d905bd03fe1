"""Operator commands: init, serve, db upgrade, org sync, outbox, jobs."""
from __future__ import annotations

import argparse
import logging
import shutil
import signal
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from bot.config import Config, ConfigError, default_config_path, load_config
from bot.shipped_files import EXAMPLE_CONFIG
from bot.templates import render


def _cli_error(message: str, exit_code: int = 2) -> Exception:
    from bot.cli.main import CliError
    return CliError(message, exit_code)


def config_from_args(args: argparse.Namespace) -> Config:
    try:
        config = load_config(args.config or default_config_path())
    except ConfigError as error:
        raise _cli_error(f"配置无效: {error}") from None
    from bot.appraisal import workcalendar
    workcalendar.use_calendar_file(config.calendar)  # every command's dates follow the admin's file
    return config


def _engine(config: Config) -> Any:
    from bot.storage.db import make_engine
    return make_engine(config.database.url.reveal())


def require_current_schema(engine: Any) -> None:
    from alembic.script import ScriptDirectory
    from alembic.config import Config as AlembicConfig

    from bot.storage.db import current_revision, migrations_dir

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    try:
        current = current_revision(engine)
    except Exception as error:  # noqa: BLE001 - cannot even connect: say so in one line
        raise _cli_error(f"无法连接数据库: {type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
    if current != head:
        raise _cli_error(f"数据库结构不是最新 (当前 {current or '空'}, 需要 {head})：请先运行 kpibot db upgrade")


# -- init / db upgrade --------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.config or default_config_path())
    created = False
    if not path.exists():
        shutil.copyfile(EXAMPLE_CONFIG, path)
        created = True
    config = config_from_args(argparse.Namespace(config=str(path)))
    from bot.storage.db import upgrade_database
    engine = _engine(config)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()
    print(render("ops/init.txt.j2", path=str(path), created=created))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from bot.storage.db import current_revision, upgrade_database
    engine = _engine(config)
    try:
        before = current_revision(engine)
        upgrade_database(engine)
        after = current_revision(engine)
    except Exception as error:  # noqa: BLE001
        raise _cli_error(f"数据库升级失败: {type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
    finally:
        engine.dispose()
    print(render("ops/db_upgrade.txt.j2", before=before, after=after))
    return 0


# -- serve ------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    fake = None
    if args.fake_wecom:
        from bot.sandbox import demo_org
        from bot.fakes.wecom import FakeWeCom
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
    from bot.app import KpiBot
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
    config = config_from_args(args)
    from wechatpy.exceptions import WeChatClientException
    from bot.app import KpiBot
    bot = KpiBot(config)
    require_current_schema(bot.engine)
    from bot.appraisal.org_sync import OrgNotVisible
    try:
        report = bot.sync_org()
    except OrgNotVisible as error:
        raise _cli_error(str(error), 1) from None
    except WeChatClientException as error:
        raise _cli_error(f"通讯录同步失败: WeCom 错误 {error.errcode} {error.errmsg}", 1) from None
    except Exception as error:  # noqa: BLE001 - network and the like: one line
        raise _cli_error(f"通讯录同步失败: {type(error).__name__}: {str(error)[:200]}", 1) from None
    finally:
        bot.engine.dispose()
    print(render("ops/org_sync.txt.j2", report=report))
    return 0


# -- outbox -------------------------------------------------------------------------------------------
def cmd_outbox(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from bot.clock import SystemClock
    from bot.storage.db import make_session_factory, transaction
    from bot.storage.models import OutboxMessage
    engine = _engine(config)
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
            from bot.wecom.sender import current_pause
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
        raise _cli_error(f"{option} 应为 ISO 时间, 例如 2026-11-27T16:05 (got {text!r})") from None
    return moment.replace(tzinfo=config.schedule.zone) if moment.tzinfo is None else moment


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """Each job with its next *effective* fire time: the next time it will have something to do."""
    config = config_from_args(args)
    from bot.clock import SystemClock
    from bot.jobs.table import next_fire_times
    now = _moment(config, args.after, "--after") if args.after else SystemClock().now()
    rows = [(spec, fire.astimezone(config.schedule.zone) if fire else None) for spec, fire in next_fire_times(config, now)]
    watched, unreadable = _watched_runs(config)
    print(render("ops/jobs_list.txt.j2", rows=rows, watched=watched, unreadable=unreadable, zone=config.schedule.zone))
    return 0


def _watched_runs(config: Config) -> tuple[list[Any], str | None]:
    """Recent runs that are planned, running, stuck or were taken over; or why the database could not say."""
    from bot.clock import clock_from_environment
    from bot.cli.main import CliError
    from bot.storage.db import make_session_factory, transaction
    from bot.jobs.runner import watched_runs
    engine = _engine(config)
    try:
        require_current_schema(engine)
        with transaction(make_session_factory(engine)) as session:
            return watched_runs(session, clock_from_environment().now()), None
    except CliError as error:
        return [], str(error)
    finally:
        engine.dispose()


def cmd_jobs_run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from bot.app import KpiBot
    from bot.jobs.table import all_jobs, job_by_id
    try:
        job_by_id(args.name)
    except KeyError:
        raise _cli_error(f"没有名为 {args.name!r} 的任务 (可用: {', '.join(spec.id for spec in all_jobs())})") from None
    at = _moment(config, args.at, "--at") if args.at else None
    bot = KpiBot(config)
    require_current_schema(bot.engine)
    bot.sender.start()
    try:
        result = bot.job_runner().run(args.name, at, force=args.force, period=args.period)
        bot.sender.stop()  # after a final pass, queued messages are left for the running bot if any remain
    except Exception as error:  # noqa: BLE001
        bot.sender.stop()
        raise _cli_error(f"任务 {args.name} 失败: {type(error).__name__}: {str(error)[:200]}", 1) from None
    finally:
        bot.engine.dispose()
    print(render("ops/jobs_run.txt.j2", result=result))
    return 0


def add_parsers(subparsers: Any) -> None:
    init = subparsers.add_parser("init", help="写入 config.toml（若不存在）并创建数据库")
    init.set_defaults(func=cmd_init)

    serve = subparsers.add_parser("serve", help="启动回调服务、消息处理、发送与定时任务")
    serve.add_argument("--no-scheduler", action="store_true", help="不运行定时任务（用于额外的 Web 实例）")
    serve.add_argument("--fake-wecom", action="store_true", help="连接内置的模拟企业微信（含示例组织）")
    serve.set_defaults(func=cmd_serve)

    db = subparsers.add_parser("db", help="数据库")
    db_sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    db_sub.add_parser("upgrade", help="升级数据库结构到最新").set_defaults(func=cmd_db_upgrade)

    org = subparsers.add_parser("org", help="组织架构")
    org_sub = org.add_subparsers(dest="org_command", metavar="SUBCOMMAND", required=True)
    org_sub.add_parser("sync", help="从企业微信同步部门与成员").set_defaults(func=cmd_org_sync)

    outbox = subparsers.add_parser("outbox", help="查看待发送、失败的消息")
    outbox.add_argument("--status", default="all", choices=["all", "pending", "sending", "sent", "failed"])
    outbox.add_argument("--limit", type=int, default=50)
    outbox.add_argument("--retry", type=int, nargs="+", metavar="ID", help="重新发送这些失败的消息")
    outbox.set_defaults(func=cmd_outbox)

    jobs = subparsers.add_parser("jobs", help="定时任务")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND", required=True)
    listing = jobs_sub.add_parser("list", help="列出任务及下次实际运行时间（已按节假日和调休计算）")
    listing.add_argument("--after", help="从此时间起计算，例如 2026-09-28T00:00（默认：现在）")
    listing.set_defaults(func=cmd_jobs_list)
    run = jobs_sub.add_parser("run", help="立即运行一个任务（每个周期只运行一次，除非 --force）")
    run.add_argument("name")
    run.add_argument("--at", help="视为在此时间运行，例如 2026-11-27T16:05（用于手工补跑）")
    run.add_argument("--period", help="指定周期，例如 2026-11")
    run.add_argument("--force", action="store_true", help="即使本周期已运行也再运行一次")
    run.set_defaults(func=cmd_jobs_run)
