// Lays out the npm packages of a release for `npm pack` (npm/release.sh runs it): the main
// package from npm/catty with VERSION stamped in, and the package of one platform holding
// BINARY. The platform list is the main package's optionalDependencies.
//
// usage: node npm/stage.js VERSION PLATFORM BINARY OUT_DIR   (PLATFORM: linux-x64, …)
"use strict";

const fs = require("fs");
const path = require("path");

const [version, platform, binary, out] = process.argv.slice(2);
if (!out) {
  process.stderr.write("usage: node npm/stage.js VERSION PLATFORM BINARY OUT_DIR\n");
  process.exit(2);
}

const source = path.join(__dirname, "catty");
const main = JSON.parse(fs.readFileSync(path.join(source, "package.json"), "utf8"));
const scope = main.name.split("/")[0];
const name = `${scope}/${platform}`;
if (!(name in main.optionalDependencies)) {
  process.stderr.write(`stage: ${name} is not in ${main.name}'s optionalDependencies\n`);
  process.exit(1);
}

function write(dir, manifest) {
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
}

// The main package: the launcher and README as they are, every version stamped.
const mainDir = path.join(out, "cli");
fs.cpSync(source, mainDir, { recursive: true });
delete main["//"];
main.version = version;
for (const dep of Object.keys(main.optionalDependencies)) main.optionalDependencies[dep] = version;
write(mainDir, main);

// The platform package: the binary, and `os`/`cpu` so npm installs it only where it runs.
const [os, cpu] = platform.split("-");
const platformDir = path.join(out, platform);
fs.mkdirSync(path.join(platformDir, "bin"), { recursive: true });
fs.copyFileSync(binary, path.join(platformDir, "bin", "catty"));
fs.chmodSync(path.join(platformDir, "bin", "catty"), 0o755);
fs.writeFileSync(
  path.join(platformDir, "README.md"),
  `# ${name}\n\nThe ${platform} binary of [${main.name}](https://www.npmjs.com/package/${main.name}); ` +
    `install that package, not this one.\n`,
);
write(platformDir, {
  name,
  version,
  description: `The ${platform} binary of ${main.name}`,
  license: main.license,
  os: [os],
  cpu: [cpu],
  files: ["bin/catty"],
  preferUnplugged: true,
});
