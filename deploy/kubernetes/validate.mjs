// Validates Kubernetes manifests offline against the Kubernetes OpenAPI
// schemas compiled into the npm package kubernetes-models (and the
// Prometheus Operator's CRD schemas for ServiceMonitor). Those schemas allow
// unknown fields, as the API server's non-strict mode does, so every
// document is also type-checked by TypeScript against the same models'
// interfaces, whose excess-property check rejects a misspelt field (what
// `kubectl --validate=strict` would). `make k8s-validator` installs it all
// under build/k8s-validate.
//   node validate.mjs NODE_MODULES FILE.yaml...      validate every document
//   node validate.mjs NODE_MODULES --config FILE     print ConfigMap's pushpool.conf
import { execFileSync } from "node:child_process";
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
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

// Each document as a typed constant, one per line, so a tsc error's line
// number names the document. Returns the number of documents rejected.
function strictFields(checked) {
	if (checked.length === 0)
		return 0;
	const lines = checked.map(({ obj }, i) => {
		const mod = modelPath(obj.apiVersion, obj.kind).replace(/\.js$/, "");
		return `import type { I${obj.kind} as T${i} } from "${mod}"; ` +
			`export const d${i}: T${i} = ${JSON.stringify(obj)};`;
	});
	// Next to node_modules, so that the imports resolve.
	const ts = join(dirname(modules), `strict-${process.pid}.mts`);
	writeFileSync(ts, lines.join("\n") + "\n");
	let out = "";
	try {
		execFileSync(process.execPath, [join(modules, "typescript/bin/tsc"), "--noEmit",
			"--strict", "--skipLibCheck", "--pretty", "false", "--module", "nodenext",
			"--moduleResolution", "nodenext", ts], { encoding: "utf8" });
	} catch (e) {
		out = `${e.stdout ?? ""}${e.stderr ?? ""}`;
		if (!out)
			throw e;
	} finally {
		unlinkSync(ts);
	}
	const bad = new Set();
	for (const m of out.matchAll(/\((\d+),\d+\): error TS\d+: (.*)/g)) {
		const { what } = checked[Number(m[1]) - 1];
		console.error(`${what}: ${m[2]}`);
		bad.add(what);
	}
	if (out && bad.size === 0)
		throw new Error(`tsc: ${out}`);
	return bad.size;
}

let failed = 0;
const checked = [];
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
			checked.push({ obj, what });
		} catch (e) {
			console.error(`${what}: ${e.message}`);
			failed++;
		}
	}
}
const rejected = strictFields(checked);
if (!rejected)
	for (const { what } of checked)
		console.log(`${what}: valid`);
process.exit(failed || rejected ? 1 : 0);
