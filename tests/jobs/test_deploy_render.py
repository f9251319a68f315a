# ruff: noqa: E402  (the imports below need the deploy extra, skipped where it is absent)
"""``headwater deploy render``: Databricks bundles and Synapse job definitions for the project's catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# The deploy extra (main venv); the platform-floor venv runs only the floor tests.
pytest.importorskip("databricks.sdk")
yaml = pytest.importorskip("yaml")
SparkJobDefinitionResource = pytest.importorskip("azure.synapse.artifacts.models").SparkJobDefinitionResource
from databricks.sdk.service.jobs import JobSettings
from typer.testing import CliRunner

from ingestion.contracts import Catalog
from ingestion.core.config import Settings, get_settings
from ingestion.deploy import DeployError, databricks_bundle, synapse_jobs
from ingestion.remote.libraries import cluster_requirements
from jobs.cli import app

HOST = "https://adb-1111.1.azuredatabricks.net"
PROD_HOST = "https://adb-9999.9.azuredatabricks.net"
LAUNCHER = "abfss://jobs@lakeacct.dfs.core.windows.net/headwater/launch.py"
DATASETS = Catalog.discover("schemas").names()


@pytest.fixture
def settings_env(monkeypatch):
    """Submit settings as a deployment sets them; nothing else of the process's environment leaks in."""
    values = {
        "HEADWATER_SUBMIT__DATABRICKS__HOST": HOST,
        "HEADWATER_SUBMIT__DATABRICKS__NODE_TYPE_ID": "Standard_E8ds_v5",
        "HEADWATER_SUBMIT__DATABRICKS__NUM_WORKERS": "5",
        "HEADWATER_SUBMIT__DATABRICKS__TIMEOUT_SECONDS": "5400",
        "HEADWATER_SUBMIT__SYNAPSE__POOL": "hwpool",
        "HEADWATER_SUBMIT__SYNAPSE__LAUNCHER": LAUNCHER,
        "HEADWATER_SUBMIT__SYNAPSE__DRIVER_MEMORY": "14g",
        "HEADWATER_SUBMIT__SYNAPSE__DRIVER_CORES": "2",
        "HEADWATER_SUBMIT__SYNAPSE__EXECUTOR_MEMORY": "56g",
        "HEADWATER_SUBMIT__SYNAPSE__EXECUTOR_CORES": "8",
        "HEADWATER_SUBMIT__SYNAPSE__EXECUTORS": "3",
        "HEADWATER_LAKE__KIND": "azure",
        "HEADWATER_LAKE__ACCOUNT": "lakeacct",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HEADWATER_SUBMIT__DATABRICKS__EXISTING_CLUSTER_ID", raising=False)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'headwater'\n")
    return tmp_path


def cli(*args: str):
    get_settings.cache_clear()  # each invocation reads the environment the test set
    return CliRunner().invoke(app, list(args))


def render_bundle(project: Path, *extra: str) -> dict:
    out = cli(
        "deploy", "render", "--target", "databricks", "--out", str(project), "--project", str(project), *extra
    )
    assert out.exit_code == 0, out.output
    assert f"wrote {project / 'databricks.yml'}" in out.output.replace("\n", "")
    return yaml.safe_load((project / "databricks.yml").read_text())


# --- Databricks ---------------------------------------------------------------------------------
def test_bundle_has_a_target_per_env_and_one_exact_job_per_dataset(settings_env, project):
    doc = render_bundle(
        project, "--env", "dev", "--env", "qa", "--env", "prod", "--host", f"prod={PROD_HOST}"
    )

    assert doc["bundle"] == {"name": "headwater"}
    assert doc["targets"] == {
        "dev": {"workspace": {"host": HOST}},
        "qa": {"workspace": {"host": HOST}},
        "prod": {"workspace": {"host": PROD_HOST}},
    }
    assert doc["artifacts"] == {
        "headwater": {"type": "whl", "build": "pip wheel --no-deps --wheel-dir dist .", "path": "."}
    }
    assert len(DATASETS) >= 3 and set(doc["resources"]["jobs"]) == {
        f"headwater-pipeline-{d}" for d in DATASETS
    }

    reqs = cluster_requirements()
    assert reqs and not [r for r in reqs if r.split("==")[0].split("[")[0] in ("pyspark", "delta-spark")]
    for ds in DATASETS:
        job = doc["resources"]["jobs"][f"headwater-pipeline-{ds}"]
        assert job["name"] == f"headwater-pipeline-{ds}"
        assert (job["max_concurrent_runs"], job["timeout_seconds"]) == (1, 5400)
        [task] = job["tasks"]
        assert task["python_wheel_task"] == {
            "package_name": "headwater",
            "entry_point": "headwater-job",
            "parameters": ["pipeline", "--dataset", ds],
        }
        assert task["libraries"][0] == {"whl": "./dist/*.whl"}
        assert [lib["pypi"]["package"] for lib in task["libraries"][1:]] == reqs
        assert all(set(lib) == {"pypi"} and set(lib["pypi"]) == {"package"} for lib in task["libraries"][1:])
        [cluster] = job["job_clusters"]
        assert task["job_cluster_key"] == cluster["job_cluster_key"]
        new = cluster["new_cluster"]
        assert (new["spark_version"], new["node_type_id"], new["num_workers"]) == (
            "15.4.x-scala2.12",
            "Standard_E8ds_v5",
            5,
        )
        env = new["spark_env_vars"]
        assert env["HEADWATER_ENV"] == "${bundle.target}"
        assert (env["HEADWATER_LAKE__KIND"], env["HEADWATER_LAKE__ACCOUNT"]) == ("azure", "lakeacct")
        # What the bundle deploys is what Databricks' own model holds: nothing dropped or retyped.
        assert JobSettings.from_dict(job).as_dict() == job


def test_bundle_paths_reach_back_to_the_project_from_the_default_folder(settings_env, project, monkeypatch):
    monkeypatch.chdir(project)
    out = cli("deploy", "render", "--target", "databricks", "--env", "dev")
    assert out.exit_code == 0, out.output
    doc = yaml.safe_load((project / "deploy" / "databricks" / "databricks.yml").read_text())
    assert doc["artifacts"]["headwater"]["path"] == "../.."
    for job in doc["resources"]["jobs"].values():
        assert job["tasks"][0]["libraries"][0] == {"whl": "../../dist/*.whl"}


def test_bundle_is_deterministic_and_only_the_datasets_asked_for(settings_env, project):
    first = render_bundle(project, "--env", "dev")
    text = (project / "databricks.yml").read_text()
    assert render_bundle(project, "--env", "dev") == first
    assert (project / "databricks.yml").read_text() == text

    only = render_bundle(project, "--env", "dev", "--dataset", "orders")
    assert list(only["resources"]["jobs"]) == ["headwater-pipeline-orders"]
    bad = cli("deploy", "render", "--target", "databricks", "--out", str(project), "--dataset", "nope")
    assert bad.exit_code == 2 and "no dataset named 'nope'" in bad.output


def test_an_existing_cluster_replaces_the_job_cluster(settings_env, project, monkeypatch):
    monkeypatch.setenv("HEADWATER_SUBMIT__DATABRICKS__EXISTING_CLUSTER_ID", "0101-123456-abcdefgh")
    job = render_bundle(project, "--env", "dev")["resources"]["jobs"]["headwater-pipeline-orders"]
    assert "job_clusters" not in job
    assert job["tasks"][0]["existing_cluster_id"] == "0101-123456-abcdefgh"
    assert "job_cluster_key" not in job["tasks"][0]
    assert JobSettings.from_dict(job).as_dict() == job


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (
            lambda j: j["tasks"][0].update(python_wheel_taks=j["tasks"][0].pop("python_wheel_task")),
            "python_wheel_taks",
        ),
        (lambda j: j["job_clusters"][0]["new_cluster"].update(num_worker=3), "new_cluster.num_worker"),
        (lambda j: j.update(max_concurent_runs=1), "max_concurent_runs"),
        (lambda j: j.update(permisions=[{"level": "CAN_VIEW", "user_name": "a@b.c"}]), "permisions"),
        (lambda j: j["tasks"][0]["libraries"].append({"pipy": {"package": "x==1"}}), "pipy: dropped"),
        (lambda j: j.update(timeout_seconds="3600"), "timeout_seconds: '3600' is not an integer"),
        (lambda j: j["queue"].update(enabled="yes"), "queue.enabled: 'yes' is not a boolean"),
        (
            lambda j: j["job_clusters"][0]["new_cluster"].update(data_security_mode="SINGLE_USR"),
            "new_cluster.data_security_mode: 'SINGLE_USR' is not one of",
        ),
        (lambda j: j.update(tasks={"task_key": "pipeline"}), "tasks: {'task_key': 'pipeline'} is not a list"),
    ],
)
def test_a_misspelled_or_mistyped_job_key_is_refused_with_its_name(mutate, named):
    job = databricks_bundle.pipeline_job("orders", Settings())
    databricks_bundle.check_job("headwater-pipeline-orders", job)  # as rendered: accepted
    mutate(job)
    with pytest.raises(DeployError) as err:
        databricks_bundle.check_job("headwater-pipeline-orders", job)
    assert "'headwater-pipeline-orders'" in str(err.value) and named in str(err.value)


def test_permissions_are_the_one_bundle_only_key_and_are_checked_on_their_own():
    job = databricks_bundle.pipeline_job("orders", Settings())
    job["permissions"] = [{"level": "CAN_MANAGE_RUN", "group_name": "data-eng"}]
    databricks_bundle.check_job("j", job)  # not a JobSettings field, yet deliberately accepted
    job["permissions"] = [{"level": "CAN_RUN", "group_nme": "data-eng"}]
    with pytest.raises(DeployError) as err:
        databricks_bundle.check_job("j", job)
    assert "group_nme" in str(err.value) and "CAN_RUN" in str(err.value)


def test_the_renderer_refuses_to_write_a_job_that_does_not_round_trip(settings_env, project, monkeypatch):
    real = databricks_bundle.pipeline_job

    def typo(dataset, settings, *, project="."):
        job = real(dataset, settings, project=project)
        job["tasks"][0]["python_wheel_task"]["entrypoint"] = job["tasks"][0]["python_wheel_task"].pop(
            "entry_point"
        )
        return job

    monkeypatch.setattr(databricks_bundle, "pipeline_job", typo)
    out = cli(
        "deploy",
        "render",
        "--target",
        "databricks",
        "--env",
        "dev",
        "--out",
        str(project),
        "--project",
        str(project),
    )
    assert out.exit_code == 2
    message = " ".join(out.output.split())
    assert "headwater-pipeline-customers" in message and "python_wheel_task.entrypoint: dropped" in message
    assert not (project / "databricks.yml").exists()


def test_the_renderer_refuses_pyspark_among_the_cluster_libraries(settings_env, monkeypatch):
    monkeypatch.setattr(
        databricks_bundle, "cluster_requirements", lambda: ["pandas==2.3.3", "pyspark==3.5.1"]
    )
    with pytest.raises(DeployError, match="pyspark==3.5.1"):
        databricks_bundle.pipeline_job("orders", get_settings())


@pytest.mark.parametrize(
    ("args", "unset_host", "message"),
    [
        (["--env", "qa"], True, "no Databricks workspace host for qa"),
        (
            ["--env", "dev", "--host", "prd=https://adb-1.1.azuredatabricks.net"],
            False,
            "unknown environment 'prd'",
        ),
        (
            ["--env", "dev", "--host", f"prod={PROD_HOST}"],
            False,
            "--host given for prod, which is not rendered",
        ),
        (["--env", "dev", "--host", "http://adb-1.1.azuredatabricks.net"], False, "is not a workspace URL"),
        (["--env", "dev", "--host", HOST, "--host", PROD_HOST], False, "a host is given twice"),
    ],
)
def test_bad_hosts_are_refused(settings_env, project, monkeypatch, args, unset_host, message):
    if unset_host:
        monkeypatch.delenv("HEADWATER_SUBMIT__DATABRICKS__HOST")
    out = cli(
        "deploy", "render", "--target", "databricks", "--out", str(project), "--project", str(project), *args
    )
    assert out.exit_code == 2, out.output
    assert message in " ".join(out.output.split())
    assert not (project / "databricks.yml").exists()


# --- Synapse ------------------------------------------------------------------------------------
def test_synapse_definitions_per_env_and_dataset_deserialize_into_the_artifacts_model(settings_env, tmp_path):
    out = cli(
        "deploy", "render", "--target", "synapse", "--env", "dev", "--env", "prod", "--out", str(tmp_path)
    )
    assert out.exit_code == 0, out.output
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert files == sorted(
        f"{env}/headwater-pipeline-{ds}.json" for env in ("dev", "prod") for ds in DATASETS
    )

    for env in ("dev", "prod"):
        for ds in DATASETS:
            doc = json.loads((tmp_path / env / f"headwater-pipeline-{ds}.json").read_text())
            model = SparkJobDefinitionResource.deserialize(doc)
            assert model.serialize(keep_readonly=True) == doc
            assert model.name == f"headwater-pipeline-{ds}"
            props = model.properties
            assert (props.target_big_data_pool.reference_name, props.target_big_data_pool.type) == (
                "hwpool",
                "BigDataPoolReference",
            )
            assert props.folder.name == f"headwater/{env}"
            assert not props.additional_properties
            job = props.job_properties
            assert not job.additional_properties
            assert (job.file, job.args) == (LAUNCHER, ["pipeline", "--dataset", ds])
            assert (
                job.driver_memory,
                job.driver_cores,
                job.executor_memory,
                job.executor_cores,
                job.num_executors,
            ) == (
                "14g",
                2,
                "56g",
                8,
                3,
            )
            assert job.conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
            assert (
                job.conf["spark.sql.catalog.spark_catalog"]
                == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
            )
            assert job.conf["spark.yarn.appMasterEnv.HEADWATER_ENV"] == env
            assert job.conf["spark.executorEnv.HEADWATER_ENV"] == env
            assert job.conf["spark.yarn.appMasterEnv.HEADWATER_LAKE__ACCOUNT"] == "lakeacct"


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (
            lambda d: d["properties"]["jobProperties"].update(executorCore=4),
            "properties.jobProperties.executorCore",
        ),
        (
            lambda d: d["properties"].update(targetBigDataPol=d["properties"].pop("targetBigDataPool")),
            "targetBigDataPol",
        ),
        (lambda d: d.update(propertis={}), "propertis: dropped"),
        (lambda d: d["properties"]["targetBigDataPool"].update(type="BigDataPool"), "'BigDataPool'"),
        (lambda d: d["properties"]["jobProperties"].pop("file"), "properties.jobProperties.file: required"),
        (
            lambda d: d["properties"]["jobProperties"].update(driverCores="four"),
            "jobProperties.driverCores: 'four' is not of type int",
        ),
        (lambda d: d["properties"]["jobProperties"].update(args="pipeline"), "jobProperties.args"),
    ],
)
def test_a_misspelled_synapse_key_is_refused_with_its_name(settings_env, mutate, named):
    from ingestion.core.config import Environment

    doc = synapse_jobs.definition("orders", Environment.dev, get_settings())
    synapse_jobs.check_definition(doc)  # as rendered: accepted
    mutate(doc)
    with pytest.raises(DeployError) as err:
        synapse_jobs.check_definition(doc)
    assert "'headwater-pipeline-orders'" in str(err.value) and named in str(err.value)


def test_the_renderer_refuses_to_write_a_synapse_definition_with_a_typo(settings_env, tmp_path, monkeypatch):
    real = synapse_jobs.definition

    def typo(dataset, env, settings):
        doc = real(dataset, env, settings)
        doc["properties"]["jobProperties"]["numExecutor"] = doc["properties"]["jobProperties"].pop(
            "numExecutors"
        )
        return doc

    monkeypatch.setattr(synapse_jobs, "definition", typo)
    out = cli("deploy", "render", "--target", "synapse", "--env", "dev", "--out", str(tmp_path))
    assert out.exit_code == 2
    message = " ".join(out.output.split())
    assert "headwater-pipeline-customers" in message and "jobProperties.numExecutor" in message
    assert not list(tmp_path.rglob("*.json"))


def test_a_rerender_removes_definitions_of_datasets_no_longer_rendered(settings_env, tmp_path):
    (tmp_path / "dev").mkdir()
    stale = tmp_path / "dev" / "headwater-pipeline-gone.json"
    stale.write_text("{}")
    mine = tmp_path / "dev" / "notes.json"
    mine.write_text("{}")
    other_env = tmp_path / "qa" / "headwater-pipeline-gone.json"
    other_env.parent.mkdir()
    other_env.write_text("{}")
    out = cli("deploy", "render", "--target", "synapse", "--env", "dev", "--out", str(tmp_path), "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["removed"] == [str(stale)]
    assert sorted(data["written"]) == sorted(
        str(tmp_path / "dev" / f"headwater-pipeline-{d}.json") for d in DATASETS
    )
    assert not stale.exists() and mine.exists() and other_env.exists()  # only what this render owns


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "unset", "message"),
    [
        (["--target", "aws", "--env", "dev"], (), "unknown target 'aws'"),
        (["--target", "synapse", "--env", "staging"], (), "unknown environment 'staging'"),
        (["--target", "databricks", "--env", "dev", "--env", "qa2"], (), "unknown environment 'qa2'"),
        (["--target", "synapse", "--env", "dev"], ("POOL",), "HEADWATER_SUBMIT__SYNAPSE__POOL"),
        (["--target", "synapse", "--env", "dev"], ("LAUNCHER",), "HEADWATER_SUBMIT__SYNAPSE__LAUNCHER"),
        (["--target", "synapse", "--env", "dev", "--host", HOST], (), "--host is for --target databricks"),
    ],
)
def test_bad_input_is_refused_with_exit_code_2_and_nothing_written(
    settings_env, tmp_path, monkeypatch, args, unset, message
):
    for name in unset:
        monkeypatch.delenv(f"HEADWATER_SUBMIT__SYNAPSE__{name}")
    (tmp_path / "pyproject.toml").write_text("")
    out = cli("deploy", "render", *args, "--out", str(tmp_path / "out"), "--project", str(tmp_path))
    assert out.exit_code == 2, out.output
    assert message in " ".join(out.output.split())
    assert not (tmp_path / "out").exists()


def test_no_datasets_and_no_project_are_refused(settings_env, tmp_path, monkeypatch):
    empty = tmp_path / "pkgs" / "no_schemas"
    empty.mkdir(parents=True)
    (empty / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setenv("HEADWATER_SCHEMAS_PACKAGE", "no_schemas")
    out = cli("deploy", "render", "--target", "synapse", "--env", "dev", "--out", str(tmp_path / "out"))
    assert out.exit_code == 2 and "no datasets in the catalog" in " ".join(out.output.split())
    sys.modules.pop("no_schemas", None)

    monkeypatch.delenv("HEADWATER_SCHEMAS_PACKAGE")
    out = cli(
        "deploy",
        "render",
        "--target",
        "databricks",
        "--env",
        "dev",
        "--out",
        str(tmp_path / "out"),
        "--project",
        str(tmp_path),
    )
    assert out.exit_code == 2 and "no pyproject.toml" in " ".join(out.output.split())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["databricks", "synapse"])
def test_a_deployment_of_a_local_lake_is_refused(settings_env, project, monkeypatch, target):
    monkeypatch.setenv("HEADWATER_LAKE__KIND", "local")
    out = cli("deploy", "render", "--target", target, "--out", str(project), "--project", str(project))
    assert out.exit_code == 2
    assert "a deployed job needs HEADWATER_LAKE__KIND=azure" in out.output.replace("\n", "")
    assert not (project / "databricks.yml").exists() and not list(project.glob("*/*.json"))
