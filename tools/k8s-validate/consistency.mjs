// Checks that a rendered overlay agrees with `adak serve`: the container's ports and probes use the ports its
// args give, readiness asks for the Generation service, every Service targets a named container port, and the
// termination grace period covers the preStop sleep plus --drain-timeout.
//   node consistency.mjs RENDERED.yaml READINESS_SERVICE
// Prints the `--flag` names the container passes, one a line (check-deploy.sh compares them with
// `adak serve --help`); exit 1 naming each disagreement.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const [file, readinessService] = process.argv.slice(2);
const objects = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
const problems = [];
const deployment = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "adak-serve");
if (!deployment) {
  console.error(`${file}: no Deployment adak-serve`);
  process.exit(1);
}
const pod = deployment.spec.template.spec;
const container = pod.containers.find((c) => c.name === "adak");
const flags = new Map();
for (const arg of container.args ?? []) {
  const match = /^(--[a-z-]+)(?:=(.*))?$/.exec(arg);
  if (!match) problems.push(`arg '${arg}' is not --flag=value`);
  else flags.set(match[1], match[2]);
}
const flagNumber = (name, fallback) => Number(flags.has(name) ? flags.get(name) : fallback);
const grpcPort = flagNumber("--grpc-port", 50051);  // adak serve's defaults
const httpPort = flagNumber("--http-port", 8080);
const drain = flagNumber("--drain-timeout", 30);
const ports = new Map((container.ports ?? []).map((p) => [p.name, p.containerPort]));
if (ports.get("grpc") !== grpcPort) problems.push(`container port grpc ${ports.get("grpc")} != --grpc-port ${grpcPort}`);
if (ports.get("http") !== httpPort) problems.push(`container port http ${ports.get("http")} != --http-port ${httpPort}`);
for (const [probeName, service] of [["startupProbe", ""], ["livenessProbe", ""], ["readinessProbe", readinessService]]) {
  const probe = container[probeName];
  if (!probe?.grpc) {
    problems.push(`${probeName} is not a gRPC probe`);
    continue;
  }
  if (probe.grpc.port !== grpcPort) problems.push(`${probeName} port ${probe.grpc.port} != --grpc-port ${grpcPort}`);
  if ((probe.grpc.service ?? "") !== service) problems.push(`${probeName} service '${probe.grpc.service}' != '${service}'`);
}
const sleep = container.lifecycle?.preStop?.exec?.command?.[0] === "/bin/sleep"
  ? Number(container.lifecycle.preStop.exec.command[1]) : 0;
const grace = pod.terminationGracePeriodSeconds ?? 30;
if (!(grace > sleep + drain)) {
  problems.push(`terminationGracePeriodSeconds ${grace} must exceed preStop sleep ${sleep} + --drain-timeout ${drain}`);
}
for (const service of objects.filter((o) => o.kind === "Service")) {
  for (const port of service.spec.ports) {
    if (!ports.has(port.targetPort)) problems.push(`Service ${service.metadata.name} targets unknown port ${port.targetPort}`);
  }
}
for (const p of problems) console.error(`k8s-consistency: ${file}: ${p}`);
for (const name of flags.keys()) console.log(name);
process.exit(problems.length > 0 ? 1 : 0);
