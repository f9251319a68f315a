"""BlobStorage against Azurite: conditional writes, streamed I/O, listing, URIs, settings."""

from __future__ import annotations

import io

import pytest
from storage_contract import race_exclusive_creates

from ingestion.core.config import LakeSettings, Settings
from ingestion.core.errors import (
    AlreadyExistsError,
    ConfigError,
    NotFoundError,
    PreconditionFailedError,
)
from ingestion.core.storage import open_storage
from ingestion.core.storage.azure_blob import BlobStorage, normalize_etag
from ingestion.testing.azurite import CONNECTION_ENV, azurite, azurite_storage  # noqa: F401

pytestmark = pytest.mark.azurite


def test_exclusive_create_is_if_none_match_star(azurite_storage):  # noqa: F811
    st = azurite_storage
    first = st.write_bytes("system/ledger/orders/k.json", b"one", exclusive=True)
    with pytest.raises(AlreadyExistsError):
        st.write_bytes("system/ledger/orders/k.json", b"two", exclusive=True)
    assert st.read_bytes("system/ledger/orders/k.json") == b"one"
    assert st.info("system/ledger/orders/k.json").etag == first.etag


def test_exactly_one_of_racing_exclusive_creates_wins(azurite_storage):  # noqa: F811
    st = azurite_storage
    wins, losses = race_exclusive_creates(st, "system/leases/orders.json")
    assert len(wins) == 1 and len(losses) == 7
    assert st.read_bytes("system/leases/orders.json") == str(wins[0]).encode()


def test_if_match_replaces_only_the_expected_version(azurite_storage):  # noqa: F811
    st = azurite_storage
    v1 = st.write_bytes("system/x.json", b"1")
    v2 = st.write_bytes("system/x.json", b"2", if_match=v1.etag)
    assert v2.etag != v1.etag
    with pytest.raises(PreconditionFailedError):
        st.write_bytes("system/x.json", b"3", if_match=v1.etag)  # stale etag
    with pytest.raises(PreconditionFailedError):
        st.write_bytes("system/absent.json", b"3", if_match=v1.etag)
    # Unquoted etags (as listings and Event Grid spell them) mean the same version.
    st.write_bytes("system/x.json", b"4", if_match=v2.etag.strip('"'))
    assert st.read_bytes("system/x.json") == b"4"


def test_conditional_delete(azurite_storage):  # noqa: F811
    st = azurite_storage
    v1 = st.write_bytes("system/x.json", b"1")
    v2 = st.write_bytes("system/x.json", b"2")
    with pytest.raises(PreconditionFailedError):
        st.delete("system/x.json", if_match=v1.etag)
    st.delete("system/x.json", if_match=v2.etag)
    assert st.info("system/x.json") is None
    st.delete("system/x.json")  # absent is not an error


def test_info_etags_match_between_properties_and_listing(azurite_storage):  # noqa: F811
    st = azurite_storage
    written = st.write_bytes("landing/orders/a.csv", b"a,b\n1,2\n")
    (listed,) = list(st.list("landing/orders"))
    info = st.info("landing/orders/a.csv")
    assert written.etag == info.etag == listed.etag and info.etag.startswith('"')
    assert (info.path, info.size) == ("landing/orders/a.csv", 8)
    assert info.modified.tzinfo is not None


def test_list_is_recursive_ordered_and_folder_bounded(azurite_storage):  # noqa: F811
    st = azurite_storage
    for p in (
        "landing/orders/2026/b.csv",
        "landing/orders/a.csv",
        "landing/orders2/c.csv",
        "landing/customers/x.jsonl",
    ):
        st.write_bytes(p, b"x")
    assert [o.path for o in st.list("landing/orders")] == [
        "landing/orders/2026/b.csv",
        "landing/orders/a.csv",
    ]
    assert [o.path for o in st.list("landing/orders/a.csv")] == ["landing/orders/a.csv"]
    assert len(list(st.list("landing"))) == 4
    assert list(st.list("landing/nothing")) == []


def test_zones_live_in_their_own_containers(azurite_storage):  # noqa: F811
    st = azurite_storage
    st.write_bytes("bronze/orders/_delta_log/x.json", b"{}")
    container = st.service.get_container_client(st.container_name("bronze"))
    assert [b.name for b in container.list_blobs()] == ["orders/_delta_log/x.json"]
    assert list(st.list("silver")) == []


def test_streamed_read_write_and_copy(azurite_storage):  # noqa: F811
    st = azurite_storage
    body = bytes(range(256)) * (40 * 1024 + 3)  # ~10 MB: several ranges and blocks
    info = st.write_stream("landing/orders/big.csv", io.BytesIO(body))
    assert info.size == len(body)
    with st.open_read("landing/orders/big.csv") as fh:
        parts = []
        while chunk := fh.read(777_777):
            parts.append(chunk)
    assert b"".join(parts) == body
    st.copy("landing/orders/big.csv", "quarantine/orders/files/big.csv")
    assert st.sha256("quarantine/orders/files/big.csv") == st.sha256("landing/orders/big.csv")
    import hashlib

    assert st.sha256("landing/orders/big.csv") == hashlib.sha256(body).hexdigest()


def test_missing_objects(azurite_storage):  # noqa: F811
    st = azurite_storage
    assert st.info("landing/none.csv") is None and not st.exists("landing/none.csv")
    with pytest.raises(NotFoundError):
        st.open_read("landing/none.csv")


def test_uri_is_abfss_on_the_dfs_endpoint(azurite_storage):  # noqa: F811
    st = azurite_storage
    assert st.uri("bronze/orders") == (
        f"abfss://{st.container_name('bronze')}@devstoreaccount1.dfs.core.windows.net/orders"
    )


def test_from_settings_with_a_named_connection_string(azurite, azurite_storage):  # noqa: F811
    settings = Settings(
        lake=LakeSettings(
            kind="azure",
            account="lake1",
            containers=azurite_storage.containers,
            connection_string_env=CONNECTION_ENV,
        )
    )
    st = open_storage(settings)
    assert isinstance(st, BlobStorage)
    azurite_storage.write_bytes("landing/a.csv", b"1")
    assert st.read_bytes("landing/a.csv") == b"1"
    assert (
        st.uri("landing/a.csv")
        == f"abfss://{azurite_storage.container_name('landing')}@lake1.dfs.core.windows.net/a.csv"
    )


def test_from_settings_errors_name_what_is_missing(monkeypatch):
    monkeypatch.delenv("HEADWATER_UNSET_CONN", raising=False)
    with pytest.raises(ConfigError, match="HEADWATER_UNSET_CONN"):
        BlobStorage.from_settings(
            Settings(lake=LakeSettings(kind="azure", connection_string_env="HEADWATER_UNSET_CONN"))
        )
    with pytest.raises(ConfigError, match="lake.account"):
        BlobStorage.from_settings(Settings(lake=LakeSettings(kind="azure")))


def test_from_settings_uses_default_credential_and_sovereign_suffix():
    st = BlobStorage.from_settings(
        Settings(
            lake=LakeSettings(
                kind="azure",
                account="lake1",
                blob_endpoint="https://lake1.blob.core.chinacloudapi.cn",
            )
        )
    )
    from azure.identity import DefaultAzureCredential

    assert isinstance(st.service.credential, DefaultAzureCredential)
    assert st.uri("gold/x") == "abfss://gold@lake1.dfs.core.chinacloudapi.cn/x"


def test_normalize_etag():
    assert normalize_etag("0x8D1") == normalize_etag('"0x8D1"') == normalize_etag('W/"0x8D1"') == '"0x8D1"'


def test_delta_rs_reads_with_a_bearer_token_from_the_credential_and_never_with_a_shared_key(
    azurite_storage,  # noqa: F811
):
    from azure.core.credentials import AccessToken
    from azure.storage.blob import BlobServiceClient

    class Credential:  # a TokenCredential, as DefaultAzureCredential is one
        def __init__(self) -> None:
            self.scopes: list[tuple[str, ...]] = []

        def get_token(self, *scopes: str, **_: object) -> AccessToken:
            self.scopes.append(scopes)
            return AccessToken("token-for-storage", 2_000_000_000)

    cred = Credential()
    st = BlobStorage(
        BlobServiceClient("https://lake1.blob.core.windows.net", credential=cred), account="lake1"
    )
    assert st.delta_rs_options() == {"bearer_token": "token-for-storage"}
    assert cred.scopes == [("https://storage.azure.com/.default",)]
    assert azurite_storage.delta_rs_options() is None  # a shared key (Azurite): Spark reads instead
