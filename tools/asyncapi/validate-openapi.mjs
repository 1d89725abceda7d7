// Validates OpenAPI documents (JSON or YAML) against the OpenAPI specification's own schema
// (2.0, 3.0 or 3.1, by the document's version) with @apidevtools/swagger-parser, then checks
// that every $ref resolves. Exits 1 on the first invalid document.
// Usage: node validate-openapi.mjs FILE...
import SwaggerParser from "@apidevtools/swagger-parser";

let failed = false;
for (const file of process.argv.slice(2)) {
  try {
    const api = await SwaggerParser.validate(file);
    const paths = Object.keys(api.paths || {}).length;
    console.log(`${file}: valid OpenAPI ${api.openapi || api.swagger} (${paths} paths)`);
  } catch (error) {
    failed = true;
    console.log(`${file}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
