"""Uploaded files: type decided by content (magic bytes) against an allow-list, stored content-addressed
under the uploads folder with names we make (sha256), never served from a guessable path."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ALLOWED = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF-",),
}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}


def sniff(data: bytes) -> str | None:
    """The content type the bytes really are, or None when they are none of the allowed kinds."""
    for content_type, signatures in ALLOWED.items():
        if any(data.startswith(sig) for sig in signatures):
            return content_type
    return None


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    content_type: str


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, data: bytes, content_type: str) -> StoredFile:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest)
        if not path.exists():
            await asyncio.to_thread(self._write, path, data)
        return StoredFile(digest, len(data), content_type)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    async def read(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.path_of(sha256).read_bytes)
