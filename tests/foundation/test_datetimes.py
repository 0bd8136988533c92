"""Instants compare as instants on every database, whatever offset they were written with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from models.identity import AuditLog


async def test_utc_and_city_time_of_the_same_instant_compare_equal(client):
    moment = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    row = await AuditLog.create(action="probe")
    await AuditLog.filter(id=row.id).update(at=moment)
    shanghai = moment.astimezone(timezone(timedelta(hours=8)))
    assert await AuditLog.filter(at=shanghai).count() == 1
    assert await AuditLog.filter(at__gte=shanghai).count() == 1
    # 08:00 UTC is later than 09:30+08:00 although its text sorts first
    assert await AuditLog.filter(at__lt=datetime(2026, 11, 25, 8, 0, tzinfo=UTC)).count() == 1
    assert await AuditLog.filter(at__gt=datetime(2026, 11, 25, 2, 0, tzinfo=UTC)).count() == 0
    stored = await AuditLog.get(id=row.id)
    assert stored.at == moment
