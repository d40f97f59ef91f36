"""Profiles: development secrets never run in production (unset SIYU_PROFILE = production)."""
from __future__ import annotations

import base64
import os

import pytest

from siyu_kit import config, trust

SECRETS = ("SIYU_JWT_SECRET", "SIYU_DATA_KEY", "SIYU_LOOKUP_KEY", "SIYU_PLATFORM_TOKEN",
           "SIYU_SANDBOX_PAYMENT_SECRET", "SIYU_INTERNAL_KEY")


def real_secrets() -> dict[str, str]:
    key = base64.b64encode(os.urandom(32)).decode()
    return {"SIYU_JWT_SECRET": "j" * 40, "SIYU_DATA_KEY": f"k2:{key}", "SIYU_LOOKUP_KEY": key,
            "SIYU_PLATFORM_TOKEN": "p" * 40, "SIYU_SANDBOX_PAYMENT_SECRET": "s" * 40,
            "SIYU_INTERNAL_KEY": "k1:" + "i" * 40}


@pytest.fixture
def env(monkeypatch):
    for name in (*SECRETS, "SIYU_PROFILE", "SIYU_JWT_PRIVATE_KEY", "SIYU_JWT_JWKS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unset_profile_is_production_and_every_default_secret_is_named(env):
    assert config.profile() == "production"
    assert config.dev_secrets_in_use() == list(SECRETS)


def test_real_secrets_pass_and_each_default_alone_is_caught(env):
    for name, value in real_secrets().items():
        env.setenv(name, value)
    assert config.dev_secrets_in_use() == []
    for name in SECRETS:
        with pytest.MonkeyPatch.context() as one:
            one.delenv(name)
            assert config.dev_secrets_in_use() == [name]


def test_a_key_list_still_holding_the_dev_key_is_caught(env):
    for name, value in real_secrets().items():
        env.setenv(name, value)
    env.setenv("SIYU_DATA_KEY", real_secrets()["SIYU_DATA_KEY"] + "," + config.DEV_DATA_KEY)
    env.setenv("SIYU_INTERNAL_KEY", "new:" + "n" * 40 + "," + trust.DEV_INTERNAL_KEY)
    env.setenv("SIYU_LOOKUP_KEY", "kid:" + config.DEV_LOOKUP_KEY)
    assert config.dev_secrets_in_use() == ["SIYU_DATA_KEY", "SIYU_LOOKUP_KEY", "SIYU_INTERNAL_KEY"]


def test_rs256_tokens_need_no_shared_secret(env):
    for name, value in real_secrets().items():
        env.setenv(name, value)
    env.delenv("SIYU_JWT_SECRET")
    assert config.dev_secrets_in_use() == ["SIYU_JWT_SECRET"]
    env.setenv("SIYU_JWT_JWKS", '{"keys": []}')
    assert config.dev_secrets_in_use() == []


def test_production_refuses_and_dev_allows(env):
    with pytest.raises(SystemExit) as stopped:
        config.refuse_dev_secrets("order")
    assert stopped.value.code != 0
    env.setenv("SIYU_PROFILE", "dev")
    config.refuse_dev_secrets("order")
    env.setenv("SIYU_PROFILE", "staging")
    with pytest.raises(SystemExit):
        config.refuse_dev_secrets("order")
