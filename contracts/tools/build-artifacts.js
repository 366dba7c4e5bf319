#!/usr/bin/env node
// Compiles every contract in contracts/src with solcjs (the npm `solc`, the same compiler forge uses through
// tools/solc) and writes what the Python side loads:
//
//   artifacts/<ContractName>.json  {"abi", "bytecode" ("0x..."), "contractName"}  for each deployable contract
//   artifacts/errors.json          {"errors": [...]}  every custom error any deployable contract can raise
//                                  (the union of their ABIs' error entries), for decoding revert data
//
// Compiler settings come from foundry.toml ([profile.default]: optimizer, optimizer_runs, evm_version,
// remappings, bytecode_hash/cbor_metadata) so forge and this build agree. The output is deterministic: no
// metadata hash or CBOR trailer in the bytecode, sorted object keys, two-space indent, final newline.
//
// usage: node tools/build-artifacts.js [--out DIR]     (default DIR: contracts/artifacts)
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const SRC = path.join(ROOT, "src");

function fail(message) {
  process.stderr.write(`build-artifacts: ${message}\n`);
  process.exit(1);
}

let solc;
try {
  solc = require(path.join(ROOT, "node_modules", "solc"));
} catch (err) {
  fail(`solc is not installed in contracts/node_modules (run \`make setup\`): ${err.message}`);
}

function parseArgs(argv) {
  let out = path.join(ROOT, "artifacts");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && argv[i + 1]) {
      out = path.resolve(argv[++i]);
    } else {
      fail(`unknown argument ${argv[i]}\nusage: node tools/build-artifacts.js [--out DIR]`);
    }
  }
  return { out };
}

// The few `key = value` lines of foundry.toml's [profile.default] that matter here: strings, numbers,
// booleans and one-line arrays of strings.
function readFoundryProfile() {
  const text = fs.readFileSync(path.join(ROOT, "foundry.toml"), "utf8");
  const profile = {};
  let section = null;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) {
      section = header[1];
      continue;
    }
    if (section !== "profile.default") continue;
    const kv = line.match(/^([A-Za-z_]+)\s*=\s*(.+)$/);
    if (!kv) continue;
    profile[kv[1]] = JSON.parse(kv[2]); // TOML strings, numbers, booleans and string arrays read as JSON
  }
  return profile;
}

function listSources(dir) {
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...listSources(full));
    else if (entry.name.endsWith(".sol")) found.push(full);
  }
  return found;
}

function compilerInput(profile) {
  const sources = {};
  for (const file of listSources(SRC).sort()) {
    const key = path.relative(ROOT, file).split(path.sep).join("/");
    sources[key] = { content: fs.readFileSync(file, "utf8") };
  }
  const sortedSources = {};
  for (const key of Object.keys(sources).sort()) sortedSources[key] = sources[key];
  return {
    language: "Solidity",
    sources: sortedSources,
    settings: {
      optimizer: { enabled: profile.optimizer === true, runs: profile.optimizer_runs },
      evmVersion: profile.evm_version,
      remappings: profile.remappings || [],
      metadata: {
        bytecodeHash: profile.bytecode_hash || "ipfs",
        appendCBOR: profile.cbor_metadata !== false,
      },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
}

// Imports arrive already remapped (e.g. node_modules/@openzeppelin/...) or relative to a source (src/...).
function findImports(importPath) {
  const candidate = path.resolve(ROOT, importPath);
  if (!candidate.startsWith(ROOT + path.sep)) return { error: `import outside contracts/: ${importPath}` };
  if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
    return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `File not found: ${importPath}` };
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
    return sorted;
  }
  return value;
}

function stableJson(value) {
  return JSON.stringify(sortKeys(value), null, 2) + "\n";
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const profile = readFoundryProfile();
  for (const key of ["optimizer_runs", "evm_version"]) {
    if (profile[key] === undefined) fail(`foundry.toml [profile.default] has no ${key}`);
  }
  const output = JSON.parse(solc.compile(JSON.stringify(compilerInput(profile)), { import: findImports }));

  // Our own sources must compile without errors; warnings from src/ are shown, dependencies' are not.
  let errors = 0;
  for (const diag of output.errors || []) {
    const file = diag.sourceLocation ? diag.sourceLocation.file : "";
    if (diag.severity === "error") errors++;
    if (diag.severity === "error" || file.startsWith("src/")) {
      process.stderr.write((diag.formattedMessage || diag.message) + "\n");
    }
  }
  if (errors) fail(`${errors} compiler error(s)`);

  // Deployable = a contract defined in src/ with creation bytecode (interfaces and abstract ones have none).
  const artifacts = {};
  for (const [file, contracts] of Object.entries(output.contracts || {})) {
    if (!file.startsWith("src/")) continue;
    for (const [name, compiled] of Object.entries(contracts)) {
      const bytecode = compiled.evm && compiled.evm.bytecode ? compiled.evm.bytecode.object : "";
      if (!bytecode) continue;
      if (artifacts[name]) fail(`two deployable contracts named ${name}`);
      artifacts[name] = { abi: compiled.abi, bytecode: "0x" + bytecode, contractName: name };
    }
  }
  if (!Object.keys(artifacts).length) fail("no deployable contract in src/");

  const errorsBySignature = {};
  for (const artifact of Object.values(artifacts)) {
    for (const entry of artifact.abi) {
      if (entry.type !== "error") continue;
      const signature = `${entry.name}(${entry.inputs.map((input) => input.type).join(",")})`;
      errorsBySignature[signature] = entry;
    }
  }
  const errorAbi = Object.keys(errorsBySignature)
    .sort()
    .map((signature) => errorsBySignature[signature]);

  fs.mkdirSync(out, { recursive: true });
  const written = new Set();
  for (const name of Object.keys(artifacts).sort()) {
    fs.writeFileSync(path.join(out, `${name}.json`), stableJson(artifacts[name]));
    written.add(`${name}.json`);
  }
  fs.writeFileSync(path.join(out, "errors.json"), stableJson({ errors: errorAbi }));
  written.add("errors.json");
  // A contract that was deleted or renamed must not leave a stale artifact behind.
  for (const entry of fs.readdirSync(out)) {
    if (entry.endsWith(".json") && !written.has(entry)) fs.unlinkSync(path.join(out, entry));
  }
  process.stdout.write(
    `build-artifacts: solc ${solc.version()}, ${written.size} file(s) in ${path.relative(process.cwd(), out) || "."}: ` +
      `${[...written].sort().join(", ")}\n`,
  );
}

main();
