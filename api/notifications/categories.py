"""What a notification is about (its `kind`), and how each kind goes out: the channels it takes unless the
person chose otherwise, whether the inbox may be turned off for it, whether quiet hours hold it."""

from __future__ import annotations

from dataclasses import dataclass

INBOX, PUSH, WECHAT = "inbox", "push", "wechat"
CHANNELS = (INBOX, PUSH, WECHAT)
# the channels a delivery worker sends on; the inbox entry is the notification row itself
SENT_CHANNELS = (PUSH, WECHAT)


@dataclass(frozen=True, slots=True)
class Category:
    label: str
    # on by default for each channel (the person may turn a channel off, or on)
    defaults: frozenset[str]
    # the inbox cannot be turned off (the person must be able to find it again)
    mandatory: bool = False
    # sent at once even in quiet hours
    urgent: bool = False
    # a service notice about the person's own business (else an operational message, e.g. an announcement)
    service_notice: bool = True


CATEGORIES: dict[str, Category] = {
    "application_status": Category("办件进度", frozenset(CHANNELS)),
    "application_returned": Category("补正材料通知", frozenset(CHANNELS), mandatory=True),
    "complaint_reply": Category("咨询投诉答复", frozenset(CHANNELS)),
    "deadline_warning": Category(
        "办件即将到期(工作人员)", frozenset({INBOX, PUSH}), mandatory=True, urgent=True
    ),
    "deadline_overdue": Category(
        "办件已超期(工作人员)", frozenset({INBOX, PUSH}), mandatory=True, urgent=True
    ),
    "case_arrived": Category("新办件到达(工作人员)", frozenset({INBOX, PUSH})),
    "complaint_routed": Category("咨询投诉转办(工作人员)", frozenset({INBOX, PUSH})),
    "announcement": Category("政务信息与公告", frozenset(CHANNELS), service_notice=False),
    "licence_expiry": Category("证照到期提醒", frozenset(CHANNELS)),
}

# a kind not listed (a later issue's, before it adds itself) goes to the inbox only
UNLISTED = Category("其他", frozenset({INBOX}))


def category_of(kind: str) -> Category:
    return CATEGORIES.get(kind, UNLISTED)


def channels_for(kind: str, choices: dict[str, dict[str, bool]]) -> frozenset[str]:
    """The channels a notification of `kind` takes for a person whose choices are `choices`
    ({category: {channel: on}}): the category's defaults, changed by what the person chose; the inbox of a
    mandatory category always."""
    category = category_of(kind)
    chosen = choices.get(kind, {})
    out = {c for c in CHANNELS if chosen.get(c, c in category.defaults)}
    if category.mandatory:
        out.add(INBOX)
    return frozenset(out)
