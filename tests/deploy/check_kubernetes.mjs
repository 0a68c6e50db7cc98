// check_kubernetes.mjs SOURCE-DIR: the Kubernetes example (deploy/kubernetes) and the
// container image (deploy/Dockerfile) it runs.
//
// Each manifest is checked against the schema of the Kubernetes API for its kind (the
// validators of the kubernetes-models package, generated from the API's OpenAPI
// definitions: types, required fields, enumerations, formats; fields the API does not
// know are not reported), after parsing it as kubectl does (YAML 1.1: 0400 is octal).
// Then what the example promises: pod K of N runs --shard K/N, N is the replica count,
// every password_file is a key of the Secret, state and output are on the pod's volume,
// the pod runs as a non-root user on a read-only root file system, and the image is
// built as the manifests expect.
//
// Runs with node's test runner; tests/deploy/test_kubernetes.sh installs the packages
// (package.json) and runs it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import YAML from "yaml";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";

const SRC = path.resolve(process.argv[2] ?? process.env.MM_SOURCE_DIR ?? ".");
const DIR = path.join(SRC, "deploy", "kubernetes");
const MODELS = { v1: core, "apps/v1": apps };

function readYaml(file) {
	const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { version: "1.1" });
	for (const d of docs)
		assert.equal(d.errors.length, 0, `${file}: ${d.errors.join("; ")}`);
	return docs.map((d) => d.toJS());
}

// Every object of deploy/kubernetes but the kustomization, by kind.
function manifests() {
	const out = [];
	for (const name of fs.readdirSync(DIR).sort()) {
		if (!name.endsWith(".yaml") || name === "kustomization.yaml")
			continue;
		for (const obj of readYaml(path.join(DIR, name)))
			out.push({ file: name, obj });
	}
	return out;
}

function only(kind) {
	const found = manifests().filter((m) => m.obj.kind === kind);
	assert.equal(found.length, 1, `one ${kind} expected`);
	return found[0].obj;
}

// Throws with the schema's complaint when obj is not a valid object of its kind.
function validate(obj) {
	const group = MODELS[obj.apiVersion];
	assert.ok(group, `no schemas loaded for apiVersion ${obj.apiVersion}`);
	const Model = group[obj.kind];
	assert.ok(Model, `${obj.apiVersion} has no kind ${obj.kind}`);
	new Model(obj).validate();
}

// {section: {key: value}} of an INI text (comments and blank lines dropped).
function parseIni(text) {
	const out = {};
	let section = null;
	for (const raw of text.split("\n")) {
		const line = raw.trim();
		if (line === "" || line[0] === ";" || line[0] === "#")
			continue;
		const m = /^\[(.+)\]$/.exec(line);
		if (m) {
			section = out[m[1]] = {};
			continue;
		}
		const eq = line.indexOf("=");
		assert.ok(section && eq > 0, `not an INI line: ${line}`);
		section[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
	}
	return out;
}

function podSpec() {
	return only("StatefulSet").spec.template.spec;
}

function container() {
	const spec = podSpec();
	assert.equal(spec.containers.length, 1);
	return spec.containers[0];
}

// The directory a volume (by name) is mounted at in the container.
function mountOf(volume) {
	const m = container().volumeMounts.find((v) => v.name === volume);
	assert.ok(m, `volume ${volume} is not mounted`);
	return m.mountPath;
}

function under(file, dir) {
	return file.startsWith(dir.replace(/\/$/, "") + "/");
}

function envValue(name) {
	const e = container().env.find((v) => v.name === name);
	assert.ok(e, `no ${name} in the container's environment`);
	return e;
}

function cmakeVersion() {
	const text = fs.readFileSync(path.join(SRC, "CMakeLists.txt"), "utf8");
	return /project\(mboxmirror VERSION ([0-9.]+)/.exec(text)[1];
}

test("every manifest is a valid object of its kind", () => {
	const all = manifests();
	assert.deepEqual([...new Set(all.map((m) => m.obj.kind))].sort(),
	    ["ConfigMap", "Secret", "Service", "StatefulSet"]);
	for (const { file, obj } of all) {
		try {
			validate(obj);
		} catch (e) {
			assert.fail(`${file}: ${obj.kind} ${obj.metadata?.name}: ${e.message}`);
		}
	}
});

test("the schema check rejects broken objects", () => {
	const broken = [
		(s) => { s.spec.replicas = "two"; },
		(s) => { delete s.spec.selector; },
		(s) => { delete s.spec.template.spec.containers[0].volumeMounts[0].mountPath; },
		(s) => { s.spec.volumeClaimTemplates[0].spec.accessModes = "ReadWriteOnce"; },
		(s) => { s.spec.podManagementPolicy = "AllAtOnce"; },
	];
	for (const breakIt of broken) {
		const s = structuredClone(only("StatefulSet"));
		breakIt(s);
		assert.throws(() => validate(s), undefined, breakIt.toString());
	}
});

test("the kustomization names every manifest", () => {
	const [k] = readYaml(path.join(DIR, "kustomization.yaml"));
	const files = fs.readdirSync(DIR).filter((f) => f.endsWith(".yaml") &&
	    f !== "kustomization.yaml");
	assert.deepEqual([...k.resources].sort(), files.sort());
});

test("pod K of N runs --shard K/N, N being the replica count", () => {
	const sts = only("StatefulSet");
	const c = container();
	const replicas = sts.spec.replicas;
	assert.equal(envValue("SHARDS").value, String(replicas),
	    "SHARDS must equal replicas");
	assert.equal(envValue("POD_NAME").valueFrom.fieldRef.fieldPath, "metadata.name");
	// Run the container's command with a stand-in mboxmirror that prints its
	// arguments, for each pod name the StatefulSet gives.
	const bin = fs.mkdtempSync(path.join(os.tmpdir(), "mm-k8s-"));
	try {
		fs.writeFileSync(path.join(bin, "mboxmirror"),
		    '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
		for (let k = 0; k < replicas; k++) {
			const out = execFileSync(c.command[0], [...c.command.slice(1), ...c.args], {
				env: { PATH: `${bin}:/usr/bin:/bin`, SHARDS: String(replicas),
				    POD_NAME: `${sts.metadata.name}-${k}` },
				encoding: "utf8",
			});
			assert.deepEqual(out.trim().split("\n"),
			    ["-c", "/etc/mboxmirror/mboxmirror.ini", "--shard", `${k}/${replicas}`]);
		}
	} finally {
		fs.rmSync(bin, { recursive: true, force: true });
	}
});

test("the pods' names, volumes and claims fit together", () => {
	const sts = only("StatefulSet");
	const svc = only("Service");
	assert.equal(sts.spec.serviceName, svc.metadata.name);
	assert.equal(svc.spec.clusterIP, "None");
	const labels = sts.spec.template.metadata.labels;
	for (const [k, v] of Object.entries(sts.spec.selector.matchLabels))
		assert.equal(labels[k], v);
	for (const [k, v] of Object.entries(svc.spec.selector))
		assert.equal(labels[k], v);
	const volumes = new Set(podSpec().volumes.map((v) => v.name));
	const claims = sts.spec.volumeClaimTemplates.map((c) => c.metadata.name);
	for (const m of container().volumeMounts)
		assert.ok(volumes.has(m.name) || claims.includes(m.name), m.name);
	// One claim per pod, written by the daemon, kept beyond the pod.
	assert.deepEqual(claims, ["data"]);
	assert.equal(mountOf("data"), "/var/lib/mboxmirror");
	assert.deepEqual(sts.spec.volumeClaimTemplates[0].spec.accessModes, ["ReadWriteOnce"]);
	const byName = Object.fromEntries(podSpec().volumes.map((v) => [v.name, v]));
	assert.equal(byName.config.configMap.name, only("ConfigMap").metadata.name);
	assert.equal(byName.passwords.secret.secretName, only("Secret").metadata.name);
	// Readable by the daemon's group only (fsGroup makes it 0440): no warning
	// from mboxmirror about a password file others can read.
	assert.equal(byName.passwords.secret.defaultMode, 0o400);
});

test("the pod runs unprivileged on a read-only root file system", () => {
	const pod = podSpec().securityContext;
	const c = container().securityContext;
	assert.equal(pod.runAsNonRoot, true);
	assert.ok(pod.runAsUser > 0 && pod.runAsGroup > 0);
	assert.equal(pod.fsGroup, pod.runAsGroup);
	assert.equal(pod.seccompProfile.type, "RuntimeDefault");
	assert.equal(c.readOnlyRootFilesystem, true);
	assert.equal(c.allowPrivilegeEscalation, false);
	assert.deepEqual(c.capabilities.drop, ["ALL"]);
	assert.equal(podSpec().automountServiceAccountToken, false);
	// Every directory the daemon writes is a volume.
	assert.equal(mountOf("tmp"), "/tmp");
	for (const m of container().volumeMounts) {
		if (m.name === "config" || m.name === "passwords")
			assert.equal(m.readOnly, true, m.name);
	}
});

test("the configuration's files are where the pod puts them", () => {
	const cm = only("ConfigMap");
	const files = Object.keys(cm.data);
	assert.deepEqual(files, ["mboxmirror.ini"]);
	assert.equal(mountOf("config"), "/etc/mboxmirror");
	const ini = parseIni(cm.data["mboxmirror.ini"]);
	const data = mountOf("data");
	const secrets = mountOf("passwords");
	const g = ini.general;
	assert.ok(g, "no [general]");
	// Sharding comes from the command line, one value per pod.
	assert.equal(g.shard, undefined);
	assert.ok(under(g.state_dir, data), `state_dir ${g.state_dir}`);
	assert.ok(under(g.metrics_file, data), `metrics_file ${g.metrics_file}`);
	// The daemon creates outputs and the state directory, not the metrics file's.
	assert.equal(path.dirname(g.metrics_file), data);
	const accounts = Object.keys(ini).filter((s) => s !== "general");
	assert.ok(accounts.length >= 2, "an example of sharding needs accounts");
	const keys = new Set(Object.keys(only("Secret").stringData));
	const used = new Set();
	for (const name of accounts) {
		const a = ini[name];
		assert.ok(under(a.output, data), `[${name}] output ${a.output}`);
		assert.ok(!under(a.output, g.state_dir) && !under(g.state_dir, a.output), name);
		assert.equal(a.password, undefined, `[${name}]: a password in the ConfigMap`);
		assert.equal(path.dirname(a.password_file), secrets, `[${name}] password_file`);
		const key = path.basename(a.password_file);
		assert.ok(keys.has(key), `[${name}]: no key ${key} in the Secret`);
		used.add(key);
	}
	assert.deepEqual([...keys].sort(), [...used].sort(), "Secret keys no account reads");
});

test("the image is the one the manifests expect", () => {
	const docker = fs.readFileSync(path.join(SRC, "deploy", "Dockerfile"), "utf8");
	const pod = podSpec().securityContext;
	assert.match(docker, new RegExp(`^USER ${pod.runAsUser}:${pod.runAsGroup}$`, "m"));
	assert.match(docker, new RegExp(`--uid ${pod.runAsUser} `));
	assert.match(docker, /^FROM debian:12(-slim)?( AS \w+)?$/m);
	// It installs the Debian package, built with debian/control's Build-Depends.
	assert.match(docker, /dpkg-buildpackage -us -uc -b/);
	assert.match(docker, /install -y --no-install-recommends[^]*mboxmirror_\*\.deb/);
	const control = fs.readFileSync(path.join(SRC, "debian", "control"), "utf8");
	const deps = /^Build-Depends:([^]*?)\n(?=\S)/m.exec(control)[1]
	    .split(",").map((d) => d.replace(/\(.*?\)/g, "").trim())
	    .filter((d) => d !== "" && d !== "debhelper-compat");
	assert.ok(deps.length >= 5, deps.join(" "));
	const buildStage = docker.split(/^FROM /m)[1];
	for (const d of [...deps, "debhelper"])
		assert.match(buildStage, new RegExp(`\\s${d.replace(/[+.]/g, "\\$&")}\\s`), d);
	// The example names the image of this version.
	assert.equal(container().image, `mboxmirror:${cmakeVersion()}`);
	assert.match(docker, new RegExp(`-t mboxmirror:${cmakeVersion()} `));
});

// The ConfigMap's configuration, its paths moved under a temporary directory and the
// Secret's values written to files: mboxmirror --check-config accepts it, and the
// accounts each pod's --shard K/N lists are every account, each in one pod only, and
// none of the example's pods is idle.  Needs the built mboxmirror ($MBOXMIRROR).
test("mboxmirror takes the ConfigMap's configuration, and the pods share out its accounts",
    { skip: process.env.MBOXMIRROR ? false : "MBOXMIRROR names no built mboxmirror" }, () => {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), "mm-k8s-conf-"));
	try {
		const data = mountOf("data");
		const secrets = mountOf("passwords");
		fs.mkdirSync(path.join(root, "secrets"));
		for (const [key, value] of Object.entries(only("Secret").stringData))
			fs.writeFileSync(path.join(root, "secrets", key), value, { mode: 0o400 });
		fs.mkdirSync(path.join(root, "data"), { mode: 0o700 });
		const ini = only("ConfigMap").data["mboxmirror.ini"]
		    .replaceAll(secrets + "/", path.join(root, "secrets") + "/")
		    .replaceAll(data + "/", path.join(root, "data") + "/");
		const conf = path.join(root, "mboxmirror.ini");
		fs.writeFileSync(conf, ini, { mode: 0o644 });
		const listed = (...args) => {
			const out = execFileSync(process.env.MBOXMIRROR,
			    ["-c", conf, "--check-config", ...args], { encoding: "utf8" });
			return [...out.matchAll(/^([A-Za-z0-9._@+-]+): \S+ @ /gm)].map((m) => m[1]);
		};
		const everyone = listed();
		const accounts = Object.keys(parseIni(ini)).filter((s) => s !== "general");
		assert.deepEqual(everyone, accounts);
		const n = only("StatefulSet").spec.replicas;
		const seen = [];
		for (let k = 0; k < n; k++) {
			const part = listed("--shard", `${k}/${n}`);
			assert.ok(part.length > 0, `pod ${k} of ${n} has no account`);
			seen.push(...part);
		}
		assert.deepEqual(seen.sort(), [...everyone].sort());
	} finally {
		fs.rmSync(root, { recursive: true, force: true });
	}
});
