import hashlib
import io

import pytest
from storage_contract import race_exclusive_creates

from ingestion.core.errors import NotFoundError, PreconditionFailedError, StorageError
from ingestion.core.storage import LocalStorage


@pytest.fixture
def st(tmp_path):
    return LocalStorage(tmp_path)


def test_exclusive_create_has_one_winner(st):
    wins, losses = race_exclusive_creates(st, "system/x.json")
    assert len(wins) == 1 and len(losses) == 7
    assert st.read_bytes("system/x.json") == str(wins[0]).encode()


def test_if_match_replaces_only_the_version_read(st):
    first = st.write_bytes("system/a", b"1")
    second = st.write_bytes("system/a", b"2", if_match=first.etag)
    assert second.etag != first.etag
    with pytest.raises(PreconditionFailedError):
        st.write_bytes("system/a", b"3", if_match=first.etag)
    assert st.read_bytes("system/a") == b"2"
    with pytest.raises(PreconditionFailedError):
        st.delete("system/a", if_match=first.etag)
    st.delete("system/a", if_match=second.etag)
    assert not st.exists("system/a")


def test_list_stream_copy_hash_and_uri(st, tmp_path):
    data = b"x" * (9 * 1024 * 1024 + 3)
    st.write_stream("landing/o/b.csv", io.BytesIO(data))
    st.write_bytes("landing/o/a.csv", b"a")
    st.write_bytes("landing/p/c.csv", b"c")
    assert [o.path for o in st.list("landing/o")] == ["landing/o/a.csv", "landing/o/b.csv"]
    assert [o.size for o in st.list("landing/o")] == [1, len(data)]
    assert st.sha256("landing/o/b.csv") == hashlib.sha256(data).hexdigest()
    st.copy("landing/o/a.csv", "quarantine/o/a.csv")
    assert st.read_bytes("quarantine/o/a.csv") == b"a"
    assert st.uri("bronze/orders") == (tmp_path / "bronze" / "orders").as_uri()
    assert list(st.list("landing/none")) == []


def test_errors_name_the_path(st):
    with pytest.raises(NotFoundError, match="landing/missing.csv"):
        st.read_bytes("landing/missing.csv")
    with pytest.raises(StorageError, match="first segment must be one of"):
        st.write_bytes("elsewhere/x", b"")
