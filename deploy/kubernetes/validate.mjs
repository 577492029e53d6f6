// Validates Kubernetes manifests offline against the Kubernetes OpenAPI
// schemas compiled into the npm package kubernetes-models (and the
// Prometheus Operator's CRD schemas for ServiceMonitor). `make
// k8s-validator` installs them under build/k8s-validate.
//   node validate.mjs NODE_MODULES FILE.yaml...      validate every document
//   node validate.mjs NODE_MODULES --config FILE     print ConfigMap's pushpool.conf
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...args] = process.argv.slice(2);
if (!modules || args.length === 0) {
	console.error("usage: validate.mjs NODE_MODULES (FILE.yaml... | --config FILE)");
	process.exit(64);
}
const load = (rel) => import(pathToFileURL(join(modules, rel)).href);
const YAML = await load("yaml/dist/index.js");

function documents(file) {
	const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
	for (const d of docs)
		if (d.errors.length)
			throw new Error(`${file}: YAML: ${d.errors[0].message}`);
	return docs.map((d) => d.toJS()).filter((o) => o !== null);
}

// apiVersion + kind -> the module holding its schema-backed model.
function modelPath(apiVersion, kind) {
	if (!/^[A-Za-z]+$/.test(kind))
		throw new Error(`bad kind "${kind}"`);
	if (apiVersion.startsWith("monitoring.coreos.com/"))
		return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}.js`;
	return `kubernetes-models/${apiVersion}/${kind}.js`;
}

if (args[0] === "--config") {
	const cm = documents(args[1]).find((o) => o.kind === "ConfigMap");
	if (!cm?.data?.["pushpool.conf"]) {
		console.error(`${args[1]}: no ConfigMap with data.pushpool.conf`);
		process.exit(65);
	}
	process.stdout.write(cm.data["pushpool.conf"]);
	process.exit(0);
}

let failed = 0;
for (const file of args) {
	let objs;
	try {
		objs = documents(file);
	} catch (e) {
		console.error(e.message);
		failed++;
		continue;
	}
	for (const obj of objs) {
		const what = `${file}: ${obj.kind}/${obj.metadata?.name ?? "?"}`;
		try {
			if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string")
				throw new Error("apiVersion and kind are required");
			let mod;
			try {
				mod = await load(modelPath(obj.apiVersion, obj.kind));
			} catch {
				throw new Error(`unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
			}
			new mod[obj.kind](obj).validate();
			console.log(`${what}: valid`);
		} catch (e) {
			console.error(`${what}: ${e.message}`);
			failed++;
		}
	}
}
process.exit(failed ? 1 : 0);
