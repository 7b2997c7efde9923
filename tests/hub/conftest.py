"""Hub test fixtures: the local fake Hub server and an in-process Hub client pointed at it (or made offline).

`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE` are read when huggingface_hub is imported, and the rest of the suite
imports transformers long before these tests run, so setting environment variables here would do nothing. In-process
tests therefore patch the values huggingface_hub reads at call time (`huggingface_hub.constants`) and the cached
`HfApi` objects that captured an endpoint earlier (huggingface_hub's module-level one, transformers' lazy one).
The tests that check the plain environment-variable path run the client in a subprocess (`hub_test_utils.run_python`).

Not covered by the fake Hub (see fake_hub_server.py): LFS / Xet transfers, authentication, the Hub's real validation.
"""

from __future__ import annotations

import pytest
from fake_hub_server import FakeHub
from hub_test_utils import UNREACHABLE


@pytest.fixture(scope="session")
def fake_hub():
    """A FakeHub served for the whole session (repos accumulate: use a distinct repo id per test)."""
    with FakeHub() as hub:
        yield hub


def _point_client_at(monkeypatch, tmp_path, endpoint: str, *, offline: bool, cache_dir) -> None:
    from huggingface_hub import constants, hf_api

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    # HfApi instances made earlier keep the endpoint they were created with: huggingface_hub's module-level one
    # (behind create_repo, create_commit, ...) and the one transformers creates lazily on first Hub use.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    monkeypatch.setattr("transformers.utils.hub._hf_api", None, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    # no token from the developer's machine: not from the environment, not from the token files
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-stored-tokens"))
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def hub_client(fake_hub, tmp_path, monkeypatch):
    """This process's huggingface_hub / transformers talk to `fake_hub`, with an empty cache and no token."""
    _point_client_at(monkeypatch, tmp_path, fake_hub.url, offline=False, cache_dir=tmp_path / "hf-cache")
    return fake_hub


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE in this process with an empty cache folder (returned) and an unreachable endpoint."""
    cache_dir = tmp_path / "hf-cache"
    cache_dir.mkdir()
    _point_client_at(monkeypatch, tmp_path, UNREACHABLE, offline=True, cache_dir=cache_dir)
    return cache_dir


@pytest.fixture
def silent_hub(tmp_path, monkeypatch):
    """Online mode pointed at a local port that accepts connections and never answers (the slow-network case), an
    empty cache, and td-detr's reachability timeout cut to 0.1 s (nothing ever answers, so a longer wait tests
    nothing more). Returns the endpoint."""
    import socket

    from td_detr import hub_access

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # connections complete in the kernel backlog; nothing ever reads or answers
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    _point_client_at(monkeypatch, tmp_path, endpoint, offline=False, cache_dir=tmp_path / "hf-cache")
    monkeypatch.setattr(hub_access, "HUB_TIMEOUT_SECONDS", 0.1)
    monkeypatch.setattr(hub_access, "_reachable", {})
    yield endpoint
    listener.close()
