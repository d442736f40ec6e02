#!/usr/bin/env node
// Compile contracts/*.sol with the pinned solc-js (package.json) through standard-JSON input and
// write one artifact per contract to contracts_abi/: ABI, creation and runtime bytecode, solc's
// metadata, the compiler version and the exact settings used. The output is byte-for-byte
// reproducible, so `--check` can prove the committed artifacts are current.
//
//   node scripts/compile_contracts.js          write contracts_abi/<Name>.json
//   node scripts/compile_contracts.js --check  exit 1 if any committed artifact differs

"use strict";

const fs = require("node:fs");
const path = require("node:path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const SOURCE_DIR = "contracts";
const OUT_DIR = path.join(ROOT, "contracts_abi");
const CONTRACTS = ["LedgerShareToken"];

// Fixed settings: they are recorded in each artifact and in solc's metadata.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  viaIR: false,
  metadata: { bytecodeHash: "ipfs", appendCBOR: true },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"] },
  },
};

function readSources() {
  const sources = {};
  for (const file of fs.readdirSync(path.join(ROOT, SOURCE_DIR)).sort()) {
    if (file.endsWith(".sol")) {
      const unit = `${SOURCE_DIR}/${file}`;
      sources[unit] = { content: fs.readFileSync(path.join(ROOT, unit), "utf8") };
    }
  }
  return sources;
}

// Resolve `@openzeppelin/...` imports from node_modules; source unit names stay relative, so
// no machine path ends up in the metadata.
function findImport(unit) {
  const candidate = path.join(ROOT, "node_modules", unit);
  if (unit.startsWith("@") && fs.existsSync(candidate)) {
    return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `import not found: ${unit}` };
}

function compile() {
  const input = { language: "Solidity", sources: readSources(), settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    process.stderr.write(e.formattedMessage || e.message);
  }
  if (errors.length > 0) {
    throw new Error(`solc reported ${errors.length} error(s)`);
  }
  const artifacts = {};
  for (const name of CONTRACTS) {
    const unit = `${SOURCE_DIR}/${name}.sol`;
    const compiled = output.contracts[unit][name];
    const artifact = {
      contractName: name,
      sourceName: unit,
      compiler: { name: "solc-js", version: solc.version() },
      settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, viaIR: SETTINGS.viaIR },
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      metadata: compiled.metadata,
    };
    artifacts[`${name}.json`] = `${JSON.stringify(artifact, null, 2)}\n`;
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes("--check");
  const artifacts = compile();
  let stale = 0;
  for (const [file, text] of Object.entries(artifacts)) {
    const target = path.join(OUT_DIR, file);
    if (check) {
      const committed = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : null;
      if (committed !== text) {
        process.stderr.write(`stale: contracts_abi/${file} differs from a fresh compile\n`);
        stale += 1;
      }
    } else {
      fs.mkdirSync(OUT_DIR, { recursive: true });
      fs.writeFileSync(target, text);
      process.stdout.write(`wrote contracts_abi/${file}\n`);
    }
  }
  if (check) {
    process.stdout.write(stale === 0 ? "contracts_abi is current\n" : "");
    process.exit(stale === 0 ? 0 : 1);
  }
}

main();
