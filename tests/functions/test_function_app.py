"""The Function App as the host indexes it: loaded without pyspark, bindings as serialized."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter where `import pyspark` raises, then prints every function's
# bindings exactly as the worker sends them to the host: the SDK's own serialization, and the
# extension-aware one the worker uses when a parameter is an SDK type (deferred binding).
PROBE = r"""
import importlib.abc, json, sys, typing

class NoSpark(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark.") or name in ("delta", "pandera.pyspark"):
            raise ImportError(f"{name} is blocked in this test (the Function App must not need it)")
        return None

sys.meta_path.insert(0, NoSpark())
import function_app
from azurefunctions.extensions.base import meta

class ParamTypeInfo(typing.NamedTuple):
    binding_name: str
    pytype: type

out = {}
for fn in function_app.app.get_functions():
    user = fn.get_user_function()
    hints = typing.get_type_hints(user)
    by_name = {b.name: b for b in fn.get_bindings()}
    input_types = {n: ParamTypeInfo(by_name[n].type, hints[n]) for n in by_name if n in hints}
    raw = [json.loads(r) for r in fn.get_raw_bindings()]
    worker_raw, _ = meta._ConverterMeta.get_raw_bindings(fn, input_types)
    out[fn.get_function_name()] = {
        "raw": raw,
        "worker": [json.loads(r) for r in worker_raw],
        "script": fn.function_script_file,
    }
out["_spark_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "delta"))
print(json.dumps(out))
"""


def _probe() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_function_app_loads_without_pyspark_and_serializes_bindings():
    out = _probe()
    assert out.pop("_spark_loaded") == []
    assert set(out) == {"landing_blob", "landing_events", "landing_reconcile", "status"}

    (blob,) = out["landing_blob"]["raw"]
    assert blob == {
        "direction": "IN",
        "type": "blobTrigger",
        "name": "blob",
        "path": "%HEADWATER_LAKE__CONTAINERS__LANDING%/{name}",
        "connection": "LandingStorage",
        "source": "EventGrid",
    }
    # What the worker sends when the parameter is the SDK's BlobClient: deferred binding, i.e.
    # the host passes a reference (model binding data), never the blob's content.
    (blob_w,) = out["landing_blob"]["worker"]
    assert blob_w["source"] == "EventGrid" and isinstance(blob_w["source"], str)
    assert blob_w["properties"] == {"SupportsDeferredBinding": True}
    assert blob_w["connection"] == "LandingStorage"
    assert "dataType" not in blob_w  # no "binary"/"stream": the content is not pushed

    (events,) = out["landing_events"]["raw"]
    assert events == {"direction": "IN", "type": "eventGridTrigger", "name": "event"}
    (events_w,) = out["landing_events"]["worker"]
    assert events_w["properties"] == {"SupportsDeferredBinding": False}

    (timer,) = out["landing_reconcile"]["raw"]
    assert timer == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "0 */5 * * * *",
        "runOnStartup": False,
        "useMonitor": True,
    }
    for fn in out.values():
        assert fn["script"] == "function_app.py"


def test_host_json_sets_bundle_logging_and_blob_retry():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    bundle = host["extensionBundle"]
    assert bundle["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert bundle["version"].startswith("[4.")  # blob extension 5.x: Event Grid source, SDK types
    assert host["logging"]["logLevel"]["default"]
    blobs = host["extensions"]["blobs"]
    # The host's own poison queue must come after headwater parks a blob (ingestion.poison).
    from ingestion.core.config import Settings

    assert blobs["poisonBlobThreshold"] > Settings().poison_max_attempts
    assert blobs["maxDegreeOfParallelism"] >= 1


def test_settings_example_names_every_setting_without_secrets():
    example = json.loads((ROOT / "local.settings.json.example").read_text())
    values = example["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert "HEADWATER_LAKE__CONTAINERS__LANDING" in values  # the trigger path's %setting%
    assert "LandingStorage__blobServiceUri" in values  # identity-based trigger connection
    assert "LandingStorage__queueServiceUri" in values
    text = json.dumps(example).lower()
    for secret_marker in ("accountkey=", "sharedaccesssignature", "sig=", "client_secret"):
        assert secret_marker not in text


def test_requirements_install_the_functions_extra_only():
    lines = [
        ln.strip()
        for ln in (ROOT / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert any(ln.replace(" ", "").endswith(".[functions]") for ln in lines), lines
    assert not any("pyspark" in ln or "delta" in ln or "[local" in ln for ln in lines)


# Handles events end to end (catalog, ledger, batching, poison) with pyspark blocked: the first
# invocation in a Function App builds all of this. A due batch then fails to start in-process
# with a message that says why, and the files stay queued.
HANDLE = (
    PROBE.split("import function_app")[0]
    + r"""
import json, sys, tempfile
from ingestion.core.config import BatchingSettings, LakeSettings, Settings
from ingestion.core.storage import LocalStorage
from functions.runtime import LandingRuntime

root = tempfile.mkdtemp()
settings = Settings(lake=LakeSettings(root=root), batching=BatchingSettings(max_files=2))
lake = LocalStorage(root)
rt = LandingRuntime(settings, lake)
out = []
for name in ("orders/a.csv", "orders/b.csv"):
    info = lake.write_bytes("landing/" + name, b"order_id\nO-0001\n")
    out.append(rt.handle_file(name, etag=info.etag, size=info.size).summary())
report = rt.reconcile(min_age=0).summary()
print(json.dumps({"handled": out, "reconcile": report, "queued": len(rt.ledger.queued("orders")),
                  "spark": sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "delta"))}))
"""
)


def test_events_are_handled_without_pyspark():
    proc = subprocess.run(
        [sys.executable, "-c", HANDLE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["spark"] == []
    assert [h["outcome"] for h in out["handled"]] == ["queued", "queued"]
    batch = out["handled"][1]["batch"]
    assert batch["outcome"] == "failed"
    assert "install the `local` extra" in batch["error"]
    assert out["queued"] == 2
    assert out["reconcile"]["outcomes"] == {"known": 2}
