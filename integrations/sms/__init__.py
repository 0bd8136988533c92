"""SMS gateway: the interface, the Redis-backed sandbox and the HTTP client for the real provider."""

from integrations.sms.base import TEMPLATES, SmsGateway, render
from integrations.sms.http import HttpSms
from integrations.sms.sandbox import SandboxSms

__all__ = ["TEMPLATES", "HttpSms", "SandboxSms", "SmsGateway", "render"]
