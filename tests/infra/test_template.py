"""``infra/main.json`` and ``infra/deploy.sh``, checked by reading them (no Azure, no ARM engine here).

The template is parsed and its expressions evaluated by ``tests.infra.arm`` for given parameter
values, so role assignments, filters, app settings and names are asserted as Azure would
compute them; the deployment script runs against a stub ``az`` that records every call.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ingestion.core.config import ZONES
from tests.infra import arm

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "main.json"
DEPLOY_SH = ROOT / "infra" / "deploy.sh"
TEMPLATE = arm.load(TEMPLATE_PATH)

PREFIX = "hwtr"
RG = arm.RG_ID
ST = "/providers/Microsoft.Storage/storageAccounts"

# Built-in role definitions (Microsoft's "Azure built-in roles" pages: Storage, Security).
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
TABLE_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
ACCOUNT_CONTRIBUTOR = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
FILE_PRIVILEGED_CONTRIBUTOR = "69566ab7-960f-475b-8e7c-b3118f30c6bd"
KV_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KV_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"

API_VERSIONS = {
    "Microsoft.Storage/storageAccounts": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2025-01-01",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Web/sites/config": "2024-04-01",
    "Microsoft.KeyVault/vaults": "2024-11-01",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.EventGrid/systemTopics": "2025-02-15",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": "2025-02-15",
    "Microsoft.MachineLearningServices/workspaces": "2025-06-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
}

W1, W2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
S1 = "33333333-3333-3333-3333-333333333333"
G1 = "44444444-4444-4444-4444-444444444444"
DEPLOYER = "55555555-5555-5555-5555-555555555555"


def evaluator(**params) -> arm.Evaluator:
    return arm.Evaluator(TEMPLATE, {"prefix": PREFIX, **params})


def deployed(**params) -> list[arm.Deployed]:
    return [r for r in arm.expand(evaluator(**params)) if r.deployed]


def one(resources: list[arm.Deployed], type_: str, name: str) -> arm.Deployed:
    found = [r for r in resources if r.type == type_ and r.name == name]
    assert len(found) == 1, f"{type_} {name}: {len(found)} found"
    return found[0]


@pytest.fixture(scope="module")
def ev() -> arm.Evaluator:
    return evaluator()


@pytest.fixture(scope="module")
def names(ev) -> dict[str, str]:
    keys = [
        "lakeAccountName",
        "hostStorageName",
        "mlStorageName",
        "keyVaultName",
        "mlKeyVaultName",
        "functionAppName",
        "systemTopicName",
        "mlWorkspaceName",
        "appInsightsName",
        "logAnalyticsName",
        "planName",
    ]
    return {k: ev.variable(k) for k in keys}


@pytest.fixture(scope="module")
def ids(names) -> dict[str, str]:
    return {
        "lake": f"{RG}{ST}/{names['lakeAccountName']}",
        "host": f"{RG}{ST}/{names['hostStorageName']}",
        "mlStorage": f"{RG}{ST}/{names['mlStorageName']}",
        "keyVault": f"{RG}/providers/Microsoft.KeyVault/vaults/{names['keyVaultName']}",
        "mlKeyVault": f"{RG}/providers/Microsoft.KeyVault/vaults/{names['mlKeyVaultName']}",
        "site": f"{RG}/providers/Microsoft.Web/sites/{names['functionAppName']}",
        "topic": f"{RG}/providers/Microsoft.EventGrid/systemTopics/{names['systemTopicName']}",
        "ml": f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/{names['mlWorkspaceName']}",
        "appi": f"{RG}/providers/Microsoft.Insights/components/{names['appInsightsName']}",
        "law": f"{RG}/providers/Microsoft.OperationalInsights/workspaces/{names['logAnalyticsName']}",
    }


def container(account_id: str, name: str) -> str:
    return f"{account_id}/blobServices/default/containers/{name}"


# ---- structure and expressions ----------------------------------------------------------------


def test_schema_and_api_versions():
    assert (
        TEMPLATE["$schema"]
        == "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
    )
    assert TEMPLATE["contentVersion"] == "1.0.0.0"
    used = {r["type"]: r["apiVersion"] for r in TEMPLATE["resources"]}
    assert used == API_VERSIONS
    for r in TEMPLATE["resources"]:
        assert r["apiVersion"] == API_VERSIONS[r["type"]], r["type"]
        assert not r["apiVersion"].endswith("-preview"), r["type"]


def test_every_expression_parses_and_names_only_declared_parameters_and_variables():
    declared = set(TEMPLATE["parameters"])
    defined = set(TEMPLATE["variables"])
    used_params, used_vars, functions = set(), set(), set()
    count = 0
    for path, tree in arm.expressions(TEMPLATE):
        count += 1
        for node in arm.walk(tree):
            if isinstance(node, arm.Call):
                functions.add(node.name)
                if node.name in ("parameters", "variables"):
                    assert len(node.args) == 1 and isinstance(node.args[0], arm.Lit), path
                    name = node.args[0].value
                    if node.name == "parameters":
                        assert name in declared, f"{path}: parameters({name!r}) is not declared"
                        used_params.add(name)
                    else:
                        assert name in defined, f"{path}: variables({name!r}) is not defined"
                        used_vars.add(name)
                if node.name == "copyIndex":
                    index = int(path.split("[", 2)[1].split("]")[0])
                    assert path.startswith("$.resources[") and "copy" in TEMPLATE["resources"][index], path
    assert count > 100
    assert used_params == declared, f"declared but never used: {declared - used_params}"
    # zones documents the containers (one per headwater zone); everything else is used.
    assert defined - used_vars == {"zones"}
    assert TEMPLATE["variables"]["zones"] == list(ZONES)
    known = {
        "parameters", "variables", "format", "resourceId", "subscriptionResourceId", "extensionResourceId",
        "reference", "guid", "if", "equals", "not", "and", "empty", "length", "take", "toLower",
        "uniqueString", "resourceGroup", "subscription", "environment", "union", "createObject",
        "uriComponent", "copyIndex", "true", "null",
    }  # fmt: skip
    assert functions <= known, functions - known


def test_the_scanner_catches_undeclared_names():
    broken = json.loads(json.dumps(TEMPLATE))
    broken["outputs"]["x"] = {
        "type": "string",
        "value": "[format('{0}', parameters('nope'), variables('neither'))]",
    }
    found = set()
    for _, tree in arm.expressions(broken):
        for node in arm.walk(tree):
            if isinstance(node, arm.Call) and node.name in ("parameters", "variables"):
                found.add(node.args[0].value)
    assert {"nope", "neither"} <= found - set(TEMPLATE["parameters"]) - set(TEMPLATE["variables"])
    with pytest.raises(KeyError, match="nope"):
        arm.Evaluator(broken, {"prefix": PREFIX}).value(broken["outputs"]["x"]["value"])


def test_referenced_resources_exist_in_the_template_or_are_well_known():
    """Every resourceId / reference / dependsOn names a resource of this template.

    Well known: built-in role definitions, and the landing_events function, which the code
    deployment creates (the phase-2 subscription names it).
    """
    ev = evaluator(
        **SAMPLE, deployEventGridSubscription=True, blobsExtensionKey="k", functionLandsSqlChanges=True
    )
    all_ids = {r.id.lower() for r in arm.expand(ev)}
    ids_seen = 0
    for res_index, res in enumerate(TEMPLATE["resources"]):
        for path, tree in arm.expressions(res):
            for node in arm.walk(tree):
                if not isinstance(node, arm.Call) or node.name not in (
                    "resourceId",
                    "reference",
                    "extensionResourceId",
                ):
                    continue
                if node.name == "reference":
                    node = node.args[0]
                value = ev.eval(node, 0 if "copy" in res else None)
                ids_seen += 1
                if "/providers/Microsoft.Web/sites/" in value and value.endswith("/functions/landing_events"):
                    continue
                assert value.lower() in all_ids, (
                    f"resources[{res_index}]{path[1:]}: {value} is not in the template"
                )
        for dep in res.get("dependsOn", []):
            value = ev.value(dep, 0)
            assert value.lower() in all_ids, f"resources[{res_index}].dependsOn: {value}"
    assert ids_seen > 50
    for role in TEMPLATE["variables"]["roles"].values():
        assert role.startswith("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '")


def test_names_fit_azure_limits_for_the_longest_prefix():
    ev = arm.Evaluator(TEMPLATE, {"prefix": "abcdefghij", "environment": "prod"})
    for var in ("lakeAccountName", "hostStorageName", "mlStorageName"):
        assert re.fullmatch(r"[a-z0-9]{3,24}", ev.variable(var)), (var, ev.variable(var))
    for var in ("keyVaultName", "mlKeyVaultName"):
        assert re.fullmatch(r"[a-z][a-z0-9-]{1,22}[a-z0-9]", ev.variable(var)), (var, ev.variable(var))
    assert len(ev.variable("mlWorkspaceName")) <= 33
    assert re.fullmatch(r"[a-z0-9-]{2,60}", ev.variable("functionAppName"))
    assert TEMPLATE["parameters"]["prefix"]["maxLength"] == 10
    # Distinct accounts (one lake, one host storage, one for Azure ML), stable per resource group.
    accounts = {ev.variable(v) for v in ("lakeAccountName", "hostStorageName", "mlStorageName")}
    assert len(accounts) == 3
    assert arm.Evaluator(TEMPLATE, {"prefix": "abcdefghij", "environment": "prod"}).variable(
        "lakeAccountName"
    ) == ev.variable("lakeAccountName")


# ---- storage ---------------------------------------------------------------------------------


def test_the_lake_is_hierarchical_keyless_and_private(names):
    res = deployed()
    lake = one(res, "Microsoft.Storage/storageAccounts", names["lakeAccountName"])
    p = lake.properties
    assert lake.body["kind"] == "StorageV2"
    assert p["isHnsEnabled"] is True
    assert p["supportsHttpsTrafficOnly"] is True
    assert p["minimumTlsVersion"] == "TLS1_2"
    assert p["allowBlobPublicAccess"] is False
    assert p["allowSharedKeyAccess"] is False
    assert lake.body["sku"]["name"] == "Standard_LRS"
    prod = one(
        deployed(environment="prod"),
        "Microsoft.Storage/storageAccounts",
        evaluator(environment="prod").variable("lakeAccountName"),
    )
    assert prod.body["sku"]["name"] == "Standard_ZRS"


def test_a_container_per_zone_and_a_dead_letter_container(names):
    res = deployed()
    lake = names["lakeAccountName"]
    lake_containers = {
        r.name.split("/")[-1]: r.properties
        for r in res
        if r.type == "Microsoft.Storage/storageAccounts/blobServices/containers"
        and r.name.startswith(f"{lake}/default/")
    }
    assert set(lake_containers) == {*ZONES, "eventgrid-deadletter"}
    assert all(p == {"publicAccess": "None"} for p in lake_containers.values())
    one(res, "Microsoft.Storage/storageAccounts/blobServices", f"{lake}/default")


def test_host_and_ml_storage_are_keyless_and_not_hierarchical(names):
    res = deployed()
    for account in (names["hostStorageName"], names["mlStorageName"]):
        p = one(res, "Microsoft.Storage/storageAccounts", account).properties
        assert p["allowSharedKeyAccess"] is False
        assert p["isHnsEnabled"] is False
        assert p["allowBlobPublicAccess"] is False
        assert p["minimumTlsVersion"] == "TLS1_2"
    one(
        res,
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        f"{names['hostStorageName']}/default/app-package",
    )


# ---- the Function App --------------------------------------------------------------------------


def test_function_app_is_linux_python_311_v4_on_elastic_premium_with_its_own_identity(names, ids):
    res = deployed()
    plan = one(res, "Microsoft.Web/serverfarms", names["planName"])
    assert plan.body["sku"] == {"name": "EP1", "tier": "ElasticPremium"}
    assert plan.properties["reserved"] is True
    site = one(res, "Microsoft.Web/sites", names["functionAppName"])
    assert site.body["kind"] == "functionapp,linux"
    assert site.body["identity"] == {"type": "SystemAssigned"}
    p = site.properties
    assert p["serverFarmId"] == f"{RG}/providers/Microsoft.Web/serverfarms/{names['planName']}"
    assert p["httpsOnly"] is True and p["reserved"] is True
    assert p["keyVaultReferenceIdentity"] == "SystemAssigned"
    assert p["siteConfig"]["linuxFxVersion"] == "Python|3.11"
    assert p["siteConfig"]["minTlsVersion"] == "1.2"
    assert p["siteConfig"]["ftpsState"] == "Disabled"
    assert "appSettings" not in p["siteConfig"]  # the sites/config resource owns them


def app_settings(**params) -> dict:
    ev = evaluator(**params)
    config = [r for r in arm.expand(ev) if r.type == "Microsoft.Web/sites/config"]
    assert len(config) == 1 and config[0].name == f"{ev.variable('functionAppName')}/appsettings"
    return config[0].properties


def test_app_settings_configure_headwater_and_the_identity_based_connections(names, ids):
    s = app_settings()
    lake = names["lakeAccountName"]
    assert s["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    assert s["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert s["AzureWebJobsStorage__accountName"] == names["hostStorageName"]
    assert s["LandingStorage__blobServiceUri"] == f"https://{lake}.blob.core.windows.net"
    assert s["LandingStorage__queueServiceUri"] == f"https://{lake}.queue.core.windows.net"
    assert s["HEADWATER_ENV"] == "dev"
    # The deployed package holds headwater.toml and environments/ (deploy.sh): the app reads them.
    assert s["HEADWATER_PROJECT"] == "/home/site/wwwroot"
    assert s["HEADWATER_LAKE__KIND"] == "azure"
    assert s["HEADWATER_LAKE__ACCOUNT"] == lake
    assert s["HEADWATER_LAKE__BLOB_ENDPOINT"] == f"https://{lake}.blob.core.windows.net"
    for zone in ZONES:
        assert s[f"HEADWATER_LAKE__CONTAINERS__{zone.upper()}"] == zone
    assert s["HEADWATER_ML__SUBSCRIPTION_ID"] == arm.SUBSCRIPTION_ID
    assert s["HEADWATER_ML__RESOURCE_GROUP"] == arm.RESOURCE_GROUP
    assert s["HEADWATER_ML__WORKSPACE"] == names["mlWorkspaceName"]
    assert s["HEADWATER_SECRETS__KIND"] == "env"
    assert s["HEADWATER_SECRETS__VAULT_URL"] == f"https://{names['keyVaultName']}.vault.azure.net"
    assert s["HEADWATER_SUBMIT__KIND"] == "databricks"
    assert s["APPLICATIONINSIGHTS_CONNECTION_STRING"] == arm.Ref(ids["appi"], ("ConnectionString",))
    package = f"https://{names['hostStorageName']}.blob.core.windows.net/app-package/headwater-functions.zip"
    assert s["WEBSITE_RUN_FROM_PACKAGE"] == package
    assert s["WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID"] == "SystemAssigned"
    # Identity-based host storage, no Azure Files content share (its setting is a key-based connection string).
    for forbidden in (
        "AzureWebJobsStorage",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTSHARE",
    ):
        assert forbidden not in s
    assert app_settings(environment="prod", submitKind="synapse")["HEADWATER_ENV"] == "prod"
    assert app_settings(submitKind="synapse")["HEADWATER_SUBMIT__KIND"] == "synapse"


def test_app_settings_cover_every_setting_of_local_settings_example():
    """The example names every setting the app reads; those without a code default are all set here."""
    example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    # Thresholds with defaults in ingestion/core/config.py; a deployment sets them in extraAppSettings.
    defaults_in_code = ("HEADWATER_BATCHING__", "HEADWATER_POISON_")
    required = {k for k in example if not k.startswith(defaults_in_code)}
    missing = required - set(app_settings())
    assert not missing, missing


def test_the_trigger_settings_match_the_code():
    runtime = (ROOT / "functions" / "runtime.py").read_text()
    connection = re.search(r'LANDING_CONNECTION\s*=\s*"([^"]+)"', runtime)
    assert connection, "functions/runtime.py names the trigger connection"
    s = app_settings()
    assert f"{connection.group(1)}__blobServiceUri" in s
    assert f"{connection.group(1)}__queueServiceUri" in s
    # The trigger's path is %<setting>%/{name}: the setting must be one the template sets.
    path_setting = re.search(r'LANDING_CONTAINER_SETTING\s*=\s*"([^"]+)"', runtime)
    assert path_setting and s[path_setting.group(1)] == "landing"


KV_REFERENCE = re.compile(
    r"^@Microsoft\.KeyVault\(SecretUri=https://[a-z0-9-]+\.vault\.azure\.net/secrets/[A-Za-z0-9-]+/\)$"
)
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CONNECTION|SQL|SAS|CREDENTIAL", re.IGNORECASE)
NOT_SECRETS = {
    # An identifier, not a credential (Microsoft: the connection string is not a secret).
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    # Where secrets are resolved, not secrets.
    "HEADWATER_SECRETS__KIND",
    "HEADWATER_SECRETS__VAULT_URL",
}


def test_the_sql_source_connection_is_a_key_vault_reference(names):
    s = app_settings()
    expected = f"@Microsoft.KeyVault(SecretUri=https://{names['keyVaultName']}.vault.azure.net/secrets/headwater-sql-club/)"
    assert s["CLUB_SQL_CONNECTION"] == expected
    assert KV_REFERENCE.match(expected)
    other = app_settings(sqlConnectionSetting="HEADWATER_CRM_SQL", sqlConnectionSecretName="crm-sql")
    assert other["HEADWATER_CRM_SQL"].endswith("/secrets/crm-sql/)") and "CLUB_SQL_CONNECTION" not in other


def test_the_default_sql_setting_is_the_one_a_declared_source_names():
    """schemas/ declares SqlSource(connection_setting=...); the template's default sets that setting."""
    settings = set()
    for path in (ROOT / "schemas").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SqlSource":
                for kw in node.keywords:
                    if kw.arg == "connection_setting" and isinstance(kw.value, ast.Constant):
                        settings.add(kw.value.value)
    assert settings, "no SqlSource in schemas/"
    assert TEMPLATE["parameters"]["sqlConnectionSetting"]["defaultValue"] in settings


def test_every_secret_bearing_setting_is_a_key_vault_reference():
    extra = {"HEADWATER_SUBMIT__DATABRICKS__HOST": "https://adb-1.1.azuredatabricks.net"}
    for s in (app_settings(), app_settings(extraAppSettings=extra)):
        for name, value in s.items():
            if SECRET_NAME.search(name) and name not in NOT_SECRETS:
                assert isinstance(value, str) and KV_REFERENCE.match(value), f"{name} = {value!r}"


def test_template_settings_win_over_extra_settings():
    s = app_settings(
        extraAppSettings={
            "HEADWATER_LAKE__KIND": "local",
            "CLUB_SQL_CONNECTION": "Server=x",
            "HEADWATER_BATCHING__MAX_FILES": "20",
        }
    )
    assert s["HEADWATER_LAKE__KIND"] == "azure"
    assert s["CLUB_SQL_CONNECTION"].startswith("@Microsoft.KeyVault(")
    assert s["HEADWATER_BATCHING__MAX_FILES"] == "20"


LITERAL_SECRETS = re.compile(
    r"AccountKey=|SharedAccessSignature=|SharedAccessKey=|[?&]sig=|\bsig=|Password=|Pwd=|DefaultEndpointsProtocol="
    r"|InstrumentationKey=|listKeys\(|listAccountSas\(|listServiceSas\(|listSecrets\(|BEGIN [A-Z ]*PRIVATE KEY",
    re.IGNORECASE,
)


def test_no_literal_secrets_anywhere():
    text = TEMPLATE_PATH.read_text()
    assert not LITERAL_SECRETS.search(text), LITERAL_SECRETS.search(text)
    assert LITERAL_SECRETS.search("Server=x;Password=hunter2") and LITERAL_SECRETS.search("?sv=2022&sig=abc")
    secure = {
        k for k, p in TEMPLATE["parameters"].items() if p["type"].lower() in ("securestring", "secureobject")
    }
    assert secure == {"blobsExtensionKey"}
    assert TEMPLATE["parameters"]["blobsExtensionKey"]["defaultValue"] == ""
    assert "blobsExtensionKey" not in json.dumps(TEMPLATE["outputs"])
    for name, p in TEMPLATE["parameters"].items():
        if name not in secure:
            assert not LITERAL_SECRETS.search(json.dumps(p.get("defaultValue", ""))), name


# ---- Key Vault, monitoring, Azure ML ------------------------------------------------------------


def test_key_vault_uses_rbac_soft_delete_and_purge_protection_in_prod(names):
    for env, purge, retention in (("dev", None, 7), ("qa", None, 7), ("prod", True, 90)):
        ev = evaluator(environment=env)
        kv = one(
            [r for r in arm.expand(ev) if r.deployed],
            "Microsoft.KeyVault/vaults",
            ev.variable("keyVaultName"),
        )
        p = kv.properties
        assert p["enableRbacAuthorization"] is True
        assert p["enableSoftDelete"] is True
        assert p["enablePurgeProtection"] is purge, env
        assert p["softDeleteRetentionInDays"] == retention
        assert p["tenantId"] == arm.TENANT_ID
        # purge protection can never be set to false; the template leaves it out instead.
        assert p["enablePurgeProtection"] is not False


def test_application_insights_is_workspace_based(names, ids):
    res = deployed()
    appi = one(res, "Microsoft.Insights/components", names["appInsightsName"])
    assert appi.body["kind"] == "web"
    assert appi.properties["WorkspaceResourceId"] == ids["law"]
    assert appi.properties["IngestionMode"] == "LogAnalytics"
    one(res, "Microsoft.OperationalInsights/workspaces", names["logAnalyticsName"])


def test_ml_workspace_links_its_storage_vault_and_insights(names, ids):
    res = deployed()
    ml = one(res, "Microsoft.MachineLearningServices/workspaces", names["mlWorkspaceName"])
    assert ml.body["identity"] == {"type": "SystemAssigned"}
    assert ml.body["kind"] == "Default"
    p = ml.properties
    assert p["storageAccount"] == ids["mlStorage"]
    assert p["keyVault"] == ids["mlKeyVault"]
    assert p["applicationInsights"] == ids["appi"]
    assert p["systemDatastoresAuthMode"] == "Identity"
    one(res, "Microsoft.KeyVault/vaults", names["mlKeyVaultName"])


# ---- Event Grid --------------------------------------------------------------------------------


def subscriptions(**params) -> dict[str, arm.Deployed]:
    return {
        r.name.split("/")[-1]: r
        for r in deployed(**params)
        if r.type == "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    }


def test_system_topic_on_the_lake_with_its_own_identity(names, ids):
    topic = one(deployed(), "Microsoft.EventGrid/systemTopics", names["systemTopicName"])
    assert topic.properties == {"source": ids["lake"], "topicType": "Microsoft.Storage.StorageAccounts"}
    assert topic.body["identity"] == {"type": "SystemAssigned"}


def test_subscriptions_deploy_only_in_phase_2():
    assert subscriptions() == {}
    assert set(subscriptions(deployEventGridSubscription=False, blobsExtensionKey="k")) == set()
    # Without the key the webhook subscription would be created with an invalid URL: it waits.
    assert set(subscriptions(deployEventGridSubscription=True)) == {"landing-renames"}
    assert set(subscriptions(deployEventGridSubscription=True, blobsExtensionKey="k")) == {
        "landing-blob",
        "landing-renames",
    }


def test_blob_created_webhook_subscription(names, ids):
    sub = subscriptions(deployEventGridSubscription=True, blobsExtensionKey="a/b+c==")["landing-blob"]
    p = sub.properties
    dest = p["destination"]
    assert dest["endpointType"] == "WebHook"
    host = arm.Ref(ids["site"], ("defaultHostName",))
    assert (
        dest["properties"]["endpointUrl"]
        == f"https://{host}/runtime/webhooks/blobs?functionName=Host.Functions.landing_blob&code=a%2Fb%2Bc%3D%3D"
    )
    f = p["filter"]
    assert f["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert f["subjectBeginsWith"] == "/blobServices/default/containers/landing/blobs/"
    assert f["advancedFilters"] == [
        {
            "operatorType": "StringIn",
            "key": "data.api",
            "values": ["FlushWithClose", "PutBlob", "PutBlockList"],
        }
    ]
    assert "deadLetterDestination" not in p  # the identity-based form only


def test_rename_subscription_targets_the_landing_events_function(names, ids):
    p = subscriptions(deployEventGridSubscription=True, blobsExtensionKey="k")["landing-renames"].properties
    assert p["destination"]["endpointType"] == "AzureFunction"
    assert p["destination"]["properties"]["resourceId"] == f"{ids['site']}/functions/landing_events"
    assert p["destination"]["properties"]["maxEventsPerBatch"] == 1
    assert p["filter"]["includedEventTypes"] == [
        "Microsoft.Storage.BlobRenamed",
        "Microsoft.Storage.DirectoryRenamed",
    ]
    assert p["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/landing/blobs/"


def test_function_names_match_the_code():
    code = "\n".join(p.read_text() for p in (ROOT / "functions").glob("*.py"))
    assert '@bp.function_name("landing_blob")' in code
    assert '@bp.function_name("landing_events")' in code


def test_dead_lettering_uses_the_system_topic_identity_and_its_role(ids):
    subs = subscriptions(deployEventGridSubscription=True, blobsExtensionKey="k")
    ra = role_assignments()
    topic_grant = [a for a in ra if a[2] == "systemTopic"]
    assert topic_grant == [
        (BLOB_CONTRIBUTOR, container(ids["lake"], "eventgrid-deadletter"), "systemTopic", "ServicePrincipal")
    ]
    grant_ids = {
        r.id
        for r in deployed()
        if r.type == "Microsoft.Authorization/roleAssignments"
        and r.properties["principalId"] == arm.Ref(ids["topic"], ("identity", "principalId"))
    }
    assert len(grant_ids) == 1
    for name, sub in subs.items():
        dl = sub.properties["deadLetterWithResourceIdentity"]
        assert dl["identity"] == {"type": "SystemAssigned"}, name
        assert dl["deadLetterDestination"] == {
            "endpointType": "StorageBlob",
            "properties": {"resourceId": ids["lake"], "blobContainerName": "eventgrid-deadletter"},
        }, name
        deps = {evaluator().value(d) for d in sub.source["dependsOn"]}
        assert grant_ids <= deps, name  # the grant exists before Event Grid validates the destination
        assert container(ids["lake"], "eventgrid-deadletter") in deps


# ---- role assignments ----------------------------------------------------------------------------

SAMPLE = {
    "landingWriterObjectIds": [W1, W2],
    "sparkObjectIds": [S1],
    "goldReaderObjectIds": [G1],
    "deployerObjectId": DEPLOYER,
}


def role_assignments(**params) -> list[tuple[str, str, str, str]]:
    """(role GUID, scope, principal, principalType) of every role assignment deployed."""
    ev = evaluator(**params)
    site = f"{RG}/providers/Microsoft.Web/sites/{ev.variable('functionAppName')}"
    topic = f"{RG}/providers/Microsoft.EventGrid/systemTopics/{ev.variable('systemTopicName')}"
    ml = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/{ev.variable('mlWorkspaceName')}"
    identities = {
        arm.Ref(site, ("identity", "principalId")): "functionApp",
        arm.Ref(topic, ("identity", "principalId")): "systemTopic",
        arm.Ref(ml, ("identity", "principalId")): "mlWorkspace",
    }
    out = []
    for r in arm.expand(ev):
        if r.type != "Microsoft.Authorization/roleAssignments" or not r.deployed:
            continue
        p = r.properties
        role = p["roleDefinitionId"]
        prefix = f"/subscriptions/{arm.SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/"
        assert role.startswith(prefix), role
        principal = identities.get(p["principalId"], p["principalId"])
        assert isinstance(principal, str), p["principalId"]
        out.append((role.removeprefix(prefix), r.scope, principal, p["principalType"]))
    return out


def test_role_assignments_per_zone(ids):
    lake, host = ids["lake"], ids["host"]
    sp = "ServicePrincipal"
    expected = {
        # Function App: reads landing, writes system, the trigger's poison queue.
        (BLOB_READER, container(lake, "landing"), "functionApp", sp),
        (BLOB_CONTRIBUTOR, container(lake, "system"), "functionApp", sp),
        (QUEUE_CONTRIBUTOR, lake, "functionApp", sp),
        # Function App on its host storage (identity-based AzureWebJobsStorage with a blob trigger).
        (BLOB_OWNER, host, "functionApp", sp),
        (QUEUE_CONTRIBUTOR, host, "functionApp", sp),
        (TABLE_CONTRIBUTOR, host, "functionApp", sp),
        (ACCOUNT_CONTRIBUTOR, host, "functionApp", sp),
        (KV_SECRETS_USER, ids["keyVault"], "functionApp", sp),
        # Landing writers.
        (BLOB_CONTRIBUTOR, container(lake, "landing"), W1, "Group"),
        (BLOB_CONTRIBUTOR, container(lake, "landing"), W2, "Group"),
        # Spark: reads landing, writes every later zone, reads Key Vault.
        (BLOB_READER, container(lake, "landing"), S1, sp),
        *(
            (BLOB_CONTRIBUTOR, container(lake, z), S1, sp)
            for z in ("bronze", "silver", "gold", "quarantine", "system")
        ),
        (KV_SECRETS_USER, ids["keyVault"], S1, sp),
        # Gold readers: the Azure ML workspace and the given principals.
        (BLOB_READER, container(lake, "gold"), "mlWorkspace", sp),
        (BLOB_READER, container(lake, "gold"), G1, "Group"),
        # Event Grid dead-lettering.
        (BLOB_CONTRIBUTOR, container(lake, "eventgrid-deadletter"), "systemTopic", sp),
        # Azure ML on its own keyless storage.
        (BLOB_CONTRIBUTOR, ids["mlStorage"], "mlWorkspace", sp),
        (FILE_PRIVILEGED_CONTRIBUTOR, ids["mlStorage"], "mlWorkspace", sp),
        # The deployer: package upload and the SQL secret.
        (BLOB_CONTRIBUTOR, container(host, "app-package"), DEPLOYER, "User"),
        (KV_SECRETS_OFFICER, ids["keyVault"], DEPLOYER, "User"),
    }
    got = role_assignments(**SAMPLE)
    assert len(got) == len(set(got)), "a role assignment is declared twice"
    assert set(got) == expected
    # Nobody but Spark writes bronze/silver/gold/quarantine; nobody but writers writes landing.
    for zone in ("bronze", "silver", "gold", "quarantine"):
        writers = {a[2] for a in got if a[1] == container(lake, zone) and a[0] != BLOB_READER}
        assert writers == {S1}, zone
    assert {a[2] for a in got if a[1] == container(lake, "landing") and a[0] != BLOB_READER} == {W1, W2}


def test_optional_grants_follow_their_parameters(ids):
    landing = container(ids["lake"], "landing")
    bare = role_assignments()
    assert not [a for a in bare if a[2] not in ("functionApp", "systemTopic", "mlWorkspace")]
    assert len(bare) == 12
    with_sql = role_assignments(functionLandsSqlChanges=True)
    assert set(with_sql) - set(bare) == {(BLOB_CONTRIBUTOR, landing, "functionApp", "ServicePrincipal")}
    typed = role_assignments(
        landingWriterObjectIds=[W1],
        landingWriterPrincipalType="ServicePrincipal",
        deployerObjectId=DEPLOYER,
        deployerPrincipalType="ServicePrincipal",
    )
    assert (BLOB_CONTRIBUTOR, landing, W1, "ServicePrincipal") in typed
    assert (KV_SECRETS_OFFICER, ids["keyVault"], DEPLOYER, "ServicePrincipal") in typed


def test_role_assignment_names_are_unique_guids_stable_across_phases():
    def names(**params):
        return sorted(
            r.name for r in deployed(**params) if r.type == "Microsoft.Authorization/roleAssignments"
        )

    phase1 = names(**SAMPLE)
    assert len(phase1) == len(set(phase1))
    assert all(re.fullmatch(r"[0-9a-f-]{36}", n) for n in phase1)
    assert phase1 == names(**SAMPLE, deployEventGridSubscription=True, blobsExtensionKey="k")
    for r in TEMPLATE["resources"]:
        if r["type"] == "Microsoft.Authorization/roleAssignments":
            assert r["name"].startswith("[guid("), r["name"]
            assert "reference(" not in r["name"]  # names must be known before deployment
            assert "principalType" in r["properties"]


def test_outputs():
    assert {
        "functionAppName", "hostStorageAccountName", "packageContainer", "packageBlobName", "keyVaultName",
        "keyVaultUri", "lakeAccountName", "sqlConnectionSecretName", "systemTopicName", "mlWorkspaceName",
    } <= set(TEMPLATE["outputs"])  # fmt: skip
    ev = evaluator()
    assert ev.value(TEMPLATE["outputs"]["functionAppName"]["value"]) == ev.variable("functionAppName")


# ---- deploy.sh ---------------------------------------------------------------------------------


def test_deploy_script_parses_and_is_strict():
    subprocess.run(["bash", "-n", str(DEPLOY_SH)], check=True)
    text = DEPLOY_SH.read_text()
    assert "set -euo pipefail" in text
    assert "set -x" not in text and "set -o xtrace" not in text
    assert os.access(DEPLOY_SH, os.X_OK)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(DEPLOY_SH)], check=True)


def test_deploy_script_handles_the_key_only_as_a_phase_2_parameter():
    """Static: where the key variable appears, and only there."""
    text = DEPLOY_SH.read_text()
    assert "--query systemKeys.blobs_extension" in text
    uses = [
        line.strip() for line in text.splitlines() if "blobs_key" in line and not line.strip().startswith("#")
    ]
    allowed = (
        'blobs_key=""',
        "blobs_key=$(az functionapp keys list",
        "[[ -n $blobs_key ]] && break",
        "[[ $blobs_key =~",
        '"$blobs_key" >"$phase2_params"',
    )
    for line in uses:
        assert line.startswith(allowed), f"the key is used in: {line}"
    assert not re.search(
        r"(echo|printf)[^\n]*blobs_key[^\n]*$", text.replace('"$blobs_key" >"$phase2_params"', ""), re.M
    )
    assert "blobsExtensionKey=" not in text  # never on a command line


def write_stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


AZ_STUB = r"""
import json, os, sys
args = sys.argv[1:]
entry = {"argv": args, "files": {}}
for a in args:
    if a.startswith("@"):
        entry["files"][a] = open(a[1:]).read()
        entry["mode"] = oct(os.stat(a[1:]).st_mode & 0o777)
if "--file" in args and args[args.index("--file") + 1] == "/dev/stdin":
    entry["stdin"] = sys.stdin.read()
with open(os.environ["AZ_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\n")
outputs = json.loads(os.environ["AZ_OUTPUTS"])


def seen_before(what):
    marker = os.path.join(os.path.dirname(os.environ["AZ_LOG"]), f"called-{what}")
    seen = os.path.exists(marker)
    open(marker, "a").close()
    return seen


if args[:3] == ["deployment", "group", "show"]:
    print(outputs[args[args.index("--query") + 1].split(".")[2]])
elif args[:3] == ["functionapp", "keys", "list"]:
    # The host creates the key a while after the code starts: none on the first call.
    print(os.environ["AZ_FAKE_KEY"] if seen_before("keys") else "")
elif args[:3] == ["storage", "blob", "upload"] and not seen_before("upload"):
    sys.exit("ERROR: AuthorizationPermissionMismatch (a fresh role assignment)")
elif args[:3] == ["ad", "signed-in-user", "show"]:
    print("66666666-6666-6666-6666-666666666666")
elif args[:2] == ["functionapp", "show"]:
    print("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/hw-dev-func")
"""


@pytest.fixture
def stub_az(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_stub(bin_dir, "az", AZ_STUB)
    package = tmp_path / "package.zip"
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("function_app.py", "")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    outputs = {
        "functionAppName": "hw-dev-func-abc123",
        "hostStorageAccountName": "hwdevfnabc123",
        "packageContainer": "app-package",
        "packageBlobName": "headwater-functions.zip",
        "keyVaultName": "hwdevkvabc123",
        "sqlConnectionSecretName": "headwater-sql-club",
        "lakeAccountName": "hwdevlakeabc123",
    }
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp),
        "AZ_LOG": str(tmp_path / "az.log"),
        "AZ_OUTPUTS": json.dumps(outputs),
        "AZ_FAKE_KEY": "FAKEKEY/blobs+ext==",
        "HEADWATER_PACKAGE": str(package),
        "DEPLOY_RETRY_SLEEP": "0",
        "DEPLOY_RETRIES": "2",
        "LANDING_WRITER_OBJECT_IDS": f"{W1}, {W2}",
        "SPARK_OBJECT_IDS": S1,
        "SQL_CONNECTION_STRING": "Server=tcp:db.example;Password=hunter2",
    }

    def run(*args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
        proc = subprocess.run(
            ["bash", str(DEPLOY_SH), *args], env=env, capture_output=True, text=True, timeout=60
        )
        log = Path(env["AZ_LOG"])
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return proc, calls

    run.env = env  # type: ignore[attr-defined]
    run.tmp = tmp  # type: ignore[attr-defined]
    return run


def test_deploy_script_two_phases_with_a_stub_az(stub_az):
    proc, calls = stub_az("rg-headwater", "hwtr", "dev", "westeurope")
    assert proc.returncode == 0, proc.stderr
    key, secret = stub_az.env["AZ_FAKE_KEY"], stub_az.env["SQL_CONNECTION_STRING"]
    # Neither the key nor the SQL secret is ever on a command line or in the output.
    for c in calls:
        assert not any(key in a or secret in a or "hunter2" in a for a in c["argv"]), c["argv"]
    assert key not in proc.stdout + proc.stderr and "hunter2" not in proc.stdout + proc.stderr

    def index(pred, times: int = 1) -> int:
        found = [i for i, c in enumerate(calls) if pred(c["argv"])]
        assert len(found) == times, [c["argv"] for c in calls]
        return found[-1]

    def creates(a):
        return a[:3] == ["deployment", "group", "create"]

    phase1 = index(lambda a: creates(a) and "deployEventGridSubscription=false" in a)
    phase2 = index(lambda a: creates(a) and "deployEventGridSubscription=true" in a)
    # The stub refuses the first upload (a role assignment not yet effective) and has no key at
    # first: both are retried.
    upload = index(lambda a: a[:3] == ["storage", "blob", "upload"], times=2)
    keys = index(lambda a: a[:3] == ["functionapp", "keys", "list"], times=2)
    assert "retrying" in proc.stderr
    secret_set = index(lambda a: a[:3] == ["keyvault", "secret", "set"])
    assert phase1 < secret_set < upload < keys < phase2
    p1, p2 = calls[phase1], calls[phase2]
    assert not p1["files"] and "prefix=hwtr" in p1["argv"] and "environment=dev" in p1["argv"]
    assert f'landingWriterObjectIds=["{W1}","{W2}"]' in p1["argv"]
    assert f'sparkObjectIds=["{S1}"]' in p1["argv"]
    assert "deployerObjectId=66666666-6666-6666-6666-666666666666" in p1["argv"]
    assert p1["argv"][p1["argv"].index("--template-file") + 1] == str(DEPLOY_SH.parent / "main.json")
    # Phase 2: the key arrives as the blobsExtensionKey parameter, in a file only the user reads.
    (params_file,) = p2["files"].values()
    assert json.loads(params_file)["parameters"] == {"blobsExtensionKey": {"value": key}}
    assert p2["mode"] == "0o600"
    assert calls[keys]["argv"][calls[keys]["argv"].index("--query") + 1] == "systemKeys.blobs_extension"
    # The secret went to Key Vault through stdin.
    assert calls[secret_set]["stdin"] == secret
    assert ["--name", "headwater-sql-club"] == calls[secret_set]["argv"][5:7]
    up = calls[upload]["argv"]
    assert "--auth-mode" in up and up[up.index("--auth-mode") + 1] == "login"
    assert up[up.index("--file") + 1] == stub_az.env["HEADWATER_PACKAGE"]
    # The temporary directory (with the parameters file) is gone.
    assert list(stub_az.tmp.iterdir()) == []


def test_deploy_script_usage(stub_az):
    proc, calls = stub_az()
    assert proc.returncode == 2 and "Usage: infra/deploy.sh RESOURCE_GROUP PREFIX ENV LOCATION" in proc.stderr
    proc, _ = stub_az("rg", "hwtr", "staging", "westeurope")
    assert proc.returncode == 2 and "ENV must be dev, qa or prod" in proc.stderr
    proc, _ = stub_az("rg", "Headwater", "dev", "westeurope")
    assert proc.returncode == 2 and "PREFIX" in proc.stderr
    proc, _ = stub_az("--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout
    assert calls == []
