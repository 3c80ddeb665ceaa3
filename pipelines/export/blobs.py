"""Content-addressed prompt and response blobs: existence checks and verified, parallel fetches.

A blob over the contract's 4 MiB cap is cut at a UTF-8 code-point boundary as the gateway would have
cut it (after its sha256 is verified against the key), never used whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tracedrop.schemas.landing import cap_utf8
from tracedrop.storage.objectstore import ObjectNotFound, ObjectStore, sha256_hex

DEFAULT_FETCH_THREADS = 16


@dataclass
class FetchResult:
    """Blob texts by hash, the hashes whose blob was over the cap (texts cut to it), and the hashes
    that were missing or did not match their content."""

    texts: dict[str, str] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # "<key>: why"


class BlobReader:
    """Reads blobs under one prefix (``prompts`` or ``responses``) of a landing zone."""

    def __init__(self, store: ObjectStore, prefix: str, threads: int = DEFAULT_FETCH_THREADS) -> None:
        self.store = store
        self.prefix = prefix
        self.threads = threads
        self.fetched = 0
        self.fetched_bytes = 0

    def key(self, digest: str) -> str:
        return f"{self.prefix}/{digest}"

    def existing(self, digests: Iterable[str]) -> set[str]:
        """The digests whose blob exists."""
        wanted = sorted(set(digests))
        with ThreadPoolExecutor(self.threads) as pool:
            present = pool.map(lambda d: self.store.exists(self.key(d)), wanted)
            return {digest for digest, ok in zip(wanted, present, strict=True) if ok}

    def fetch(self, digests: Iterable[str]) -> FetchResult:
        """Fetch each distinct digest once, verify sha256(content) == digest, cap and decode UTF-8."""
        result = FetchResult()
        wanted = sorted(set(digests))
        with ThreadPoolExecutor(self.threads) as pool:
            for digest, data in zip(wanted, pool.map(self._get, wanted), strict=True):
                if data is None:
                    result.missing.append(digest)
                    continue
                self.fetched += 1
                self.fetched_bytes += len(data)
                if sha256_hex(data) != digest:
                    result.corrupt.append(f"{self.store.url}/{self.key(digest)}: content sha256 does not match its key")
                    continue
                data, cut = cap_utf8(data)
                if cut:
                    result.truncated.append(digest)
                try:
                    result.texts[digest] = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    result.corrupt.append(f"{self.store.url}/{self.key(digest)}: not UTF-8 ({exc.reason})")
        return result

    def _get(self, digest: str) -> bytes | None:
        try:
            return self.store.get(self.key(digest))
        except ObjectNotFound:
            return None
