// Writes tests/jinja/testdata/chat_template_expected.json: for every case of chat_template_cases.json, the
// output (or the error message) of its template rendered by @huggingface/jinja.
//   cd tools/chat-template-fixtures && npm ci && node render.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Template } from "@huggingface/jinja";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const testdata = join(root, "tests/jinja/testdata");
const cases = JSON.parse(readFileSync(join(testdata, "chat_template_cases.json"), "utf8"));
const expected = {};
for (const c of cases) {
  const source = readFileSync(join(testdata, "templates", `${c.template}.jinja`), "utf8");
  try {
    expected[c.name] = { output: new Template(source).render(c.context) };
  } catch (e) {
    expected[c.name] = { error: String(e.message ?? e) };
  }
}
writeFileSync(join(testdata, "chat_template_expected.json"), JSON.stringify(expected, null, 1) + "\n");
console.log(`rendered ${cases.length} cases`);
