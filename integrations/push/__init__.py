"""App push: the interface, the sandbox, and JPush over HTTP."""

from integrations.push.base import PushGateway, PushMessage, PushRejected, PushRetryable
from integrations.push.http import HttpPush
from integrations.push.sandbox import SandboxPush

__all__ = ["HttpPush", "PushGateway", "PushMessage", "PushRejected", "PushRetryable", "SandboxPush"]
