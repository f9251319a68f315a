#!/usr/bin/env bash
# Deploys headwater to Azure in two phases (see infra/README.md):
#   1. infra/main.json with deployEventGridSubscription=false: everything but the Event Grid
#      subscriptions (their endpoints exist only once the code runs);
#   2. the code: build the package, upload it to the host storage account (the app runs it from
#      there with its identity: WEBSITE_RUN_FROM_PACKAGE), restart, sync triggers;
#   3. read the app's blobs_extension system key, then deploy main.json again with
#      deployEventGridSubscription=true and the key as the blobsExtensionKey parameter. The key
#      goes to az in a parameters file only readable by this user (never in argv, never echoed)
#      and the file is removed on exit.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/deploy.sh RESOURCE_GROUP PREFIX ENV LOCATION

  RESOURCE_GROUP  created if missing
  PREFIX          3-10 lower-case letters and digits, starting with a letter (resource names)
  ENV             dev | qa | prod (HEADWATER_ENV)
  LOCATION        Azure region, e.g. westeurope

Optional environment:
  LANDING_WRITER_OBJECT_IDS  comma-separated Entra object ids allowed to write landing
  SPARK_OBJECT_IDS           comma-separated object ids of the Spark identities
  GOLD_READER_OBJECT_IDS     comma-separated object ids reading gold (besides Azure ML)
  DEPLOYER_OBJECT_ID         who runs this (package upload, Key Vault secrets); default: the
                             signed-in user's object id
  DEPLOYER_PRINCIPAL_TYPE    User (default) | ServicePrincipal | Group
  SUBMIT_KIND                HEADWATER_SUBMIT__KIND (default databricks)
  SQL_CONNECTION_STRING      if set, stored as the SQL source's Key Vault secret (read from the
                             environment and piped to az; never echoed)
  HEADWATER_PACKAGE          a prebuilt package zip; otherwise one is built with PYTHON
  PYTHON                     the Python that builds the package (default python3)

Needs: az (logged in), and python3 with pip when the package is built here.
EOF
}

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

if [[ $# -eq 1 && ( $1 == -h || $1 == --help ) ]]; then
  usage
  exit 0
fi
if [[ $# -ne 4 ]]; then
  usage >&2
  exit 2
fi

rg=$1
prefix=$2
env=$3
location=$4

if [[ ! $prefix =~ ^[a-z][a-z0-9]{2,9}$ ]]; then
  echo "deploy.sh: PREFIX must be 3-10 lower-case letters and digits, starting with a letter" >&2
  exit 2
fi
case $env in
  dev | qa | prod) ;;
  *)
    echo "deploy.sh: ENV must be dev, qa or prod" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
template="$here/main.json"
retries=${DEPLOY_RETRIES:-10}
retry_sleep=${DEPLOY_RETRY_SLEEP:-30}

work=$(mktemp -d)
chmod 700 "$work"
trap 'rm -rf "$work"' EXIT

# "a, b" -> ["a","b"] (object ids only: GUIDs, so no JSON escaping is needed).
json_ids() {
  local raw=$1 id out="" sep=""
  local -a ids
  IFS=',' read -r -a ids <<<"$raw"
  for id in "${ids[@]}"; do
    id=${id//[[:space:]]/}
    [[ -z $id ]] && continue
    [[ $id =~ ^[0-9a-fA-F-]{36}$ ]] || die "not an object id: $id"
    out+="$sep\"$id\""
    sep=","
  done
  printf '[%s]' "$out"
}

# Role assignments take a while to reach the data plane: retry what depends on a fresh one.
retry() {
  local attempt=1
  until "$@"; do
    if ((attempt >= retries)); then
      return 1
    fi
    attempt=$((attempt + 1))
    echo "deploy.sh: retrying in ${retry_sleep}s ($attempt/$retries): ${*:1:3}" >&2
    sleep "$retry_sleep"
  done
}

deployer=${DEPLOYER_OBJECT_ID:-}
if [[ -z $deployer ]]; then
  deployer=$(az ad signed-in-user show --query id --output tsv 2>/dev/null || true)
fi
[[ -n $deployer ]] || echo "deploy.sh: no DEPLOYER_OBJECT_ID and no signed-in user: grant the package upload yourself" >&2

params=(
  prefix="$prefix"
  environment="$env"
  location="$location"
  landingWriterObjectIds="$(json_ids "${LANDING_WRITER_OBJECT_IDS:-}")"
  sparkObjectIds="$(json_ids "${SPARK_OBJECT_IDS:-}")"
  goldReaderObjectIds="$(json_ids "${GOLD_READER_OBJECT_IDS:-}")"
  deployerObjectId="$deployer"
  deployerPrincipalType="${DEPLOYER_PRINCIPAL_TYPE:-User}"
  submitKind="${SUBMIT_KIND:-databricks}"
)

output() {
  az deployment group show --resource-group "$rg" --name "$1" \
    --query "properties.outputs.$2.value" --output tsv
}

# ---- phase 1: the resources, no Event Grid subscriptions --------------------------------------
infra="headwater-$env-infra"
echo "deploy.sh: phase 1: $template into $rg ($location)"
az group create --name "$rg" --location "$location" --output none
az deployment group create --resource-group "$rg" --name "$infra" --template-file "$template" \
  --parameters "${params[@]}" deployEventGridSubscription=false \
  --output none

app=$(output "$infra" functionAppName)
host_storage=$(output "$infra" hostStorageAccountName)
package_container=$(output "$infra" packageContainer)
package_blob=$(output "$infra" packageBlobName)
vault=$(output "$infra" keyVaultName)
sql_secret=$(output "$infra" sqlConnectionSecretName)
[[ -n $app && -n $host_storage && -n $package_container && -n $package_blob ]] ||
  die "phase 1 outputs are missing"

if [[ -n ${SQL_CONNECTION_STRING:-} ]]; then
  echo "deploy.sh: storing the SQL connection string as secret $sql_secret in $vault"
  set_secret() {
    printf '%s' "$SQL_CONNECTION_STRING" |
      az keyvault secret set --vault-name "$vault" --name "$sql_secret" --file /dev/stdin \
        --encoding utf-8 --output none
  }
  retry set_secret || die "could not set secret $sql_secret (Key Vault Secrets Officer?)"
fi

# ---- the code ---------------------------------------------------------------------------------
package=${HEADWATER_PACKAGE:-}
if [[ -z $package ]]; then
  python=${PYTHON:-python3}
  echo "deploy.sh: building the Function App package (Linux x86_64, CPython 3.11 wheels)"
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
  wheels=("$work"/dist/headwater-*.whl)
  [[ -f ${wheels[0]} ]] || die "no headwater wheel was built"
  mkdir -p "$work/app/.python_packages/lib/site-packages"
  # The app runs the package as is (no build on the server): every dependency is a wheel for
  # the Function host's platform, whatever machine builds it.
  "$python" -m pip install --quiet --no-compile \
    --target "$work/app/.python_packages/lib/site-packages" \
    --platform manylinux2014_x86_64 --implementation cp --python-version 3.11 \
    --only-binary=:all: "${wheels[0]}[functions]"
  cp "$repo/function_app.py" "$repo/host.json" "$repo/requirements.txt" "$work/app/"
  # The project file and the profiles: the app resolves its settings the way every command does
  # (headwater.toml < environments/$HEADWATER_ENV.toml < app settings).
  cp "$repo/headwater.toml" "$work/app/"
  cp -R "$repo/environments" "$work/app/environments"
  package="$work/$package_blob"
  (cd "$work/app" && "$python" -m zipfile -c "$package" .)
fi
[[ -f $package ]] || die "no package at $package"

echo "deploy.sh: uploading the package to $host_storage/$package_container/$package_blob"
retry az storage blob upload --auth-mode login --account-name "$host_storage" \
  --container-name "$package_container" --name "$package_blob" --file "$package" \
  --overwrite --only-show-errors --output none ||
  die "package upload failed (Storage Blob Data Contributor on $package_container?)"

app_id=$(az functionapp show --resource-group "$rg" --name "$app" --query id --output tsv)
az functionapp restart --resource-group "$rg" --name "$app" --output none
# A package URL is not watched: triggers are synced explicitly after the package changes.
retry az rest --method post --url "https://management.azure.com$app_id/syncfunctiontriggers?api-version=2024-04-01" \
  --output none || die "syncing the function triggers failed"

# ---- phase 2: the Event Grid subscriptions ----------------------------------------------------
# The host creates the blobs_extension system key when the blob trigger (Event Grid source)
# starts; wait for it. The key stays in this variable and the parameters file only.
blobs_key=""
attempt=1
while :; do
  blobs_key=$(az functionapp keys list --resource-group "$rg" --name "$app" \
    --query systemKeys.blobs_extension --output tsv 2>/dev/null || true)
  [[ -n $blobs_key ]] && break
  ((attempt >= retries)) && die "the app has no blobs_extension system key (is landing_blob indexed?)"
  attempt=$((attempt + 1))
  sleep "$retry_sleep"
done
[[ $blobs_key =~ ^[A-Za-z0-9+/=_-]+$ ]] || die "the blobs_extension key has unexpected characters"

phase2_params="$work/phase2.parameters.json"
(
  umask 077
  # shellcheck disable=SC2016  # "$schema" is the JSON key, not a shell expansion
  printf '{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#", "contentVersion": "1.0.0.0", "parameters": {"blobsExtensionKey": {"value": "%s"}}}\n' \
    "$blobs_key" >"$phase2_params"
)
blobs_key=""

echo "deploy.sh: phase 2: Event Grid subscriptions on the lake's system topic"
az deployment group create --resource-group "$rg" --name "headwater-$env-events" --template-file "$template" \
  --parameters "@$phase2_params" --parameters "${params[@]}" deployEventGridSubscription=true \
  --output none
rm -f "$phase2_params"

echo "deploy.sh: done: Function App $app; lake $(output "$infra" lakeAccountName); Key Vault $vault"
