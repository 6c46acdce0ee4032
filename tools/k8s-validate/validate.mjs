// Validates Kubernetes objects offline against their OpenAPI schemas (kubernetes-models; the Prometheus
// operator's and KEDA's CRDs through their @kubernetes-models packages).
//   node validate.mjs FILE.yaml ...   every document of every file; exit 1 naming each invalid object
// Types, required fields, enums and formats are checked; unknown keys pass (the published schemas allow
// them).
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const packages = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "keda.sh": "@kubernetes-models/keda",
};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = packages[group] ?? "kubernetes-models";
  const path = group === "" ? `${pkg}/${version}` : `${pkg}/${group}/${version}`;
  const module = await import(path);
  if (!module[kind]) throw new Error(`no schema for ${apiVersion} ${kind} in ${path}`);
  return module[kind];
}

let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) {
      console.error(`${file}: YAML error: ${doc.errors[0].message}`);
      failures++;
      continue;
    }
    const object = doc.toJS();
    if (object === null) continue;
    const name = `${file}: ${object.apiVersion} ${object.kind} ${object.metadata?.name ?? "(no name)"}`;
    try {
      const Model = await modelFor(object.apiVersion, object.kind);
      new Model(object).validate();
      checked++;
    } catch (error) {
      console.error(`${name}: ${error.message}`);
      failures++;
    }
  }
}
console.log(`k8s-validate: ${checked} objects valid, ${failures} invalid`);
process.exit(failures > 0 ? 1 : 0);
