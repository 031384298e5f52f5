#!/usr/bin/env python3
"""Policy checks on a rendered overlay: what a schema cannot see but an outage would.

Usage: k8s_policy.py OBJECTS.json            report violations, exit 1 if any
       k8s_policy.py --self-test OBJECTS.json  break the objects one way at a time and check
                                               that each break is reported (the checks can fail)
"""
import copy
import json
import re
import sys
import tomllib

API_LABELS = {"app.kubernetes.io/name": "kghost", "app.kubernetes.io/component": "api"}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
# What a secret looks like when it has leaked into plain config.
SECRET_VALUE = re.compile(
    r"whsec_[A-Za-z0-9]{6,}|sk_(live|test)_[A-Za-z0-9]{6,}|kg_live_[A-Za-z0-9]{6,}"
    r"|rediss?://[^\s/@:\[\]]*:[^\s/@${}\[\]]+@|-----BEGIN [A-Z ]*PRIVATE KEY-----")
SECRET_KEY_NAME = re.compile(r"secret|password|api_key|apikey|token", re.I)
SECRET_ENV_NAME = re.compile(r"SECRET|PASSWORD|API_KEY|TOKEN|REDIS_URL")


def name(o):
    return f"{o['kind']} {o['metadata'].get('namespace', '-')}/{o['metadata']['name']}"


def selects(selector, labels):
    """A LabelSelector (matchLabels + matchExpressions) against a label map."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        have, op, values = labels.get(e["key"]), e["operator"], e.get("values", [])
        if (op == "In" and have not in values) or (op == "NotIn" and have in values) \
                or (op == "Exists" and have is None) or (op == "DoesNotExist" and have is not None):
            return False
    return True


def pod_spec(o):
    if o["kind"] in WORKLOADS:
        return o["spec"]["template"]["spec"]
    if o["kind"] == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if o["kind"] == "Job":
        return o["spec"]["template"]["spec"]
    return None


def pod_labels(o):
    if o["kind"] in WORKLOADS:
        return o["spec"]["template"]["metadata"].get("labels", {})
    if o["kind"] == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {}).get("labels", {})
    return {}


def namespace_labels(objects, ns):
    for o in objects:
        if o["kind"] == "Namespace" and o["metadata"]["name"] == ns:
            return {**o["metadata"].get("labels", {}), "kubernetes.io/metadata.name": ns}
    return {"kubernetes.io/metadata.name": ns}  # a namespace this overlay does not own


def the_api(objects):
    found = [o for o in objects if o["kind"] in WORKLOADS and selects({"matchLabels": API_LABELS},
                                                                       pod_labels(o))]
    return found[0] if len(found) == 1 else None


def prestop_seconds(container):
    handler = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in handler:
        return int(handler["sleep"]["seconds"])
    cmd = (handler.get("exec") or {}).get("command") or []
    if len(cmd) == 2 and cmd[0] in ("sleep", "/bin/sleep"):
        return int(cmd[1])
    return None


def host_config(objects, workload):
    """The kghost.toml of the ConfigMap the API pods mount."""
    for v in pod_spec(workload).get("volumes", []):
        cm = (v.get("configMap") or {}).get("name")
        for o in objects:
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == cm \
                    and "kghost.toml" in o.get("data", {}):
                return tomllib.loads(o["data"]["kghost.toml"])
    return None


def replicas_of(objects, w):
    """The fewest replicas the workload runs with (an HPA's minReplicas wins)."""
    n = w["spec"].get("replicas", 1)
    for h in objects:
        if h["kind"] == "HorizontalPodAutoscaler" and \
                h["spec"]["scaleTargetRef"]["name"] == w["metadata"]["name"] and \
                h["metadata"].get("namespace") == w["metadata"].get("namespace"):
            n = h["spec"].get("minReplicas", 1)
    return n


def check(objects):
    errors = []
    err = errors.append
    api = the_api(objects)
    if api is None:
        return ["exactly one workload must carry the API labels " + json.dumps(API_LABELS)]
    api_ns = api["metadata"].get("namespace")

    # -- images, probes, resources on every container ----------------------------------------
    for o in objects:
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            where = f"{name(o)} container {c['name']}"
            image = c.get("image", "")
            if "@sha256:" not in image:
                tag = image.rsplit("/", 1)[-1].partition(":")[2]
                if not tag or tag == "latest":
                    err(f"{where}: image '{image}' needs a version tag (never :latest or none)")
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(kind) or {}):
                        err(f"{where}: resources.{kind}.{r} is not set")
            if o["kind"] in WORKLOADS and c in spec.get("containers", []):
                for p in ("livenessProbe", "readinessProbe"):
                    if p not in c:
                        err(f"{where}: no {p}")
            for e in c.get("env", []):
                if SECRET_ENV_NAME.search(e["name"]) and "value" in e:
                    err(f"{where}: env {e['name']} has a literal value; use secretKeyRef")
    # -- the API pod in detail --------------------------------------------------------------
    spec = pod_spec(api)
    main = spec["containers"][0]
    probe_path = lambda p: ((main.get(p) or {}).get("httpGet") or {}).get("path")
    if probe_path("livenessProbe") != "/health/live":
        err(f"{name(api)}: livenessProbe must GET /health/live")
    if probe_path("readinessProbe") != "/health/ready":
        err(f"{name(api)}: readinessProbe must GET /health/ready")
    want = {"requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"}}
    if (main.get("resources") or {}) != want:
        err(f"{name(api)}: resources must be {json.dumps(want)}")
    cfg = host_config(objects, api)
    pause = prestop_seconds(main)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if cfg is None:
        err(f"{name(api)}: mounts no ConfigMap with kghost.toml")
    elif pause is None:
        err(f"{name(api)}: no preStop pause (sleep) before SIGTERM")
    else:
        drain = int(cfg.get("server", {}).get("drain_timeout_s", 30))
        if grace < pause + drain + 5:
            err(f"{name(api)}: terminationGracePeriodSeconds {grace} must exceed preStop {pause}"
                f" + drain_timeout_s {drain} by at least 5 s (the plugins' flush)")
    if not spec.get("topologySpreadConstraints"):
        err(f"{name(api)}: no topologySpreadConstraints")
    # The durable queues live on a volume that outlives the pod.
    data_dir = (cfg or {}).get("data_dir", "")
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    data_dir = env.get("KG_DATA_DIR") or re.sub(r"\$\{KG_DATA_DIR:-([^}]*)\}", r"\1", data_dir)
    mount = next((m for m in main.get("volumeMounts", []) if m["mountPath"] == data_dir), None)
    claims = {t["metadata"]["name"] for t in api["spec"].get("volumeClaimTemplates", [])}
    vol = next((v for v in spec.get("volumes", []) if mount and v["name"] == mount["name"]), {})
    if mount is None:
        err(f"{name(api)}: nothing is mounted at the data_dir {data_dir!r}")
    elif mount["name"] not in claims and "persistentVolumeClaim" not in vol:
        err(f"{name(api)}: data_dir {data_dir} is not on a PersistentVolumeClaim (an emptyDir"
            " loses acknowledged events when the pod moves)")
    strategy = api["spec"].get("updateStrategy" if api["kind"] == "StatefulSet" else "strategy", {})
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        err(f"{name(api)}: update strategy must be RollingUpdate")
    if api["kind"] == "Deployment" and (strategy.get("rollingUpdate") or {}) != \
            {"maxSurge": 1, "maxUnavailable": 0}:
        err(f"{name(api)}: rollingUpdate must be maxSurge 1, maxUnavailable 0")
    hpa = [h for h in objects if h["kind"] == "HorizontalPodAutoscaler"
           and h["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]]
    if len(hpa) != 1:
        err(f"{name(api)}: needs one HorizontalPodAutoscaler")
    else:
        h = hpa[0]["spec"]
        cpu = [m for m in h.get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
        if (h.get("minReplicas"), h.get("maxReplicas")) != (2, 10) or not cpu or \
                cpu[0]["resource"]["target"].get("averageUtilization") != 70:
            err(f"{name(hpa[0])}: must scale 2–10 on CPU 70 %")

    # -- disruption budgets -----------------------------------------------------------------
    for w in (o for o in objects if o["kind"] in WORKLOADS):
        n = replicas_of(objects, w)
        pdbs = [p for p in objects if p["kind"] == "PodDisruptionBudget"
                and p["metadata"].get("namespace") == w["metadata"].get("namespace")
                and selects(p["spec"].get("selector"), pod_labels(w))]
        if n > 1 and not pdbs:
            err(f"{name(w)}: {n} replicas and no PodDisruptionBudget")
        for p in pdbs:
            s = p["spec"]
            if "maxUnavailable" in s:
                allowed = s["maxUnavailable"]
                ok = (allowed >= 1) if isinstance(allowed, int) else allowed not in ("0%", "0")
            else:
                m = s.get("minAvailable", 0)
                ok = (m < n) if isinstance(m, int) else (m.rstrip("%").isdigit() and
                                                           int(m.rstrip("%")) * n // 100 < n)
            if not ok:
                err(f"{name(p)}: allows no voluntary disruption of {name(w)} ({n} replicas):"
                    " a node drain would hang")
    for p in objects:
        if p["kind"] == "PodDisruptionBudget" and p["spec"].get("maxUnavailable") is None and \
                p["metadata"]["name"] == api["metadata"]["name"]:
            err(f"{name(p)}: the API's budget must be maxUnavailable: 1")

    # -- no secret in a ConfigMap, no Secret value shipped ----------------------------------
    for o in objects:
        if o["kind"] == "Secret" and (o.get("data") or o.get("stringData")):
            err(f"{name(o)}: ships secret values; reference Secrets created out of band")
        if o["kind"] != "ConfigMap":
            continue
        for key, text in (o.get("data") or {}).items():
            if SECRET_VALUE.search(text):
                err(f"{name(o)}: {key} contains what looks like a secret value")
            if key.endswith(".toml"):
                for path, value in toml_strings(tomllib.loads(text)):
                    if SECRET_KEY_NAME.search(path) and not re.fullmatch(r"\$\{[A-Z0-9_]+\}",
                                                                         value):
                        err(f"{name(o)}: {key} {path} = {value!r}: a secret must come from the"
                            " environment as ${NAME} (no inline value, no default)")

    # -- network policies -------------------------------------------------------------------
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for ns in sorted({o["metadata"].get("namespace") for o in objects
                      if pod_spec(o) is not None}):
        if not any(p["metadata"].get("namespace") == ns and p["spec"].get("podSelector") == {}
                   and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
                   for p in policies):
            err(f"namespace {ns}: no default-deny NetworkPolicy (podSelector {{}}, Ingress+Egress)")
    api_pod = pod_labels(api)
    api_ns_labels = namespace_labels(objects, api_ns)
    for target, port in (("nats", 4222), ("redis", 6379)):
        w = next((o for o in objects if o["kind"] in WORKLOADS and
                  pod_labels(o).get("app.kubernetes.io/name") == target), None)
        if w is None:
            continue  # e.g. a managed Redis: nothing to admit
        t_ns = w["metadata"].get("namespace")
        admitted = False
        for p in policies:
            if p["metadata"].get("namespace") != t_ns or \
                    not selects(p["spec"]["podSelector"], pod_labels(w)):
                continue
            for rule in p["spec"].get("ingress", []):
                ports = {q.get("port") for q in rule.get("ports", [])}
                if rule.get("ports") and port not in ports:
                    continue
                for peer in rule.get("from", []):
                    nsel = peer.get("namespaceSelector")
                    if nsel is None and t_ns != api_ns:
                        continue
                    if nsel is not None:
                        custom = {k for k in nsel.get("matchLabels", {})
                                  if k != "kubernetes.io/metadata.name"}
                        if not custom or not selects(nsel, api_ns_labels):
                            continue
                        # The label must be the source's: the target's namespace lacking it
                        # shows it was not put on the wrong namespace.
                        if t_ns != api_ns and selects(nsel, namespace_labels(objects, t_ns)):
                            err(f"{name(p)}: its namespaceSelector {nsel} also matches the"
                                f" target namespace {t_ns}: label the source namespace")
                    if selects(peer.get("podSelector"), api_pod):
                        admitted = True
        if not admitted:
            err(f"{target} ({t_ns}): no NetworkPolicy admits the API pods on {port} by a label"
                f" of their namespace {api_ns} (namespaceSelector) and their pod labels")
        egress_ok = any(
            p["metadata"].get("namespace") == api_ns and selects(p["spec"]["podSelector"], api_pod)
            and any(any(selects(peer.get("podSelector"), pod_labels(w)) and
                        (peer.get("namespaceSelector") is None and t_ns == api_ns or
                         selects(peer.get("namespaceSelector"), namespace_labels(objects, t_ns)))
                        for peer in rule.get("to", []))
                    for rule in p["spec"].get("egress", []))
            for p in policies)
        if not egress_ok:
            err(f"{name(api)}: no egress NetworkPolicy lets it reach {target} in {t_ns}")
    # Ingress to the API: only from the ingress controller's namespace and Prometheus.
    sources = []
    for p in policies:
        if p["metadata"].get("namespace") == api_ns and selects(p["spec"]["podSelector"], api_pod):
            for rule in p["spec"].get("ingress", []):
                for peer in rule.get("from", []) or [{}]:
                    sources.append(peer)
    for peer in sources:
        nsel = (peer.get("namespaceSelector") or {}).get("matchLabels", {})
        if set(nsel) != {"kubernetes.io/metadata.name"}:
            err(f"{name(api)}: admits traffic from {peer or 'anywhere'}; only named namespaces"
                " (the ingress controller's, Prometheus') may reach it")
    names = {(p.get("namespaceSelector") or {}).get("matchLabels", {}).get(
        "kubernetes.io/metadata.name") for p in sources}
    if "ingress-nginx" not in names:
        err(f"{name(api)}: nothing admits the ingress controller's namespace")
    if not any((p.get("podSelector") or {}).get("matchLabels", {}).get(
            "app.kubernetes.io/name") == "prometheus" for p in sources):
        err(f"{name(api)}: Prometheus may not scrape it")

    # -- NATS -------------------------------------------------------------------------------
    nats = next((o for o in objects if o["kind"] == "StatefulSet" and
                 pod_labels(o).get("app.kubernetes.io/name") == "nats"), None)
    if nats is None:
        err("no NATS StatefulSet")
    else:
        if nats["spec"].get("replicas") != 3:
            err(f"{name(nats)}: must run 3 nodes")
        names_ = {c["name"] for c in pod_spec(nats)["containers"]}
        if "exporter" not in names_:
            err(f"{name(nats)}: no Prometheus exporter sidecar")
        conf = "".join(o.get("data", {}).get("nats.conf", "") for o in objects
                       if o["kind"] == "ConfigMap")
        if not re.search(r"jetstream\s*\{[^}]*store_dir", conf):
            err(f"{name(nats)}: nats.conf has no JetStream file store (store_dir)")
        pdb = [p for p in objects if p["kind"] == "PodDisruptionBudget" and
               selects(p["spec"].get("selector"), pod_labels(nats))]
        if not pdb or pdb[0]["spec"].get("minAvailable") != 2:
            err(f"{name(nats)}: needs a PodDisruptionBudget minAvailable: 2")
        if not any(o["kind"] == "CronJob" and "stream backup" in json.dumps(pod_spec(o))
                   for o in objects):
            err("no CronJob runs `nats stream backup`")
        if not any(o["kind"] == "Job" and "--replicas 3" in json.dumps(pod_spec(o))
                   for o in objects):
            err("no Job makes the stream R3 (the plugin creates it with one replica: one NATS"
                " node lost would take the stream's only copy)")
    return errors


def toml_strings(table, prefix=""):
    if isinstance(table, dict):
        for k, v in table.items():
            yield from toml_strings(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(table, list):
        for i, v in enumerate(table):
            yield from toml_strings(v, f"{prefix}[{i}]")
    elif isinstance(table, str):
        yield prefix, table


# -- self test: every break below must be reported --------------------------------------------
def find(objects, kind, name_):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name_))


def api_container(objects):
    return pod_spec(find(objects, "StatefulSet", "kghost"))["containers"][0]


def set_config(objects, old, new):
    cm = next(o for o in objects if o["kind"] == "ConfigMap" and "kghost.toml" in o["data"])
    assert old in cm["data"]["kghost.toml"], old
    cm["data"]["kghost.toml"] = cm["data"]["kghost.toml"].replace(old, new)


def move_label(objects):
    for o in objects:
        if o["kind"] == "Namespace":
            labels = o["metadata"].setdefault("labels", {})
            if o["metadata"]["name"] == "kghost":
                labels.pop("kghost.io/nats-client")
            else:
                labels["kghost.io/nats-client"] = "true"


BREAKS = {
    "PodDisruptionBudget": (lambda o: find(o, "PodDisruptionBudget", "kghost")["spec"].update(
        {"minAvailable": 2}) or find(o, "PodDisruptionBudget", "kghost")["spec"].pop(
        "maxUnavailable"), "allows no voluntary disruption"),
    "nats PDB": (lambda o: find(o, "PodDisruptionBudget", "nats")["spec"].update(
        {"minAvailable": 3}), "allows no voluntary disruption"),
    ":latest": (lambda o: api_container(o).update({"image": "kghost:latest"}), "never :latest"),
    "no tag": (lambda o: pod_spec(find(o, "CronJob", "nats"))["containers"][0].update(
        {"image": "natsio/nats-box"}), "needs a version tag"),
    "readiness": (lambda o: api_container(o).pop("readinessProbe"), "no readinessProbe"),
    "liveness path": (lambda o: api_container(o)["livenessProbe"]["httpGet"].update(
        {"path": "/health"}), "livenessProbe must GET /health/live"),
    "limits": (lambda o: pod_spec(find(o, "StatefulSet", "redis"))["containers"][0][
        "resources"].pop("limits"), "resources.limits.cpu is not set"),
    "secret in ConfigMap": (lambda o: set_config(o, 'secrets = "${STRIPE_WEBHOOK_SECRET}"',
                                                 'secrets = "whsec_abcdefgh1234"'),
                            "looks like a secret value"),
    "secret default": (lambda o: set_config(o, '"${STRIPE_WEBHOOK_SECRET}"',
                                            '"${STRIPE_WEBHOOK_SECRET:-x}"'),
                       "must come from the environment"),
    "literal env": (lambda o: next(e for e in api_container(o)["env"] if e["name"] ==
                                   "STRIPE_WEBHOOK_SECRET").update({"value": "x"}),
                    "has a literal value"),
    "label on the target namespace": (move_label, "no NetworkPolicy admits the API pods on 4222"),
    "grace period": (lambda o: pod_spec(find(o, "StatefulSet", "kghost")).update(
        {"terminationGracePeriodSeconds": 30}), "must exceed preStop"),
    "drain longer": (lambda o: set_config(o, "drain_timeout_s = 20", "drain_timeout_s = 40"),
                     "must exceed preStop"),
    "no preStop": (lambda o: api_container(o).pop("lifecycle"), "no preStop pause"),
    "emptyDir": (lambda o: (find(o, "StatefulSet", "kghost")["spec"].pop("volumeClaimTemplates"),
                            pod_spec(find(o, "StatefulSet", "kghost"))["volumes"].append(
                                {"name": "data", "emptyDir": {}})),
                 "not on a PersistentVolumeClaim"),
    "open ingress": (lambda o: find(o, "NetworkPolicy", "kghost-ingress")["spec"][
        "ingress"].append({"from": [{"podSelector": {}}]}), "only named namespaces"),
    "no default deny": (lambda o: o.remove(next(p for p in o if p["kind"] == "NetworkPolicy" and
                                                p["metadata"]["namespace"] == "kghost-data" and
                                                p["metadata"]["name"] == "default-deny")),
                        "no default-deny"),
    "HPA": (lambda o: find(o, "HorizontalPodAutoscaler", "kghost")["spec"].update(
        {"maxReplicas": 3}), "must scale 2–10"),
    "no backup": (lambda o: o.remove(find(o, "CronJob", "nats")), "nats stream backup"),
    "stream R1": (lambda o: o.remove(find(o, "Job", "nats-stream-setup")), "makes the stream R3"),
}


def self_test(objects):
    base = check(objects)
    if base:
        print("self-test needs a clean overlay, but:\n  " + "\n  ".join(base))
        return 1
    missed = 0
    for label, (mutate, expected) in BREAKS.items():
        broken = copy.deepcopy(objects)
        mutate(broken)
        found = check(broken)
        ok = any(expected in e for e in found)
        print(f"{'caught' if ok else 'MISSED'}: {label}" + ("" if ok else f" (got {found})"))
        missed += not ok
    return 1 if missed else 0


def main():
    args = sys.argv[1:]
    test = args and args[0] == "--self-test"
    objects = json.load(open(args[-1]))
    if test:
        return self_test(objects)
    errors = check(objects)
    for e in errors:
        print("POLICY:", e)
    print(f"policy: {len(objects)} objects, {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
