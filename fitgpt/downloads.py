"""
Everything fitgpt fetches from the internet goes through here: the tiny-shakespeare text,
tiktoken's GPT-2 BPE files, and the Hugging Face Hub (FineWeb, TinyStories, GPT-2 weights).

An offline machine fails at once with one line: what was tried, why it failed, and the offline
alternative. Before a library that retries for many seconds (datasets, transformers) is asked
for something remote, one TCP connection to its host is tried with a short timeout.
"""

import os
import socket
import urllib.error
import urllib.parse
import urllib.request

from fitgpt.errors import DataError

CONNECT_TIMEOUT = 5.0  # seconds to open a connection before calling a host unreachable


def unreachable(host: str, port: int = 443, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when a TCP connection to host opens, else why it did not."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return None
    except OSError as e:
        return e.strerror or str(e) or type(e).__name__


def hub_host() -> str:
    """The Hugging Face Hub's host (HF_ENDPOINT for a mirror)."""
    return urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname


def hub_offline() -> bool:
    """HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set: nothing may be fetched from the Hub."""
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag.lower() not in ("", "0", "false", "no", "off") for flag in flags)


def require_hub(what: str, alternative: str) -> None:
    """Raise a one-line DataError unless the Hub can be reached to fetch `what`."""
    if hub_offline():
        raise DataError(f"cannot stream {what}: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set; {alternative}")
    reason = unreachable(hub_host())
    if reason:
        raise DataError(f"cannot stream {what}: {hub_host()} is unreachable ({reason}); {alternative}")


def download_text(url: str, alternative: str, timeout: float = 60.0) -> str:
    """The text at url (UTF-8), or a one-line DataError naming the offline alternative."""
    host = urllib.parse.urlparse(url).hostname
    reason = unreachable(host)
    if reason is None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read().decode("utf-8")
        except (urllib.error.URLError, OSError) as e:
            reason = str(getattr(e, "reason", e))
    raise DataError(f"cannot download {url}: {reason}; {alternative}")


def tiktoken_encoding(name: str = "gpt2"):
    """tiktoken's encoding. Its BPE files (vocab.bpe, encoder.json for GPT-2) are read from
    TIKTOKEN_CACHE_DIR (or tiktoken's own cache) or downloaded once; offline, without them, this is
    one line saying where to put them."""
    import tiktoken

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(CONNECT_TIMEOUT)  # tiktoken's download has no timeout of its own
    try:
        return tiktoken.get_encoding(name)
    except Exception as e:  # requests', urllib3's or tiktoken's own errors: all mean "could not fetch"
        cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or "tiktoken's cache"
        raise DataError(
            f"cannot load tiktoken's {name!r} BPE files: not in {cache} and the download failed "
            f"({type(e).__name__}); copy a tiktoken cache folder from a machine with network access and set "
            f"TIKTOKEN_CACHE_DIR to it"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
