"""docker-compose.yml and the Dockerfile agree with config.toml and the README (no Docker engine runs here)."""

from __future__ import annotations

import re
import tomllib
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from core.config import Settings
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
CONFIG = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def flag(command: list[str], name: str) -> str:
    """The value after `name` in an argument list."""
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def test_services_and_profiles() -> None:
    assert set(SERVICES) == {"bot", "redis", "lmdeploy", "vits"}
    assert SERVICES["vits"]["profiles"] == ["vits"]  # optional: `docker compose --profile vits up`
    assert all("profiles" not in SERVICES[s] for s in ("bot", "redis", "lmdeploy"))
    depends = SERVICES["bot"]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy" and "lmdeploy" in depends
    assert set(COMPOSE["volumes"]) >= {"bot-data", "redis-data"}


def test_the_bot_talks_to_lmdeploy_as_config_and_readme_say() -> None:
    command = [str(a) for a in SERVICES["lmdeploy"]["command"]]
    assert command[:3] == ["lmdeploy", "serve", "api_server"]
    port = flag(command, "--server-port")
    default = urlparse(CONFIG["llm"]["base_url"])
    assert int(port) == default.port == 23333 and SERVICES["lmdeploy"]["expose"] == [port]
    url = urlparse(env("bot")["BOT_LLM__BASE_URL"])
    assert (url.hostname, url.port, url.path) == ("lmdeploy", int(port), default.path)
    # lmdeploy does not report its context: the two numbers must be the same
    assert flag(command, "--session-len") == env("bot")["BOT_LLM__CONTEXT_TOKENS"]
    assert "--enable-prefix-caching" in command and flag(command, "--backend") == "turbomind"
    assert flag(command, "--quant-policy") == "8"
    # the flags are the README's recommended command, value for value
    readme_cmd = re.search(r"lmdeploy serve api_server \S+ (.*?)\n```", README, re.S)
    assert readme_cmd, "README lost its lmdeploy command"
    readme_flags = re.findall(r"(--[\w-]+)(?: ([^-\s\\][^\s\\]*))?", readme_cmd.group(1))
    for name, value in readme_flags:
        assert name in command and (not value or flag(command, name) == value), f"{name} {value} differs from README"
    assert f"context_tokens = {flag(command, '--session-len')}" in README
    gpu = SERVICES["lmdeploy"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_redis_keeps_an_append_only_file_where_the_bot_looks() -> None:
    command = [str(a) for a in SERVICES["redis"]["command"]]
    assert flag(command, "--appendonly") == "yes"
    assert any(str(v).endswith(":/data") for v in SERVICES["redis"]["volumes"])
    assert "redis-cli" in SERVICES["redis"]["healthcheck"]["test"]
    url, default = urlparse(env("bot")["BOT_MEMORY__REDIS_URL"]), urlparse(CONFIG["memory"]["redis_url"])
    assert (url.scheme, url.hostname, url.port, url.path) == (default.scheme, "redis", default.port, default.path)
    assert env("bot")["BOT_MEMORY__BACKEND"] == "redis"  # never fall back to SQLite silently in a deployment


def test_qq_port_volumes_and_vits() -> None:
    port = CONFIG["qq"]["port"]
    assert f"{port}:{port}" in SERVICES["bot"]["ports"] and env("bot")["BOT_QQ__HOST"] == "0.0.0.0"
    # listening beyond localhost: compose itself refuses to start until .env holds the token
    assert env("bot")["BOT_QQ__ACCESS_TOKEN"].startswith("${BOT_QQ__ACCESS_TOKEN:?set BOT_QQ__ACCESS_TOKEN in .env")
    data = f"/app/{CONFIG['bot']['data_dir']}"
    assert f"bot-data:{data}" in SERVICES["bot"]["volumes"]
    vits = re.search(r"e\.g\. (http://\S+)", (ROOT / "config.toml").read_text(encoding="utf-8").split("vits_url", 1)[1])
    assert vits and SERVICES["vits"]["expose"] == [str(urlparse(vits.group(1)).port)]


def test_environment_names_real_keys_and_holds_no_secrets() -> None:
    secret_keys = set()
    for section, model in Settings.model_fields.items():
        section_model = model.annotation
        assert isinstance(section_model, type)
        for key, field in section_model.model_fields.items():
            if "SecretStr" in str(field.annotation) and key != "redis_url":
                secret_keys.add(f"BOT_{section.upper()}__{key.upper()}")
    for service in SERVICES:
        for name in env(service):
            if not name.startswith("BOT_"):
                continue
            section, _, key = name.removeprefix("BOT_").lower().partition("__")
            assert key in CONFIG.get(section, {}) or name in secret_keys, f"{service}: {name} is not a key of config.toml"
            if name in secret_keys:  # only as a reference to .env, which compose reads for ${...}
                value = env(service)[name]
                assert value.startswith(f"${{{name}:?"), f"{service}: {name} is a secret; it belongs in .env"
    assert any(e.get("path") == ".env" for e in SERVICES["bot"]["env_file"])


@pytest.mark.parametrize("line", [
    r"^FROM python:3\.11-slim\b",
    r"^RUN pip install -r requirements\.txt$",
    r"^USER (?!root\b|0\b)\w+",
    r'^VOLUME \["/app/data"\]',
    r'^CMD \["python", "-m", "bot", "run"\]',
])
def test_dockerfile(line: str) -> None:
    assert re.search(line, DOCKERFILE, re.M), line
    assert SERVICES["bot"]["build"] == "." and (ROOT / ".dockerignore").is_file()


def test_dockerignore_keeps_secrets_and_environments_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", ".git", ".venv", ".venv-*", "data"} <= set(ignored)


def test_readme_describes_the_compose_deployment() -> None:
    assert "docker compose up" in README and "--profile vits" in README


def test_a_stop_gives_the_drain_its_time_before_the_kill() -> None:
    from bot.hosting.platforms import EVENT_GRACE
    from bot.pipeline.chain import SEND_GRACE

    grace = re.fullmatch(r"(\d+)s", str(SERVICES["bot"]["stop_grace_period"]))
    assert grace, "stop_grace_period is written in seconds, e.g. 35s"
    # drain, then the replies still going out and the events still arriving, then closing
    assert int(grace.group(1)) >= CONFIG["bot"]["drain_seconds"] + SEND_GRACE + 1 + EVENT_GRACE + 2
    assert re.search(r'^CMD \["python"', DOCKERFILE, re.M)  # exec form: SIGTERM reaches the bot itself
