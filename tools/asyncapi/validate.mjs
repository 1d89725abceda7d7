// Validates AsyncAPI documents with the official parser (@asyncapi/parser: the library and
// ruleset that `asyncapi validate` runs). Prints every diagnostic and exits 1 on any error
// or warning, and on any info or hint but those named in ACCEPTED: a document passes only
// when it is clean.
// Usage: node validate.mjs FILE...
import { Parser, fromFile } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];
// the contract stays on AsyncAPI 2.6 (its consumers' tools read 2.x): the parser's hint to
// move to 3.x is informational
const ACCEPTED = new Set(["asyncapi-latest-version"]);
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await fromFile(parser, file).parse();
  let counted = 0;
  for (const d of diagnostics) {
    const accepted = d.severity >= 2 && ACCEPTED.has(d.code);
    counted += accepted ? 0 : 1;
    const where = d.path.join(".") || "(root)";
    const line = d.range ? d.range.start.line + 1 : 0;
    const note = accepted ? " (accepted)" : "";
    console.log(`${file}:${line}: ${SEVERITY[d.severity]} ${d.code}: ${d.message} [${where}]${note}`);
  }
  if (document === undefined || counted > 0) failed = true;
  console.log(`${file}: ${counted} problem(s)${document ? "" : ", not parsed"}`);
}
process.exit(failed ? 1 : 0);
