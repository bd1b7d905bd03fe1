"""`kpibot data sync-wecom|wecom-metrics` and `kpibot 360 start|close|status`: the data sources from the command line."""
from __future__ import annotations

import argparse
import functools
import sys
import time as _time
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from wechatpy.exceptions import WeChatClientException

from bot.appraisal.feedback360 import (DEFAULT_DEADLINE_DAYS, MIN_SHOWN, Feedback360Error, announce_close, progress,
                                       require_open_round, start_round)
from bot.appraisal.indicator_sources import data_quality_flags, period_days, wecom_metrics
from bot.appraisal.results.quality import finding_text, wecom_findings
from bot.appraisal.wecom_stats import SyncWindowError, check_window, members_to_sync, sync_stats, wecom_today
from bot.cli.support import CliError, cli_error, config_from_args, help_text, require_current_schema, subcommand_group
from bot.config.schemes import SchemeLoadError, load_scheme
from bot.storage.db import transaction
from bot.storage.models import Member
from bot.templates import render
from bot.wecom import outbox
from bot.wecom.contact_stats import StatsNotPermitted, spans
from scoring import Period, PeriodError
from scoring.wecom_metrics import METRICS

if TYPE_CHECKING:
    from bot.app import KpiBot


def _error_line(template: str, code: str, exit_code: int = 2, **params: Any) -> CliError:
    return CliError(render(template, code=code, p=params), exit_code)


def add_parsers(subparsers: Any) -> None:
    text = functools.partial(help_text, "data")
    data = subcommand_group(subparsers, "data", text("data"))
    sync = data.add_parser("sync-wecom", help=text("data.sync-wecom"))
    sync.add_argument("--from", dest="first", metavar="DATE", help=text("data.sync-wecom.--from"))
    sync.add_argument("--to", dest="last", metavar="DATE", help=text("data.sync-wecom.--to"))
    sync.set_defaults(func=cmd_sync_wecom)
    metrics = data.add_parser("wecom-metrics", help=text("data.wecom-metrics"))
    metrics.add_argument("--period", required=True, metavar="P", help=text("data.wecom-metrics.--period"))
    metrics.add_argument("--member", action="append", metavar="USERID", help=text("data.wecom-metrics.--member"))
    metrics.set_defaults(func=cmd_wecom_metrics)

    feedback = subcommand_group(subparsers, "360", text("360"))
    start = feedback.add_parser("start", help=text("360.start"))
    start.add_argument("--period", required=True, metavar="P", help=text("360.start.--period"))
    start.add_argument("--deadline", metavar="DATE", help=text("360.start.--deadline"))
    start.add_argument("--name", default="", help=text("360.start.--name"))
    start.add_argument("--scheme", default=None, help=text("360.start.--scheme"))
    start.set_defaults(func=cmd_360_start)
    close = feedback.add_parser("close", help=text("360.close"))
    close.set_defaults(func=cmd_360_close)
    status = feedback.add_parser("status", help=text("360.status"))
    status.set_defaults(func=cmd_360_status)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _error_line("wecom_stats/cli_error.txt.j2", "bad_date", text=text) from None


def _bot(args: argparse.Namespace) -> KpiBot:
    # The composition root loads every handler, job and the web app: about 400 ms more at every `kpibot` command,
    # `--help` included, were it imported at the top.
    from bot.app import KpiBot

    bot = KpiBot(config_from_args(args))
    require_current_schema(bot.engine)
    return bot


# -- data sync-wecom ------------------------------------------------------------------------------------------

def cmd_sync_wecom(args: argparse.Namespace) -> int:
    bot = _bot(args)
    try:
        if not bot.config.wecom_stats.enabled:
            raise _error_line("wecom_stats/cli_error.txt.j2", "disabled")
        today = wecom_today(bot.clock.now())
        yesterday = today - timedelta(days=1)
        first = _parse_day(args.first) if args.first else yesterday
        last = _parse_day(args.last) if args.last else yesterday
        try:
            check_window(first, last, today)
        except SyncWindowError as error:
            raise _error_line("wecom_stats/cli_error.txt.j2", error.reason, first=error.first, last=error.last,
                              earliest=error.earliest, latest=error.latest) from None
        started = _time.monotonic()
        reports = []
        with transaction(bot.sessions) as session:
            userids = members_to_sync(session, bot.config)
        for piece_first, piece_last in spans(first, last):
            progress = _progress_printer(piece_first, piece_last)
            try:
                # One transaction per 30 days: a long backfill keeps what it got if it stops halfway.
                with transaction(bot.sessions) as session:
                    reports.append(sync_stats(session, bot.client, userids, piece_first, piece_last,
                                              now=bot.clock.now(), concurrency=bot.config.wecom_stats.concurrency,
                                              progress=progress))
            except StatsNotPermitted as error:
                raise _error_line("wecom_stats/cli_error.txt.j2", "not_permitted", 1, errmsg=error.errmsg) from None
            except WeChatClientException as error:
                raise _error_line("wecom_stats/cli_error.txt.j2", "wecom", 1, errcode=error.errcode,
                                  errmsg=error.errmsg) from None
            if reports[-1].stopped:
                break
        print(render("wecom_stats/cli_sync.txt.j2", reports=reports, seconds=f"{_time.monotonic() - started:.1f}"))
        return 1 if any(r.stopped or r.failed for r in reports) else 0
    finally:
        bot.engine.dispose()


def _progress_printer(first: date, last: date) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        if sys.stderr.isatty() or done == total:
            print(render("wecom_stats/cli_progress.txt.j2", first=first, last=last, done=done, total=total),
                  file=sys.stderr, flush=True)
    return show


def cmd_wecom_metrics(args: argparse.Namespace) -> int:
    try:
        period = Period.parse(args.period)
    except PeriodError:
        raise cli_error("period.invalid", period=args.period) from None
    bot = _bot(args)
    try:
        with transaction(bot.sessions) as session:
            userids = args.member or members_to_sync(session, bot.config)
            names = {m.userid: m.name for m in session.scalars(select(Member).where(Member.userid.in_(userids)))}
            first, last = period_days(period)
            values = wecom_metrics(session, userids, first, last)
            flags = data_quality_flags(session, userids, period, today=wecom_today(bot.clock.now()))
            findings = wecom_findings(session, str(period), userids, values, today=wecom_today(bot.clock.now()))
        rows = [{"userid": u, "name": names.get(u, u), "values": values.get(u, {})} for u in userids]
        print(render("wecom_stats/metrics.txt.j2", period=str(period), first=first, last=last, rows=rows,
                     metrics=METRICS, flags=flags, names=names,
                     findings=[finding_text(f, names, bot.config.bot.locale) for f in findings]))
        return 0
    finally:
        bot.engine.dispose()


# -- 360 ------------------------------------------------------------------------------------------------------

def _send_via_outbox(session: Any, config: Any, now: Any, prefix: str) -> Callable[..., None]:
    def send(userid: str, template: str, **variables: Any) -> None:
        outbox.send(session, config, f"{prefix}:{userid}:{template}", userid, template, now, **variables)
    return send


def _run_360(args: argparse.Namespace, work: Callable[[Any, Any], str]) -> int:
    bot = _bot(args)
    try:
        with transaction(bot.sessions) as session:
            text = work(bot, session)
        # Send what is due now; anything held back (rate limits, retries) is left to the running bot.
        while bot.sender.send_due():
            pass
    except Feedback360Error as error:
        raise CliError(render(error.template, **error.variables), 1) from None
    finally:
        bot.engine.dispose()
    print(text)
    return 0


def cmd_360_start(args: argparse.Namespace) -> int:
    def work(bot: Any, session: Any) -> str:
        now = bot.clock.now()
        today = now.astimezone(bot.config.schedule.zone).date()
        deadline = _parse_day(args.deadline) if args.deadline else today + timedelta(days=DEFAULT_DEADLINE_DAYS)
        try:
            scheme = load_scheme(args.scheme or bot.config.appraisal.default_scheme)
        except SchemeLoadError as error:
            raise CliError(str(error), 2) from None
        opener = bot.config.org.admins[0] if bot.config.org.admins else "cli"
        round_, count = start_round(session, period=args.period, deadline=deadline, name=args.name, by=opener,
                                    scheme=scheme, now=now,
                                    send=_send_via_outbox(session, bot.config, now, f"cli:360:start:{now:%Y%m%d%H%M%S}"))
        return render("feedback360/cli_result.txt.j2", action="start", round=round_, count=count, shown=0,
                      min_shown=MIN_SHOWN)

    return _run_360(args, work)


def cmd_360_close(args: argparse.Namespace) -> int:
    def work(bot: Any, session: Any) -> str:
        now = bot.clock.now()
        round_ = require_open_round(session)
        results = announce_close(session, round_, now, bot.config.org.admins,
                                 _send_via_outbox(session, bot.config, now, f"cli:360:close:{round_.id}"))
        return render("feedback360/cli_result.txt.j2", action="close", round=round_, count=len(results),
                      shown=sum(1 for r in results if r.shown), min_shown=MIN_SHOWN)

    return _run_360(args, work)


def cmd_360_status(args: argparse.Namespace) -> int:
    def work(bot: Any, session: Any) -> str:
        round_ = require_open_round(session)
        return render("feedback360/status.txt.j2", round=round_, progress=progress(session, round_), scope="all")

    return _run_360(args, work)
