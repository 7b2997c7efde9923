"""Reaching the Hugging Face Hub from the command line: a short reachability check before the first download.

huggingface_hub waits 10 s per metadata request and retries, so an unreachable Hub cost ~30 s of silence per model
or CLIP name. :func:`require_hub` checks the endpoint once per process with a short timeout. When it does not
answer, a repo already in the local cache is used offline (`HF_HUB_OFFLINE` switched on for this process, with a note);
otherwise :class:`HubUnreachableError` says so and names `HF_HUB_OFFLINE=1` (the CLI exits with code 2; `push`
with 1). Local folders never get here.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from .errors import TDDetrInputError

HUB_TIMEOUT_SECONDS = 5.0
_reachable: dict[str, bool] = {}  # endpoint -> answered, checked once per process


class HubUnreachableError(TDDetrInputError):
    """The Hub is needed and does not answer within HUB_TIMEOUT_SECONDS."""


def looks_like_repo_id(name: str) -> bool:
    """`org/name` (td-detr models are never bare names); a local path has been ruled out before."""
    parts = str(name).split("/")
    return len(parts) == 2 and all(parts) and not str(name).startswith((".", "~"))


def hub_answers(endpoint: str) -> bool:
    """Whether `endpoint` gives any HTTP answer (even an error status) within HUB_TIMEOUT_SECONDS."""
    if endpoint not in _reachable:
        try:
            request = urllib.request.Request(endpoint, method="HEAD")
            urllib.request.urlopen(request, timeout=HUB_TIMEOUT_SECONDS).close()
            _reachable[endpoint] = True
        except urllib.error.HTTPError:
            _reachable[endpoint] = True
        except (OSError, ValueError):  # URLError, timeouts, refused connections, a malformed endpoint
            _reachable[endpoint] = False
    return _reachable[endpoint]


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def require_hub(repo_id: str, what: str) -> None:
    """Call before loading `repo_id` from the Hub (`what`: the flag, e.g. "--model"). Returns when the Hub answers,
    when offline mode is on, or when the repo is cached (then switches to offline mode); raises otherwise."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or hub_answers(constants.ENDPOINT):
        return
    if _cached(repo_id):
        constants.HF_HUB_OFFLINE = True
        print(f"note: the Hub ({constants.ENDPOINT}) does not answer; using the cached {repo_id} "
              "(set HF_HUB_OFFLINE=1 to skip this check)", file=sys.stderr)
        return
    raise HubUnreachableError(
        f"{what} {repo_id}: the Hub ({constants.ENDPOINT}) does not answer within {HUB_TIMEOUT_SECONDS:g} s and "
        f"{repo_id} is not in the local cache; check the network, or give a local folder (with HF_HUB_OFFLINE=1 "
        "only the cache is used)"
    )
