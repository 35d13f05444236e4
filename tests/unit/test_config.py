"""Settings.from_env: SPEC §3 defaults, the Cloud Run MySQL variables, and refusals naming the variable."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pytest

from core.config import Settings, variables_read
from core.desks import REGISTRY, DeskSettings
from core.desks.webhook import WebhookDesk
from core.env import EnvReader
from core.errors import ConfigError

WEBHOOK = {"WEBHOOK_URL": "https://desk.example.com/hook", "WEBHOOK_SECRET": "s3cret"}
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters (vector B)
MYSQL = {"MYSQL_ADDRESS": "10.0.0.5:3306", "MYSQL_USERNAME": "root", "MYSQL_PASSWORD": "p@ss:w/rd"}


def test_empty_environment_gives_spec_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///relay.db"
    assert settings.wechat.api_base == "http://api.weixin.qq.com"
    assert settings.wechat.push_trust == "header"
    assert settings.desk == "inbox"  # the built-in inbox is the default desk
    assert settings.routes == ()
    assert settings.max_body == 1 << 20
    assert settings.desks_in_use() == ["inbox"]
    assert settings.desks["inbox"].keep_days == 90
    assert (settings.wechat.appid, settings.wechat.secret, settings.wechat.token, settings.wechat.aes_key) == \
        (None, None, None, None)


def test_mysql_variables_build_a_url_with_database_relay_and_quoted_password():
    url = Settings.from_env(MYSQL).database_url
    assert url == "mysql://root:p%40ss%3Aw%2Frd@10.0.0.5:3306/relay"
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == ("mysql", "10.0.0.5", 3306, "/relay")
    assert (unquote(parts.username), unquote(parts.password)) == ("root", "p@ss:w/rd")


def test_mysql_database_variable_names_the_database():
    url = Settings.from_env({**MYSQL, "MYSQL_DATABASE": "cs"}).database_url
    assert urlsplit(url).path == "/cs"
    assert unquote(urlsplit(url).password) == "p@ss:w/rd"


def test_mysql_username_is_quoted_too():
    url = Settings.from_env({**MYSQL, "MYSQL_USERNAME": "us:er@x"}).database_url
    assert url == "mysql://us%3Aer%40x:p%40ss%3Aw%2Frd@10.0.0.5:3306/relay"
    assert (unquote(urlsplit(url).username), urlsplit(url).hostname) == ("us:er@x", "10.0.0.5")


def test_database_url_wins_over_mysql_variables():
    assert Settings.from_env({**MYSQL, "DATABASE_URL": "sqlite:///tmp/x.db"}).database_url == "sqlite:///tmp/x.db"


def test_mysql_variables_without_address_keep_sqlite():
    env = {"MYSQL_USERNAME": "root", "MYSQL_PASSWORD": "pw"}
    assert Settings.from_env(env).database_url == "sqlite:///relay.db"


@pytest.mark.parametrize("env,variable", [
    ({"WX_PUSH_TRUST": "maybe"}, "WX_PUSH_TRUST"),
    ({"RELAY_DESK": "zendesk"}, "RELAY_DESK"),
    ({"RELAY_ROUTES": "bad"}, "RELAY_ROUTES"),
    ({"RELAY_ROUTES": "vip:zendesk", **WEBHOOK}, "RELAY_ROUTES"),
    ({"RELAY_MAX_BODY": "-1"}, "RELAY_MAX_BODY"),
    ({"RELAY_MAX_BODY": "0"}, "RELAY_MAX_BODY"),
    ({"RELAY_MAX_BODY": "1MB"}, "RELAY_MAX_BODY"),
    ({"RELAY_MAX_BODY": "²"}, "RELAY_MAX_BODY"),
    ({"WX_SECRET": "appsecret"}, "WX_APPID"),
    ({"WX_AES_KEY": AES_KEY[:-1], "WX_TOKEN": "t", "WX_APPID": "wxapp"}, "WX_AES_KEY"),
    ({"WX_AES_KEY": AES_KEY + "H", "WX_TOKEN": "t", "WX_APPID": "wxapp"}, "WX_AES_KEY"),
    ({"WX_AES_KEY": AES_KEY, "WX_APPID": "wxapp"}, "WX_TOKEN"),
    ({"RELAY_DESK": "webhook", "WEBHOOK_SECRET": "s3cret"}, "WEBHOOK_URL"),
    ({"RELAY_DESK": "webhook", "WEBHOOK_URL": "https://desk.example.com/hook"}, "WEBHOOK_SECRET"),
    ({"RELAY_ROUTES": "vip:webhook", "WEBHOOK_SECRET": "s3cret"}, "WEBHOOK_URL"),
    ({"DATABASE_URL": "postgres://x"}, "DATABASE_URL"),
    ({"WX_PUSH_PATH": "/wx/CHANGE-ME-to-a-random-secret"}, "WX_PUSH_PATH"),
    ({"WX_PUSH_PATH": "/short"}, "WX_PUSH_PATH"),
    ({"WX_PUSH_PATH": "no-slash-in-front-of-it"}, "WX_PUSH_PATH"),
    ({"RELAY_STORE_EXPLICIT": "on"}, "MYSQL_ADDRESS"),
], ids=["push-trust", "desk", "routes", "routes-desk", "max-body-negative", "max-body-zero", "max-body-unit",
        "max-body-superscript", "secret-without-appid", "aes-key-short", "aes-key-long", "aes-key-without-token",
        "webhook-without-url", "webhook-without-secret", "routed-webhook-without-url", "postgres",
        "push-path-placeholder", "push-path-short", "push-path-relative", "implicit-store"])
def test_bad_value_raises_config_error_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert variable in str(caught.value)


def test_the_bad_values_are_fine_once_corrected():
    # The refusals above are about the value, not about the variable being set at all.
    settings = Settings.from_env({"WX_PUSH_TRUST": "network", "RELAY_DESK": "webhook", "RELAY_MAX_BODY": "2048",
                                  "WX_SECRET": "appsecret", "WX_APPID": "wxapp", "WX_AES_KEY": AES_KEY,
                                  "WX_TOKEN": "t", "DATABASE_URL": "mysql://u:p@h:3306/d", **WEBHOOK})
    assert (settings.wechat.push_trust, settings.desk, settings.max_body) == ("network", "webhook", 2048)
    assert (settings.wechat.aes_key, settings.database_url) == (AES_KEY, "mysql://u:p@h:3306/d")
    assert (settings.desks["webhook"].url, settings.desks["webhook"].secret) == ("https://desk.example.com/hook", "s3cret")


def test_routes_parse_in_order():
    settings = Settings.from_env({"RELAY_ROUTES": "vip:webhook,order-:webhook", **WEBHOOK})
    assert settings.routes == (("vip", "webhook"), ("order-", "webhook"))
    assert settings.desks_in_use() == ["inbox", "webhook"]  # everyone not routed: the inbox


def test_inbox_chosen_per_entry_and_its_keep_days():
    settings = Settings.from_env({"RELAY_DESK": "webhook", "RELAY_ROUTES": "help-:inbox",
                                  "RELAY_INBOX_KEEP_DAYS": "30", **WEBHOOK})
    assert settings.desks_in_use() == ["webhook", "inbox"]
    assert settings.desks["inbox"].keep_days == 30
    with pytest.raises(ConfigError, match="RELAY_INBOX_KEEP_DAYS"):
        Settings.from_env({"RELAY_INBOX_KEEP_DAYS": "forever"})


def test_routes_keep_the_order_they_are_given():
    settings = Settings.from_env({"RELAY_ROUTES": "order-:webhook, vip:webhook", **WEBHOOK})
    assert [prefix for prefix, _ in settings.routes] == ["order-", "vip"]


C4C = {"C4C_BASE_URL": "https://my000000.crm.ondemand.com", "C4C_USER": "u", "C4C_PASSWORD": "p",
       "C4C_CHANNEL_ID": "WXOData", "C4C_INBOUND_USER": "mashup", "C4C_INBOUND_PASSWORD": "pw"}
ECHAT = {"ECHAT_TOKEN": "t", "ECHAT_CHAT_URL": "https://chat.example.com/chat.html?companyId=1"}


@pytest.mark.parametrize("missing", sorted(C4C))
def test_c4c_desk_needs_each_of_its_settings(missing):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"RELAY_DESK": "c4c", **{k: v for k, v in C4C.items() if k != missing}})
    assert missing in str(caught.value)


def test_c4c_defaults_and_choices():
    c4c = Settings.from_env({"RELAY_DESK": "c4c", **C4C}).desks["c4c"]
    assert (c4c.api, c4c.channel_code) == ("odata", "008")
    assert c4c.wechatid_url == ("https://my000000.crm.ondemand.com/sap/c4c/odata/cust/v1/zindividualcustomer/"
                                "CustomerCommonCollection")
    assert Settings.from_env({"RELAY_DESK": "c4c", "C4C_API": "SOAP", **C4C}).desks["c4c"].api == "soap"
    with pytest.raises(ConfigError, match="C4C_API"):
        Settings.from_env({"RELAY_DESK": "c4c", "C4C_API": "rest", **C4C})


@pytest.mark.parametrize("env,variable", [
    ({"ECHAT_CHAT_URL": None}, "ECHAT_CHAT_URL"),
    ({"ECHAT_TOKEN": None}, "ECHAT_TOKEN"),
    ({"ECHAT_AES_KEY": AES_KEY[:-1], "ECHAT_APPID": "a"}, "ECHAT_AES_KEY"),
    ({"ECHAT_AES_KEY": AES_KEY}, "ECHAT_APPID"),
    ({"ECHAT_SYSTEM_NOTICES": "end,bye"}, "ECHAT_SYSTEM_NOTICES"),
    ({"ECHAT_HANDOVER_EVERY": "10m"}, "ECHAT_HANDOVER_EVERY"),
])
def test_echat_refusals_name_the_variable(env, variable):
    values = {k: v for k, v in {"RELAY_DESK": "echat", **ECHAT, **env}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(values)
    assert variable in str(caught.value)


def test_echat_defaults():
    echat = Settings.from_env({"RELAY_DESK": "echat", **ECHAT}).desks["echat"]
    assert (echat.handover_every, echat.system_notices, echat.handover_quote) == (600, frozenset({"end"}), False)
    none = Settings.from_env({"RELAY_DESK": "echat", "ECHAT_SYSTEM_NOTICES": "none", **ECHAT}).desks["echat"]
    assert none.system_notices == frozenset()


@dataclass(frozen=True)
class PagerSettings(DeskSettings):
    """A desk a test adds to the registry; nothing else in the relay knows its variables."""

    url: str | None = None
    key: str | None = None

    required = {"url": "PAGER_URL", "key": "PAGER_KEY"}

    @classmethod
    def from_env(cls, env: EnvReader) -> PagerSettings:
        return cls(url=env.url("PAGER_URL"), key=env.str("PAGER_KEY"))


class PagerDesk(WebhookDesk):
    name = "pager"
    settings_type = PagerSettings


REGISTRY_WITH_PAGER = {**REGISTRY, "pager": PagerDesk}


def test_a_new_desk_missing_its_variables_is_refused_naming_them_all():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"RELAY_DESK": "pager"}, REGISTRY_WITH_PAGER)
    assert "PAGER_URL, PAGER_KEY are not set" in str(caught.value)
    with pytest.raises(ConfigError, match="PAGER_KEY is not set"):
        Settings.from_env({"RELAY_ROUTES": "vip:pager", "PAGER_URL": "https://p.example.com"}, REGISTRY_WITH_PAGER)


def test_a_new_desk_reads_its_own_settings_through_the_registry():
    settings = Settings.from_env({"RELAY_DESK": "pager", "PAGER_URL": "https://p.example.com/", "PAGER_KEY": "k"},
                                 REGISTRY_WITH_PAGER)
    assert settings.desks["pager"] == PagerSettings(url="https://p.example.com", key="k")
    assert {"PAGER_URL", "PAGER_KEY"} <= variables_read(REGISTRY_WITH_PAGER)
    with pytest.raises(ConfigError, match="RELAY_DESK"):
        Settings.from_env({"RELAY_DESK": "pager"})  # not in this version's registry


def test_every_desk_declares_its_settings():
    for name, desk in REGISTRY.items():
        assert desk.name == name
        assert desk.settings_type is not DeskSettings, f"{name} has no settings of its own"
        assert dataclasses.is_dataclass(desk.settings_type) and desk.settings_type.__dataclass_params__.frozen


def test_sandbox_is_off_unless_switched_on():
    assert Settings.from_env({}).sandbox is False
    assert Settings.from_env({"RELAY_SANDBOX": "on"}).sandbox is True
    assert Settings.from_env({"RELAY_SANDBOX": "off"}).sandbox is False
    with pytest.raises(ConfigError, match="RELAY_SANDBOX"):
        Settings.from_env({"RELAY_SANDBOX": "maybe"})
