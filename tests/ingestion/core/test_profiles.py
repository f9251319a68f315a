"""Settings layers: defaults < headwater.toml < environments/<env>.toml < HEADWATER_* < code.

Each wrong setting fails loudly, in one line naming it; the repository's own profiles resolve and
hold nothing shaped like a secret.
"""

import json
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the platform floor
    import tomli as tomllib
from typer.testing import CliRunner

from ingestion.core.config import Settings, get_settings
from ingestion.core.profiles import SettingsError, find_project, resolve, unknown_part
from ingestion.core.redact import REDACTED, looks_secret
from jobs.cli import app

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()
# Settings are read the same way on the platform floor (Python 3.10: tomli, pydantic-settings 2.15).
pytestmark = pytest.mark.floor


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No HEADWATER_* variable from the caller's shell leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("HEADWATER_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "environments").mkdir(parents=True)
    (root / "headwater.toml").write_text(
        '[lake]\nroot = "data/lake"\n\n[batching]\nmax_files = 10\nmax_bytes = 1000\n'
    )
    (root / "environments" / "qa.toml").write_text(
        '[batching]\nmax_files = 20\nmax_age_seconds = 5\n\n[lake]\nkind = "azure"\naccount = "hwqa"\n'
    )
    return root


def test_each_layer_overrides_the_one_below_and_says_so(project, monkeypatch):
    dev = resolve(project=project)  # no dev profile here: defaults and the project file
    assert dev.settings.batching.max_files == 10
    assert dev.settings.batching.max_age_seconds == 300.0
    assert dev.settings.lake.root == project / "data" / "lake"
    assert dev.profile is None
    assert dev.source(("batching", "max_files")) == "headwater.toml"
    assert dev.source(("batching", "max_age_seconds")) == "default"

    qa = resolve(env="qa", project=project)
    assert (qa.settings.batching.max_files, qa.settings.batching.max_bytes) == (20, 1000)
    assert qa.settings.batching.max_age_seconds == 5.0
    assert (qa.settings.lake.kind, qa.settings.lake.account) == ("azure", "hwqa")
    assert qa.source(("batching", "max_files")) == "environments/qa.toml"
    assert qa.source(("batching", "max_bytes")) == "headwater.toml"

    monkeypatch.setenv("HEADWATER_ENV", "qa")
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_FILES", "30")
    from_env = resolve(project=project)
    assert from_env.settings.env.value == "qa"
    assert from_env.source(("env",)) == "HEADWATER_ENV"
    assert from_env.settings.batching.max_files == 30
    assert from_env.source(("batching", "max_files")) == "HEADWATER_BATCHING__MAX_FILES"
    assert from_env.settings.batching.max_age_seconds == 5.0  # the profile still counts below it

    coded = resolve(project=project, poison_max_attempts=7)
    assert coded.settings.poison_max_attempts == 7
    assert coded.source(("poison_max_attempts",)) == "poison_max_attempts (argument)"


def test_the_project_is_found_from_a_sub_folder_and_its_paths_stay_put(project, monkeypatch):
    deep = project / "transforms" / "datasets"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_project() == project.resolve()
    assert resolve().settings.lake.root == project.resolve() / "data" / "lake"
    monkeypatch.chdir(project.parent)
    assert find_project() is None
    monkeypatch.setenv("HEADWATER_PROJECT", str(project))
    assert find_project() == project.resolve()
    monkeypatch.setenv("HEADWATER_PROJECT", str(project.parent))
    with pytest.raises(SettingsError, match="HEADWATER_PROJECT=.*no headwater.toml there"):
        find_project()


def test_settings_made_in_code_read_no_files(project, monkeypatch):
    monkeypatch.chdir(project)
    assert Settings().lake.root == Path("lake")  # the code path is defaults + environment only
    assert resolve().settings.lake.root == project.resolve() / "data" / "lake"


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "HEADWATER_LAKE__ROOTT",
            "unknown setting HEADWATER_LAKE__ROOTT; did you mean HEADWATER_LAKE__ROOT?",
        ),
        ("HEADWATER_LAK__ROOT", "unknown setting HEADWATER_LAK__ROOT; did you mean HEADWATER_LAKE__ROOT?"),
        ("HEADWATER_BACHING", "unknown setting HEADWATER_BACHING; did you mean HEADWATER_BATCHING?"),
        (
            "HEADWATER_BATCHING__DATASETS__ORDERS__MAX_FILEZ",
            "unknown setting HEADWATER_BATCHING__DATASETS__ORDERS__MAX_FILEZ;"
            " did you mean HEADWATER_BATCHING__DATASETS__ORDERS__MAX_FILES?",
        ),
        ("HEADWATER_LAKE__ROOT__X", "unknown setting HEADWATER_LAKE__ROOT__X"),
    ],
)
def test_a_mistyped_variable_fails_naming_the_closest_setting(project, monkeypatch, variable, message):
    monkeypatch.setenv(variable, "/data")
    with pytest.raises(SettingsError) as caught:
        resolve(project=project)
    assert str(caught.value) == message


def test_variables_that_settings_name_for_secrets_are_allowed(project, monkeypatch):
    monkeypatch.setenv("HEADWATER_ABFS_CLIENT_SECRET", "s")  # the default name of the ABFS secret
    assert resolve(project=project).settings.spark.auth.client_secret_name == "HEADWATER_ABFS_CLIENT_SECRET"
    monkeypatch.setenv("HEADWATER_OTHER_SECRET", "s")
    with pytest.raises(SettingsError, match="unknown setting HEADWATER_OTHER_SECRET"):
        resolve(project=project)
    # Once a profile names it, it is a secret's variable, not a typo (and the default is not).
    monkeypatch.delenv("HEADWATER_ABFS_CLIENT_SECRET")
    (project / "environments" / "qa.toml").write_text(
        '[spark.auth]\nclient_secret_name = "HEADWATER_OTHER_SECRET"\n'
    )
    assert (
        resolve(env="qa", project=project).settings.spark.auth.client_secret_name == "HEADWATER_OTHER_SECRET"
    )


def test_an_unresolved_key_vault_reference_is_named(project, monkeypatch):
    monkeypatch.setenv(
        "HEADWATER_ABFS_CLIENT_SECRET", "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/x/)"
    )
    with pytest.raises(SettingsError, match="HEADWATER_ABFS_CLIENT_SECRET still holds a Key Vault reference"):
        resolve(project=project)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "HEADWATER_LAKE__KIND",
            "azur",
            "HEADWATER_LAKE__KIND='azur' is not valid: expected 'local' or 'azure'",
        ),
        (
            "HEADWATER_RETRY__ATTEMPTS",
            "0",
            "HEADWATER_RETRY__ATTEMPTS='0' is not valid: input should be greater than or equal to 1",
        ),
        (
            "HEADWATER_SUBMIT__KIND",
            "yarn",
            "HEADWATER_SUBMIT__KIND='yarn' is not valid:"
            " expected 'in-process', 'spark-submit', 'databricks' or 'synapse'",
        ),
        ("HEADWATER_ENV", "stage", "HEADWATER_ENV='stage' is not valid: expected one of 'dev', 'qa', 'prod'"),
    ],
)
def test_an_invalid_value_is_one_line_naming_the_setting_and_the_allowed_values(
    project, monkeypatch, variable, value, message
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        resolve(project=project)
    assert str(caught.value) == message
    assert caught.value.transient is False


def test_an_invalid_secret_value_is_named_but_never_shown(project, monkeypatch):
    monkeypatch.setenv("HEADWATER_SUBMIT__ENV", '{"TOKEN": ["tok-3f9a81c2"]}')
    with pytest.raises(SettingsError) as caught:
        resolve(project=project)
    assert str(caught.value).startswith(
        "HEADWATER_SUBMIT__ENV=<redacted> is not valid: input should be a valid string"
    )
    assert "tok-3f9a81c2" not in str(caught.value)


def test_file_problems_name_the_file_and_key(project):
    qa = project / "environments" / "qa.toml"
    qa.write_text('[lake]\nkind = "azur"\n')
    with pytest.raises(SettingsError) as caught:
        resolve(env="qa", project=project)
    assert (
        str(caught.value)
        == "lake.kind='azur' in environments/qa.toml is not valid: expected 'local' or 'azure'"
    )
    qa.write_text('[submit]\nkindd = "databricks"\n')
    with pytest.raises(
        SettingsError,
        match=r"unknown setting 'submit.kindd' in environments/qa.toml; did you mean 'submit.kind'\?",
    ):
        resolve(env="qa", project=project)
    qa.write_text('env = "prod"\n')
    with pytest.raises(SettingsError, match="sets 'env'; the environment is chosen with HEADWATER_ENV"):
        resolve(env="qa", project=project)
    qa.write_text("[lake\n")
    with pytest.raises(SettingsError, match="environments/qa.toml: cannot be read as TOML"):
        resolve(env="qa", project=project)
    with pytest.raises(
        SettingsError, match=r"--env='prod': no profile environments/prod.toml .*\(profiles: qa\)"
    ):
        resolve(env="prod", project=project)


def test_the_schema_walk_knows_dict_settings_take_any_key():
    assert unknown_part(("lake", "containers", "landing")) is None
    assert unknown_part(("batching", "datasets", "orders", "max_files")) is None
    assert unknown_part(("batching", "datasets", "orders", "max_filez")) == (3, "max_files")
    assert unknown_part(("submit", "conf", "spark.x")) is None
    assert unknown_part(("lake", "kind", "x")) == (2, None)


def test_the_cli_refuses_a_bad_setting_in_one_line_with_exit_code_2(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("HEADWATER_LAKE__KIND", "azur")
    out = runner.invoke(app, ["status"])
    assert out.exit_code == 2
    assert "HEADWATER_LAKE__KIND='azur' is not valid: expected 'local' or 'azure' [config]" in " ".join(
        out.output.split()
    )
    assert "Traceback" not in out.output
    monkeypatch.delenv("HEADWATER_LAKE__KIND")
    monkeypatch.setenv("HEADWATER_LAKE__ROOTT", "/data")
    out = runner.invoke(app, ["assets", "list"])
    assert out.exit_code == 2
    assert "did you mean HEADWATER_LAKE__ROOT?" in " ".join(out.output.split())


def test_settings_show_names_each_source_and_redacts_secrets(project, monkeypatch):
    monkeypatch.chdir(project)
    (project / "environments" / "qa.toml").write_text(
        '[lake]\nkind = "azure"\naccount = "hwqa"\n'
        # Pasted where it does not belong: a connection string with its key.
        '[submit.conf]\n"spark.hadoop.fs.azure.sas" = "sv=2022-11-02&ss=b&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"\n'
    )
    monkeypatch.setenv("HEADWATER_SUBMIT__ENV", json.dumps({"API_TOKEN": "tok-3f9a81c2"}))
    monkeypatch.setenv("HEADWATER_ABFS_CLIENT_SECRET", "abfs-value-4242")
    out = runner.invoke(app, ["settings", "show", "--env", "qa", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["env"], data["project"]) == ("qa", str(project.resolve()))
    by_name = {row["setting"]: row for row in data["settings"]}
    assert by_name["env"]["source"] == "--env"
    assert (by_name["lake.account"]["value"], by_name["lake.account"]["source"]) == (
        "hwqa",
        "environments/qa.toml",
    )
    assert by_name["batching.max_files"] == {
        "setting": "batching.max_files",
        "value": 10,
        "source": "headwater.toml",
    }
    assert by_name["lake.blob_endpoint"]["source"] == "default"
    assert by_name["submit.env.API_TOKEN"]["value"] == REDACTED
    assert by_name["submit.env.API_TOKEN"]["source"] == "HEADWATER_SUBMIT__ENV"
    assert by_name["submit.conf.spark.hadoop.fs.azure.sas"]["value"] == REDACTED
    assert by_name["spark.auth.client_secret_name"]["note"] == "names a secret: set"
    for secret in ("tok-3f9a81c2", "abfs-value-4242", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA"):
        assert secret not in out.output

    people = runner.invoke(app, ["settings", "show", "--env", "qa"])
    assert people.exit_code == 0 and "environments/qa.toml" in people.output
    assert "tok-3f9a81c2" not in people.output

    bad = runner.invoke(app, ["settings", "show", "--env", "stage"])
    assert bad.exit_code == 2 and "--env='stage' is not valid" in bad.output


# --- the repository's own project file and profiles --------------------------------------------
PROFILES = sorted((REPO / "environments").glob("*.toml"))


def test_the_repository_has_a_profile_per_environment():
    assert [p.stem for p in PROFILES] == ["dev", "prod", "qa"]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_each_profile_resolves(profile):
    resolved = resolve(env=profile.stem, project=REPO)
    assert resolved.profile == profile
    if profile.stem != "dev":
        assert resolved.settings.lake.kind == "azure" and resolved.settings.lake.account
        assert resolved.settings.secrets.kind != "env"  # the Spark side reads a vault or scope
        assert resolved.settings.ml.configured


def _values(data):
    if isinstance(data, dict):
        for value in data.values():
            yield from _values(value)
    elif isinstance(data, list):
        for value in data:
            yield from _values(value)
    else:
        yield str(data)


@pytest.mark.parametrize("file", [REPO / "headwater.toml", *PROFILES], ids=lambda p: p.name)
def test_no_profile_holds_a_secret_shaped_value(file):
    values = list(_values(tomllib.loads(file.read_text())))
    assert values  # the scan reads something
    assert [v for v in values if looks_secret(v)] == []
    assert [line for line in file.read_text().splitlines() if looks_secret(line)] == []


@pytest.mark.parametrize(
    "secret",
    [
        "DefaultEndpointsProtocol=https;AccountName=hw;AccountKey=bm90IGEgcmVhbCBrZXkgYXQgYWxs==;",
        "https://hw.blob.core.windows.net/c?sv=2022-11-02&sig=abcDEF123%2Bxyz",
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x;Uid=u;Pwd=hunter2;",
        "dapi0123456789abcdef0123456789abcdef",
        "Zx8Q~abcDEF12345ghiJKL67890mnoPQRstuVWX",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMxMjMifQ.c2lnbmF0dXJl",
    ],
)
def test_the_secret_scan_recognises_secrets(secret):
    assert looks_secret(secret)


@pytest.mark.parametrize(
    "value",
    [
        "https://hw-qa-kv.vault.azure.net",
        "abfss://system@hwprodlake.dfs.core.windows.net/code/launch.py",
        "00000000-0000-0000-0000-000000000000",
        "/Volumes/headwater/qa/wheels/headwater-0.1.0-py3-none-any.whl",
        "15.4.x-scala2.12",
        "@Microsoft.KeyVault(SecretUri=https://hw-kv.vault.azure.net/secrets/sql-connection/)",
    ],
)
def test_the_secret_scan_passes_names_urls_and_references(value):
    assert not looks_secret(value)


def test_a_cluster_run_gets_the_profile_it_cannot_read():
    from ingestion.remote.libraries import cluster_environment

    qa = resolve(env="qa", project=REPO).settings
    env = cluster_environment(qa, qa.env)
    assert env["HEADWATER_ENV"] == "qa"
    assert (env["HEADWATER_LAKE__KIND"], env["HEADWATER_LAKE__ACCOUNT"]) == ("azure", "hwqalake")
    assert (env["HEADWATER_ML__WORKSPACE"], env["HEADWATER_ML__RESOURCE_GROUP"]) == (
        "mlw-headwater-qa",
        "rg-headwater-qa",
    )
    assert (env["HEADWATER_SECRETS__KIND"], env["HEADWATER_SECRETS__VAULT_URL"]) == (
        "keyvault",
        "https://hw-qa-kv.vault.azure.net",
    )
    assert [v for v in env.values() if looks_secret(v)] == []
    dev = resolve(env="dev", project=REPO).settings
    assert not any(
        k.startswith(("HEADWATER_ML__", "HEADWATER_SECRETS__")) for k in cluster_environment(dev, dev.env)
    )


def test_a_secret_is_read_from_the_store_settings_name(monkeypatch):
    from ingestion.core.errors import ConfigError
    from ingestion.core.secrets import EnvSecrets, KeyVaultSecrets, secret_store

    monkeypatch.setenv("CLUB_SQL_CONNECTION", "Driver={X};Pwd=pw-7781;")
    settings = Settings()
    assert isinstance(secret_store(settings), EnvSecrets)
    value = settings.secret("CLUB_SQL_CONNECTION")
    assert value is not None and value.get_secret_value() == "Driver={X};Pwd=pw-7781;"
    assert "pw-7781" not in repr(value) and settings.secret("NOT_SET_ANYWHERE") is None

    vault = Settings(secrets={"kind": "keyvault", "vault_url": "https://hw-qa-kv.vault.azure.net"})
    assert isinstance(secret_store(vault), KeyVaultSecrets)

    monkeypatch.setenv(
        "CLUB_SQL_CONNECTION", "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/club/)"
    )
    with pytest.raises(
        ConfigError, match="CLUB_SQL_CONNECTION holds a Key Vault reference that was not resolved"
    ):
        settings.secret("CLUB_SQL_CONNECTION")
