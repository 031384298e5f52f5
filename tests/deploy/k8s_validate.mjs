// Validates every object of a rendered overlay (a JSON array, from render_test.sh) against the
// Kubernetes OpenAPI schemas of kubernetes-models (pinned in scripts/node). Objects of CRDs
// the models do not cover (Prometheus Operator) get their required fields checked by hand.
// Usage: node k8s_validate.mjs OBJECTS.json NODE_MODULES_DIR      exit 1 on any invalid object
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [objectsFile, nodeModules] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeModules), "_"));
const objects = JSON.parse(readFileSync(objectsFile, "utf8"));

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const nonEmptyArray = (v) => Array.isArray(v) && v.length > 0;

// The CRDs this deployment uses: what their controllers reject.
const crdChecks = {
  "monitoring.coreos.com/v1/ServiceMonitor": (o) => [
    !isObject(o.spec?.selector) && "spec.selector is required",
    !nonEmptyArray(o.spec?.endpoints) && "spec.endpoints needs at least one endpoint",
    ...(o.spec?.endpoints ?? []).map(
      (e, i) => !e.port && !e.targetPort && `spec.endpoints[${i}] needs port or targetPort`),
  ],
  "monitoring.coreos.com/v1/PrometheusRule": (o) => [
    !nonEmptyArray(o.spec?.groups) && "spec.groups needs at least one group",
    ...(o.spec?.groups ?? []).flatMap((g, i) => [
      !g.name && `spec.groups[${i}].name is required`,
      !nonEmptyArray(g.rules) && `spec.groups[${i}].rules needs at least one rule`,
      ...(g.rules ?? []).map((r, j) =>
        (!(r.alert || r.record) || !r.expr) &&
        `spec.groups[${i}].rules[${j}] needs alert or record, and expr`),
    ]),
  ],
};

function modelFor(apiVersion, kind) {
  // "apps/v1" → kubernetes-models/apps/v1/Kind; core "v1" → kubernetes-models/v1/Kind
  try {
    return require(`kubernetes-models/${apiVersion}/${kind}`)[kind];
  } catch {
    return undefined;
  }
}

let failures = 0;
const counts = {};
for (const o of objects) {
  const id = `${o.apiVersion}/${o.kind} ${o.metadata?.namespace ?? "-"}/${o.metadata?.name}`;
  const problems = [];
  if (!o.apiVersion || !o.kind) problems.push("apiVersion and kind are required");
  if (!o.metadata?.name) problems.push("metadata.name is required");
  const crd = crdChecks[`${o.apiVersion}/${o.kind}`];
  const Model = crd ? undefined : modelFor(o.apiVersion, o.kind);
  if (crd) {
    problems.push(...crd(o).filter(Boolean));
  } else if (!Model) {
    problems.push("no schema for this apiVersion/kind (a typo, or a CRD this test does not know)");
  } else {
    try {
      new Model(o).validate();
    } catch (e) {
      problems.push(e.message);
    }
  }
  for (const p of problems) console.log(`INVALID ${id}: ${p}`);
  if (problems.length) failures++;
  counts[o.kind] = (counts[o.kind] ?? 0) + 1;
}
console.log(`${objects.length} objects (${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ")}),` +
            ` ${failures} invalid`);
process.exit(failures ? 1 : 0);
