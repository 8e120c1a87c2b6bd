"""The GPU VM's office hours: two standard 5-field cron expressions (start, stop) and an IANA
time zone, as `--gpu-schedule "START;STOP;TZ"` gives them and the Terraform variable
gpu_schedule takes them on both clouds (terraform/aws/schedule.tf turns them into EventBridge
Scheduler's form; Compute Engine's instance schedule takes them as they are).

Here they are checked (at settings time, exit 2) and read back: `off_hours` says whether the
schedule has the VM stopped at a given moment, i.e. whether its last stop came after its last
start, which `duoctl status` and `duoctl verify` use to call a stopped GPU VM "stopped by
schedule" rather than down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

EXAMPLE = "0 8 * * 1-5;0 19 * * 1-5;Europe/Berlin"
OFF = ("off", "none")  # --gpu-schedule off: the VM runs all the time
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (numbered from lowest)
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)
TIME_ZONE = re.compile(r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")  # the Terraform variables' rule
LOOKBACK_DAYS = 400  # far enough for a schedule that fires once a year


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression (Vixie cron's meaning)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    any_day: bool  # day of month is *
    any_weekday: bool  # day of week is *

    @classmethod
    def parse(cls, text: str) -> Cron:
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"{text!r} has {len(fields)} fields; a cron expression has five: minute hour "
                "day-of-month month day-of-week, e.g. 0 8 * * 1-5"
            )
        sets = [_field(f, *spec) for f, spec in zip(fields, FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        minutes, hours, days, months = sets[:4]
        return cls(minutes, hours, days, months, weekdays, fields[2] == "*", fields[4] == "*")

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month, in_week = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # cron: one restricted field decides
            return in_month and in_week
        return in_month or in_week  # both restricted: either one

    def last_fire(self, before: datetime) -> datetime | None:
        """The latest minute at or before `before` (a naive wall-clock time) this fires at."""
        times = sorted(((h, m) for h in self.hours for m in self.minutes), reverse=True)
        for back in range(LOOKBACK_DAYS):
            day = before.date() - timedelta(days=back)
            if not self.day_matches(day):
                continue
            for hour, minute in times:
                if back or (hour, minute) <= (before.hour, before.minute):
                    return datetime(day.year, day.month, day.day, hour, minute)
        return None


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + (low if name == "month" else 0)
    if not text.isdigit():
        raise ValueError(f"{name} {text!r} is not a number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        spec, slash, step_text = part.partition("/")
        if slash and (not step_text.isdigit() or int(step_text) == 0):
            raise ValueError(f"{name}: step {step_text!r} must be a positive number")
        step = int(step_text) if step_text else 1
        if spec == "*":
            first, last = low, high
        elif "-" in spec:
            a, b = spec.split("-", 1)
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise ValueError(f"{name}: the range {spec} runs backwards")
        else:
            first = _value(spec, name, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def check_for_aws(text: str) -> None:
    """What EventBridge Scheduler cannot express (terraform/aws/variables.tf refuses the same)."""
    fields = text.split()
    if fields[2] != "*" and fields[4] != "*":
        raise ValueError(
            f"{text!r} restricts both the day of the month and the day of the week; EventBridge "
            "Scheduler takes one of them: leave the other at *"
        )
    if "/" in fields[4]:
        raise ValueError(f"{text!r}: no step (/) in the day of the week on AWS; list the days")


class GpuSchedule(BaseModel):
    """When the GPU VM runs: started at `start`, stopped at `stop`, in `time_zone`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    stop: str
    time_zone: str

    @field_validator("start", "stop")
    @classmethod
    def _cron(cls, v: str) -> str:
        text = " ".join(v.split())
        Cron.parse(text)
        return text

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        v = v.strip()
        try:
            if not TIME_ZONE.match(v):
                raise ZoneInfoNotFoundError(v)
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{v!r} is not an IANA time zone such as Europe/Berlin, America/New_York or UTC"
            ) from None
        return v

    @model_validator(mode="after")
    def _differ(self) -> GpuSchedule:
        if self.start == self.stop:
            raise ValueError("start and stop are the same time")
        return self

    @classmethod
    def parse_option(cls, text: str) -> GpuSchedule | None:
        """`START;STOP;TZ` (or `off`) as --gpu-schedule gives it."""
        if text.strip().lower() in OFF:
            return None
        parts = [p.strip() for p in text.split(";")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"{text!r} is not START;STOP;TIME_ZONE: two cron expressions and a time zone "
                f"separated by semicolons, e.g. {EXAMPLE!r} (or off)"
            )
        return cls(start=parts[0], stop=parts[1], time_zone=parts[2])

    def check_for(self, cloud: str) -> None:
        if cloud == "aws":
            check_for_aws(self.start)
            check_for_aws(self.stop)

    def off_hours(self, now: datetime | None = None) -> bool:
        """Whether the schedule has the VM stopped at `now` (its last stop came after its
        last start)."""
        zone = ZoneInfo(self.time_zone)
        moment = (now or datetime.now(zone)).astimezone(zone).replace(tzinfo=None)
        started = Cron.parse(self.start).last_fire(moment)
        stopped = Cron.parse(self.stop).last_fire(moment)
        if stopped is None:
            return False
        return started is None or stopped > started

    def describe(self) -> str:
        return f"starts {self.start!r}, stops {self.stop!r} ({self.time_zone})"

    def terraform(self) -> dict[str, str]:
        return {"start": self.start, "stop": self.stop, "time_zone": self.time_zone}


def off_hours(schedule: GpuSchedule | None, now: datetime | None = None) -> bool:
    """Whether there is a schedule and it has the VM stopped now."""
    return schedule is not None and schedule.off_hours(now)
