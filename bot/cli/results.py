"""The data and results commands: `kpibot data import|waive`, `kpibot results export|reopen|quality|accept`."""
from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.appraisal.datafile import DataFileError, read_data_file
from bot.appraisal.entries import (EntryError, appraisal_month, check_value, ensure_open, find_member_anywhere,
                                   key_refs, latest_entry, parse_periods, period_for, record, waive_in_bulk)
from bot.appraisal.results.gate import ALL, AcceptError, accept, accepted, period_quality
from bot.appraisal.results.publish import release_accepted
from bot.appraisal.results.quality import finding_text
from bot.appraisal.results.roster import Roster
from bot.cli.scoring import _text
from bot.cli.support import CliError, config_from_args, require_current_schema, subcommand_group
from bot.clock import SystemClock
from bot.jobs.results import terminal_progress
from bot.storage.db import make_engine, make_session_factory, transaction
from bot.storage.models import AuditEntry, PeriodResult, ResultPeriod
from bot.templates import render
from scoring import WAIVED, Period, PeriodError

IMPORT_CHUNK = 1000  # rows per transaction: every row is checked first, so a chunk only fails on a database error


def _fail(message: str, exit_code: int = 2) -> Exception:
    return CliError(message, exit_code)


def _help(key: str) -> str:
    return render("results/cli_help.txt.j2", key=key)


def add_parsers(subparsers: Any) -> None:
    data = subcommand_group(subparsers, "data", _help("data"))
    imported = data.add_parser("import", help=_help("data.import"))
    imported.add_argument("file", metavar="FILE", help=_help("data.import.file"))
    imported.add_argument("--by", default="cli", metavar="USERID", help=_help("data.import.by"))
    imported.add_argument("--dry-run", action="store_true", help=_help("data.import.dry_run"))
    imported.set_defaults(func=cmd_data_import)
    waive = data.add_parser("waive", help=_help("data.waive"))
    waive.add_argument("--indicator", required=True, metavar="KEY", help=_help("data.waive.indicator"))
    waive.add_argument("--members", required=True, metavar="LIST", help=_help("data.waive.members"))
    waive.add_argument("--periods", required=True, metavar="P", help=_help("data.waive.periods"))
    waive.add_argument("--reason", required=True, help=_help("data.waive.reason"))
    waive.add_argument("--by", required=True, metavar="USERID", help=_help("data.waive.by"))
    waive.set_defaults(func=cmd_data_waive)

    results = subcommand_group(subparsers, "results", _help("results"))
    export = results.add_parser("export", help=_help("results.export"))
    export.add_argument("--period", required=True, metavar="P", help=_help("results.export.period"))
    export.add_argument("--format", choices=("csv", "xlsx"), default="csv", help=_help("results.export.format"))
    export.add_argument("--output", metavar="FILE", help=_help("results.export.output"))
    export.set_defaults(func=cmd_results_export)
    reopen = results.add_parser("reopen", help=_help("results.reopen"))
    reopen.add_argument("period", metavar="PERIOD", help=_help("results.reopen.period"))
    reopen.add_argument("--by", required=True, metavar="USERID", help=_help("results.reopen.by"))
    reopen.add_argument("--reason", required=True, help=_help("results.reopen.reason"))
    reopen.set_defaults(func=cmd_results_reopen)

    quality = results.add_parser("quality", help=_help("results.quality"))
    quality.add_argument("--period", required=True, metavar="P", help=_help("results.quality.period"))
    quality.add_argument("--format", choices=("text", "csv"), default="text", help=_help("results.quality.format"))
    quality.add_argument("--output", metavar="FILE", help=_help("results.quality.output"))
    quality.set_defaults(func=cmd_results_quality)

    acceptance = results.add_parser("accept", help=_help("results.accept"))
    acceptance.add_argument("--period", required=True, metavar="P", help=_help("results.accept.period"))
    acceptance.add_argument("--kind", required=True, metavar="KIND", help=_help("results.accept.kind"))
    acceptance.add_argument("--member", metavar="USERID", help=_help("results.accept.member"))
    acceptance.add_argument("--reason", required=True, help=_help("results.accept.reason"))
    acceptance.add_argument("--by", default="cli", metavar="USERID", help=_help("results.accept.by"))
    acceptance.set_defaults(func=cmd_results_accept)


def _sessions(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    config = config_from_args(args)
    engine = make_engine(config.database.url.reveal())
    require_current_schema(engine)
    return config, engine, make_session_factory(engine)


# -- data import ------------------------------------------------------------------------------------------------
@dataclass
class Planned:
    """A checked row, ready to write."""

    line: int
    userid: str
    key: str
    period: str
    value: Any  # Decimal or WAIVED
    target: Any  # Decimal or None


@dataclass
class ImportCheck:
    planned: list[Planned] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def check_rows(session: Any, config: Any, rows: Sequence[Any]) -> ImportCheck:
    """Every row against the org and each member's scheme: member known, key in the scheme, period of the
    indicator's cycle, ratings 1-5, period not yet published. All problems are collected; nothing is written."""
    roster = Roster.load(session, config)
    members: dict[str, Any] = {}
    check = ImportCheck()
    for row in rows:
        def problem(code: str, **params: Any) -> None:
            check.errors.append({"line": row.line, "code": code, "params": {"member": row.member, **params}})

        if row.member not in members:
            members[row.member] = find_member_anywhere(session, row.member)
        found = members[row.member]
        if not found:
            problem("member_unknown")
            continue
        if len(found) > 1:
            problem("member_ambiguous", userids="、".join(m.userid for m in found))
            continue
        userid = found[0].userid
        scheme = roster.scheme(userid)
        ref = next((r for r in key_refs(scheme) if r.key == row.indicator), None)
        if ref is None:
            problem("key_unknown", key=row.indicator, scheme=scheme.name)
            continue
        try:
            # The file's period is already canonical (2026-11, 2026-Q4, 2026); only its kind is checked here.
            period = period_for(ref, row.period, Period.parse(row.period).months()[-1])
        except EntryError as error:
            problem("period_mismatch", key=row.indicator, period=row.period, cycle=error.params.get("cycle", ""))
            continue
        try:
            previous = latest_entry(session, userid, ref.key, period, "value")
            ensure_open(session, period, userid, replaces=previous is not None and row.value != (
                WAIVED if previous.waived else Decimal(previous.value or "0")))
            if row.value is not WAIVED and not ref.is_rating:
                check_value(ref, row.value, "value")
            if row.target is not None and ref.takes_target:
                check_value(ref, row.target, "target")
        except EntryError as error:
            codes = {"period.published": "period_published", "period.closed": "period_closed",
                     "value.out_of_bounds": "out_of_bounds", "target.zero": "target_zero"}
            problem(codes.get(error.code, error.code), key=row.indicator, **error.params)
            continue
        if ref.is_rating and row.value is not WAIVED and (row.value != row.value.to_integral_value()
                                                          or not 1 <= row.value <= 5):
            problem("rating_invalid", key=row.indicator, value=str(row.value))
            continue
        check.planned.append(Planned(row.line, userid, ref.key, period, row.value, row.target))
    return check


def cmd_data_import(args: argparse.Namespace) -> int:
    try:
        rows = read_data_file(args.file)
    except DataFileError as error:
        raise _fail(render("cli/datafile_error.txt.j2", path=error.path, errors=[
            {"line": e.line, "code": e.code, "params": {k: _text(v) for k, v in e.params.items()}}
            for e in error.errors])) from None
    config, engine, sessions = _sessions(args)
    try:
        with transaction(sessions) as session:
            check = check_rows(session, config, rows)
        if check.errors:
            raise _fail(render("results/cli_import_error.txt.j2", path=args.file, errors=check.errors))
        if args.dry_run:
            print(render("results/cli_import.txt.j2", path=args.file, rows=len(check.planned), dry_run=True,
                         members=len({p.userid for p in check.planned}),
                         periods=sorted({p.period for p in check.planned})))
            return 0
        now = SystemClock().now()
        show = terminal_progress("import", Path(args.file).name)
        written = 0
        for start in range(0, len(check.planned), IMPORT_CHUNK):
            with transaction(sessions) as session:
                for planned in check.planned[start:start + IMPORT_CHUNK]:
                    record(session, userid=planned.userid, key=planned.key, period=planned.period, kind="value",
                           value=planned.value, reason="", source="import", actor=args.by, now=now, audit=False)
                    if planned.target is not None:
                        record(session, userid=planned.userid, key=planned.key, period=planned.period,
                               kind="target", value=planned.target, reason="", source="import", actor=args.by,
                               now=now, audit=False)
            written += len(check.planned[start:start + IMPORT_CHUNK])
            if show:
                show("import", written, len(check.planned))
        with transaction(sessions) as session:
            # One audit entry for the file; the data entries themselves keep who entered each value and when.
            session.add(AuditEntry(at=now, actor=args.by, action="data.import", subject=Path(args.file).name, detail={
                "file": str(args.file), "rows": len(check.planned),
                "periods": sorted({p.period for p in check.planned})}))
    finally:
        engine.dispose()
    print(render("results/cli_import.txt.j2", path=args.file, rows=len(check.planned), dry_run=False,
                 members=len({p.userid for p in check.planned}), periods=sorted({p.period for p in check.planned})))
    return 0


# -- bulk waivers and reopening ---------------------------------------------------------------------------------
def _require_admin(session: Any, config: Any, userid: str) -> Any:
    roster = Roster.load(session, config)
    if userid not in roster.org.admins:
        raise _fail(render("results/cli_admin.txt.j2", code="not_admin", userid=userid))
    return roster


def cmd_data_waive(args: argparse.Namespace) -> int:
    config, engine, sessions = _sessions(args)
    now = SystemClock().now()
    try:
        with transaction(sessions) as session:
            roster = _require_admin(session, config, args.by)
            wanted = [word.strip() for word in args.members.replace("，", ",").split(",") if word.strip()]
            if [w.lower() for w in wanted] == ["all"]:
                userids = roster.userids
            else:
                userids = []
                for word in wanted:
                    found = [m for m in find_member_anywhere(session, word) if m.userid in roster.org.members]
                    if len(found) != 1:
                        raise _fail(render("scoring/error.txt.j2", code="member.unknown" if not found
                                           else "member.ambiguous", p={"text": word, "members": [
                                               (m.name, m.userid) for m in found]}).strip())
                    userids.append(found[0].userid)
            schemes = {u: roster.scheme(u) for u in userids}
            if [w.lower() for w in wanted] == ["all"]:
                schemes = {u: s for u, s in schemes.items() if any(i.key == args.indicator or i.name == args.indicator
                                                                     for i in s.indicators)}
            try:
                periods = parse_periods(args.periods, appraisal_month(config, now))
                done = waive_in_bulk(session, schemes, key=args.indicator, periods=periods, reason=args.reason,
                                     actor=args.by, now=now)
            except EntryError as error:
                raise _fail(render("scoring/error.txt.j2", code=error.code, p=error.params).strip()) from None
            print(render("scoring/bulk_waived.txt.j2", name=done.name, waived=len(done.waived),
                         unchanged=len(done.unchanged), members=len({u for u, _ in done.waived + done.unchanged}),
                         periods=sorted({p for _, p in done.waived + done.unchanged})))
    finally:
        engine.dispose()
    return 0


def cmd_results_reopen(args: argparse.Namespace) -> int:
    period = str(_period_arg(args.period))
    config, engine, sessions = _sessions(args)
    now = SystemClock().now()
    try:
        with transaction(sessions) as session:
            _require_admin(session, config, args.by)
            row = session.get(ResultPeriod, period)
            if row is None or row.state not in ("closed", "reopened"):
                raise _fail(render("results/cli_admin.txt.j2", code="not_published" if row is None else
                                   "published", userid=args.by, period=period))
            row.state = "reopened"
            session.add(AuditEntry(at=now, actor=args.by, action="results.reopen", subject=period,
                                   detail={"reason": args.reason}))
    finally:
        engine.dispose()
    print(render("results/cli_admin.txt.j2", code="reopened", userid=args.by, period=period))
    return 0


# -- results export ---------------------------------------------------------------------------------------------
# team: the member's own department (their team's unit); manager: who rates them (empty at the top).
BASE_COLUMNS = ("userid", "name", "department", "team", "manager", "manager_userid", "scheme", "scheme_name",
                "status", "complete", "total", "original_total", "grade", "bonus_class", "bonus", "rank_in_team",
                "rank_in_department", "calibrated", "calibration_reason", "missing", "provisional")


def export_rows(session: Any, period: str) -> tuple[list[str], list[list[Any]]]:
    """The header and one row per member (published and draft results) of a period, scores per indicator."""
    stored = session.scalars(select(PeriodResult).where(PeriodResult.period == period)).all()
    keys: list[str] = []
    for row in stored:
        for item in row.data["result"]["indicators"]:
            if item["key"] not in keys:
                keys.append(item["key"])
    header = [*BASE_COLUMNS, *(f"score:{key}" for key in keys)]
    lines = []
    for row in sorted(stored, key=lambda r: (r.department or "", r.team or "",
                                             r.data["result"]["rank_in_team"] or 10 ** 6, r.userid)):
        result = row.data["result"]
        scores = {item["key"]: item["score"] if item["status"] == "scored" else item["status"]
                  for item in result["indicators"]}
        calibration = result.get("calibration")
        # Provisional (incomplete) results carry no grade or bonus; a member not appraised has no total either.
        appraised = result.get("appraised", True)
        final = result["complete"] and appraised
        lines.append([
            row.userid, row.data.get("name", row.userid), row.data.get("department_name", ""),
            row.data.get("team_department_name", ""), row.data.get("team_name", ""), row.team or "",
            row.data.get("scheme", {}).get("key", row.scheme_key), row.data.get("scheme", {}).get("name", ""),
            row.status,
            "yes" if result["complete"] else "no", result["total"] if appraised else "",
            result["original_total"] if appraised else "", result["grade"] if final else "",
            result["bonus_class"] if final and result["bonus_class"] is not None else "",
            result["bonus"] if final and result["bonus"] is not None else "",
            result["rank_in_team"] if result["rank_in_team"] is not None else "",
            result["rank_in_department"] if result["rank_in_department"] is not None else "",
            "yes" if calibration else "no", calibration["reason"] if calibration else "",
            " ".join(result["missing"]), "yes" if not result["complete"] else "no",
            *(scores.get(key, "") for key in keys)])
    return header, lines


def cmd_results_export(args: argparse.Namespace) -> int:
    period = str(_period_arg(args.period))
    config, engine, sessions = _sessions(args)
    try:
        with transaction(sessions) as session:
            header, lines = export_rows(session, period)
    finally:
        engine.dispose()
    if not lines:
        raise _fail(render("results/cli_export.txt.j2", code="empty", period=period, rows=0, path=""), 1)
    if args.format == "xlsx":
        output = Path(args.output or f"results-{period}.xlsx")
        _write_xlsx(output, period, header, lines)
    elif args.output:
        output = Path(args.output)
        with output.open("w", encoding="utf-8-sig", newline="") as handle:  # the BOM lets Excel read UTF-8
            _write_csv(handle, header, lines)
    else:
        _write_csv(sys.stdout, header, lines)
        return 0
    print(render("results/cli_export.txt.j2", code="done", period=period, rows=len(lines), path=str(output)))
    return 0


def _write_csv(handle: io.TextIOBase | Any, header: list[str], lines: list[list[Any]]) -> None:
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows(lines)


def _write_xlsx(path: Path, period: str, header: list[str], lines: list[list[Any]]) -> None:
    import openpyxl  # only for an xlsx export: every other command starts without loading it

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title=period)
    sheet.append(header)
    numeric = {"total", "original_total", "bonus"}
    for line in lines:
        cells: list[Any] = []
        for name, value in zip(header, line):
            if (name in numeric or name.startswith("score:")) and isinstance(value, str) and value:
                try:
                    cells.append(float(Decimal(value)))  # a number Excel can sum; the text is exact to 2 decimals
                    continue
                except InvalidOperation:
                    pass
            cells.append(value)
        sheet.append(cells)
    workbook.save(path)


# -- the data-quality gate ---------------------------------------------------------------------------------------
QUALITY_COLUMNS = ("kind", "severity", "accepted", "userids", "names", "keys", "message")


def _period_arg(text: str) -> Period:
    try:
        return Period.parse(text)
    except PeriodError:
        raise _fail(render("cli/error.txt.j2", code="period.invalid", params={"period": text})) from None


def cmd_results_quality(args: argparse.Namespace) -> int:
    period = _period_arg(args.period)
    config, engine, sessions = _sessions(args)
    try:
        quality = period_quality(sessions, config, period, SystemClock().now())
    finally:
        engine.dispose()
    names = quality.names()
    lines = [[f.kind, f.level.value, "yes" if accepted(f, quality.accepted) else "no", " ".join(f.userids),
              "、".join(names.get(u, u) for u in f.userids), " ".join(f.keys), finding_text(f, names, config.bot.locale)]
             for f in quality.findings]
    if args.format == "csv":
        if args.output:
            with Path(args.output).open("w", encoding="utf-8-sig", newline="") as handle:
                _write_csv(handle, list(QUALITY_COLUMNS), lines)
        else:
            _write_csv(sys.stdout, list(QUALITY_COLUMNS), lines)
        return 0
    text = render("quality/cli_list.txt.j2", period=str(period), rows=[dict(zip(QUALITY_COLUMNS, line)) for line in lines])
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def cmd_results_accept(args: argparse.Namespace) -> int:
    period = _period_arg(args.period)
    kind = ALL if args.kind.lower() in ("all", ALL) else args.kind
    now = SystemClock().now()
    config, engine, sessions = _sessions(args)
    try:
        try:
            with transaction(sessions) as session:
                accept(session, period=str(period), kind=kind, userid=args.member, reason=args.reason,
                       actor=args.by, now=now)
        except AcceptError as error:
            raise _fail(str(error)) from None
        released = release_accepted(sessions, config, now)
    finally:
        engine.dispose()
    print(render("quality/accepted.txt.j2", period=str(period), kind=kind, member=args.member or "",
                 released=str(period) in released))
    return 0
