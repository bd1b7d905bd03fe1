"""The weekly report's jobs: prompt and remind whoever still owes the week's report, escalate to managers."""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.appraisal.leave import userids_on_leave_all_of
from bot.appraisal.people import Org
from bot.appraisal.weekly_reports import (FLOW, DigestEntry, ReportState, ReportStep, WeekView, answered_count,
                                          deadline_of, excused_for_week, first_unanswered, question_view,
                                          week_statuses)
from bot.appraisal.workcalendar import local, workdays_of_week
from bot.jobs.prompts import Ask, Waiting, ask_everyone_owing
from bot.storage.models import Member, WeeklyReport
from bot.templates import render, trim
from bot.wecom import outbox

if TYPE_CHECKING:
    from bot.jobs.context import JobContext


def _ask_members(job: JobContext, kind: str, away: set[str]) -> str:
    """One message (weekly/<kind>.txt.j2) to each member who still owes the week's report and is not away."""
    session, config, week = job.session, job.config, job.period
    questions = config.weekly_report.questions
    reports = {r.userid: r for r in session.scalars(select(WeeklyReport).where(WeeklyReport.week == week))}
    deadline = local(config, deadline_of(week, config))

    def ask(member: Member) -> Ask | None:
        report = reports.get(member.userid)
        if report is not None and report.status == "submitted":
            return None
        answers = dict(report.answers or {}) if report is not None else {}
        first = first_unanswered(answers, questions)
        waiting = (Waiting(FLOW, ReportState.ANSWERING, ReportStep(week, index=first).to_dict())
                   if first is not None else None)
        return Ask(f"weekly/{kind}.txt.j2", {"who": member.name, "week_view": WeekView.of(week), "deadline": deadline,
                                              "answered": answered_count(report, questions),
                                              **question_view(config, first, answers)}, waiting)

    asked = ask_everyone_owing(job, f"weekly_{kind}", away, ask)
    return render("weekly/job_detail.txt.j2", config.bot.locale, kind=kind, week=week, **asdict(asked))


def send_weekly_prompts(job: JobContext) -> str:
    """The week's prompt; members on leave for all of its workdays are not asked."""
    return _ask_members(job, "prompt", userids_on_leave_all_of(job.session, workdays_of_week(job.period)))


def send_weekly_reminders(job: JobContext) -> str:
    """On the deadline day, before the deadline; away at any time between the prompt and the deadline: not
    reminded, as the leave confirmation promised."""
    return _ask_members(job, "reminder", excused_for_week(job.session, job.config, job.period))


def send_weekly_escalations(job: JobContext) -> str:
    """After the deadline each manager gets who in their direct team is missing and a digest of the submitted
    reports."""
    session, config, week = job.session, job.config, job.period
    rules = config.weekly_report
    now = job.clock.now()
    org = Org.load(session, config)
    statuses = {member.userid: (status, report)
                for member, status, report in week_statuses(session, config, week, list(org.members.values()))}
    digest_questions = [rules.question(key) for key in rules.digest_keys]
    sent = 0
    for manager_id in sorted(org.reports):
        team = [org.members[userid] for userid in org.direct_team(manager_id)]
        missing = [m for m in team if statuses[m.userid][0] in ("draft", "missing")]
        on_leave = [m for m in team if statuses[m.userid][0] == "leave"]
        entries = []
        for member in team:
            status, report = statuses[member.userid]
            if status != "submitted" or report is None:
                continue
            answers = report.answers or {}
            sections = [(q.title, trim(answers.get(q.key, ""), rules.digest_chars))
                        for q in digest_questions if str(answers.get(q.key, "")).strip()]
            entries.append(DigestEntry(member.name, report.late, sections))
        outbox.send(session, config, f"job:weekly_escalation:{week}:{manager_id}", manager_id,
                    "weekly/escalation.md.j2", now, manager=org.members[manager_id], week_view=WeekView.of(week),
                    deadline=local(config, deadline_of(week, config)), team_size=len(team), missing=missing,
                    on_leave=on_leave, entries=entries)
        sent += 1
    return render("weekly/job_detail.txt.j2", config.bot.locale, kind="escalation", week=week, asked=sent,
                  on_leave=0, already=0)
