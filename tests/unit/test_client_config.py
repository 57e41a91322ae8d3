"""Finding and reading the client config: --config, then $EDGEWEAVE_CONFIG, then XDG."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from edgeweave.client.config import find_config_path, load_config, parse_config
from edgeweave.errors import ConfigError

CONFIG = "server: https://127.0.0.1:8443\ntoken: ew_abc\nnamespace: prod\n"


def _write(path: Path, text: str = CONFIG) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_explicit_path_wins_over_env_and_xdg(tmp_path: Path) -> None:
    explicit = _write(tmp_path / "explicit.yaml")
    env = {
        "EDGEWEAVE_CONFIG": str(_write(tmp_path / "env.yaml")),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    _write(tmp_path / "xdg" / "edgeweave" / "config.yaml")
    assert find_config_path(str(explicit), env) == explicit
    assert find_config_path(None, env) == tmp_path / "env.yaml"
    del env["EDGEWEAVE_CONFIG"]
    assert find_config_path(None, env) == tmp_path / "xdg" / "edgeweave" / "config.yaml"


def test_home_config_dir_is_used_without_xdg(tmp_path: Path) -> None:
    path = _write(tmp_path / ".config" / "edgeweave" / "config.yaml")
    assert find_config_path(None, {"HOME": str(tmp_path)}) == path


def test_missing_config_tells_the_user_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="edgeweave cloud serve") as info:
        find_config_path(None, {"HOME": str(tmp_path)})
    assert "--config DATA/admin.yaml" in str(info.value)
    with pytest.raises(ConfigError, match="EDGEWEAVE_CONFIG=/nope does not exist"):
        find_config_path(None, {"EDGEWEAVE_CONFIG": "/nope"})
    with pytest.raises(ConfigError, match="config file /nope2 does not exist"):
        find_config_path("/nope2", {})


def test_load_reads_fields(tmp_path: Path) -> None:
    config = load_config(str(_write(tmp_path / "c.yaml")), {})
    assert (config.server, config.token, config.namespace) == (
        "https://127.0.0.1:8443",
        "ew_abc",
        "prod",
    )
    assert config.redacted()["token"] == "ew_abc...REDACTED"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "expected a mapping"),
        ("token: x\n", "`server` must be an http"),
        ("server: https://h\ntoken: [1]\n", "`token` must be a string"),
        ("server: https://h\ninsecureSkipTLSVerify: maybe\n", "insecureSkipTLSVerify"),
        ("server: https://h\n  bad: indent\n", r"c.yaml:2: "),
    ],
)
def test_invalid_config_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, source="c.yaml")


def test_tls_settings_build_the_context() -> None:
    insecure = parse_config("server: https://h\ninsecureSkipTLSVerify: true\n")
    assert insecure.ssl_context() is False
    plain = parse_config("server: https://h\n")
    assert isinstance(plain.ssl_context(), ssl.SSLContext)
    broken = parse_config("server: https://h\ncertificateAuthorityData: not a pem\n")
    with pytest.raises(ConfigError, match="certificate authority"):
        broken.ssl_context()


def test_a_configured_ca_is_the_only_one_trusted(tmp_path: Path) -> None:
    from edgeweave.cloud.pki import CertificateAuthority

    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    config = parse_config(
        "server: https://h\ncertificateAuthority: ca.crt\n", source=str(tmp_path / "c.yaml")
    )
    ctx = config.ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert len(ctx.get_ca_certs()) == 1  # no system roots beside it
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_relative_ca_file_is_relative_to_the_config(tmp_path: Path) -> None:
    config = parse_config(
        "server: https://h\ncertificateAuthority: ca.crt\n", source=str(tmp_path / "c.yaml")
    )
    assert config.ca_file == str(tmp_path / "ca.crt")
