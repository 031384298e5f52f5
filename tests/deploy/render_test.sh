#!/usr/bin/env bash
# Renders a kustomize overlay of deploy/k8s offline, validates every object against the
# Kubernetes schemas (k8s_validate.mjs, kubernetes-models) and checks the deployment policy
# (k8s_policy.py); with --self-test the policy checks must also catch deliberate breaks.
# Usage: render_test.sh SOURCE_DIR OVERLAY [--self-test]       exit 77 = skipped (tool missing)
set -euo pipefail
src=$1 overlay=$2 mode=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
modules=$src/scripts/node/node_modules

command -v kubectl >/dev/null || { echo "SKIP: kubectl not found (the machine image ships it; kubectl kustomize renders the overlays)"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node not found: run scripts/install-deps.sh"; exit 77; }
[ -d "$modules/kubernetes-models" ] || { echo "SKIP: $modules/kubernetes-models missing: run scripts/install-deps.sh"; exit 77; }
python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: python3-yaml missing: run scripts/install-deps.sh"; exit 77; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The ConfigMap is generated from config/production.toml, outside the kustomization root.
kubectl kustomize --load-restrictor LoadRestrictionsNone "$src/deploy/k8s/overlays/$overlay" >"$work/rendered.yaml"
python3 -c 'import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)' \
  <"$work/rendered.yaml" >"$work/objects.json"

node "$here/k8s_validate.mjs" "$work/objects.json" "$modules"
python3 "$here/k8s_policy.py" "$work/objects.json"

# The observability plugin's alert rules: once the file exists, the overlay must ship them.
if [ -f "$src/deploy/prometheus/alerts.yaml" ] && ! grep -q 'name: kghost-alert-rules' "$work/rendered.yaml"; then
  echo "FAIL: deploy/prometheus/alerts.yaml exists but overlay $overlay does not ship it: enable components/alerts in its kustomization.yaml"
  exit 1
fi

# Every Secret the pods reference is one docs/deploy.md tells the operator to create.
python3 - "$work/objects.json" "$src/docs/deploy.md" <<'PY'
import json, re, sys
objects, doc = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
refs = set()
def walk(v):
    if isinstance(v, dict):
        if "secretKeyRef" in v:
            refs.add((v["secretKeyRef"]["name"], v["secretKeyRef"]["key"]))
        if "secret" in v and isinstance(v["secret"], dict) and "secretName" in v["secret"]:
            refs.add((v["secret"]["secretName"], None))
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk([o for o in objects if o["kind"] != "Ingress"])
missing = [f"{n}{'/' + k if k else ''}" for n, k in sorted(refs, key=str)
           if not re.search(rf"create secret generic {re.escape(n)}\b[^\n]*(\\\n[^\n]*)*"
                            + (rf"--from-literal={re.escape(k)}=" if k else ""), doc)]
if missing:
    sys.exit("FAIL: docs/deploy.md does not show how to create the Secret(s) " + ", ".join(missing))
print(f"secrets: {len(refs)} referenced, each documented")
PY

if [ "$mode" = "--self-test" ]; then python3 "$here/k8s_policy.py" --self-test "$work/objects.json"; fi
