// `deno doc --lint` on every entry point of deno.json "exports". The one
// tolerated finding is a public signature naming a Polars type (`pl`,
// `DataFrame`): those are nodejs-polars' own types, not this package's to
// document. Everything else fails the check.
const config = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
) as { exports: Record<string, string> };
const entries = Object.values(config.exports);
const out = await new Deno.Command(Deno.execPath(), {
  args: ["doc", "--lint", ...entries],
  cwd: new URL("..", import.meta.url),
  env: { NO_COLOR: "1" },
  stdout: "piped",
  stderr: "piped",
}).output();
const text = new TextDecoder().decode(out.stderr) +
  new TextDecoder().decode(out.stdout);
// Findings are blocks that start with "error[rule]: message".
const findings = text.split(/\n(?=error\[)/).filter((b) =>
  b.startsWith("error[")
);
const polarsType =
  /^error\[private-type-ref\]: public type '[^']+' references private type '(pl|DataFrame)'/;
const left = findings.filter((b) => !polarsType.test(b));
for (const b of left) console.error(b.trimEnd() + "\n");
console.error(
  `deno doc --lint ${entries.join(" ")}: ${left.length} finding(s), ${
    findings.length - left.length
  } reference(s) to Polars types tolerated`,
);
if (left.length > 0 || (!out.success && findings.length === 0)) Deno.exit(1);
