// The official OpenAI SDK (npm `openai`) against a running adak server, as a client application uses it:
// chat, chat streaming, completions with a batch of prompts, n = 2, an lm-evaluation-harness loglikelihood
// batch, streamed echo with logprobs, and a refusal surfacing as the SDK's BadRequestError with its param.
//   node openai_sdk_check.mjs http://127.0.0.1:8080/v1
// Exits 0 when every check holds; prints what failed otherwise.
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: process.env.ADAK_API_KEY ?? "unused", maxRetries: 2 });
const model = (await client.models.list()).data[0].id;
const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check("chat", async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: "system", content: "A story." }, { role: "user", content: "Once upon a time" }],
    max_tokens: 8, temperature: 0,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 8);
});

check("chat streaming", async () => {
  const plain = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "The little dog" }], max_tokens: 8, temperature: 0,
  });
  const stream = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "The little dog" }], max_tokens: 8, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let role = null;
  let finish = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      role ??= choice.delta.role ?? null;
      text += choice.delta.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.equal(role, "assistant");
  assert.equal(text, plain.choices[0].message.content);
  assert.ok(finish === "length" || finish === "stop");
});

check("completions with a batch of prompts", async () => {
  const r = await client.completions.create({ model, prompt: ["The sun", "A cat", "Tom"], max_tokens: 4, temperature: 0 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  const single = await client.completions.create({ model, prompt: "A cat", max_tokens: 4, temperature: 0 });
  assert.equal(r.choices[1].text, single.choices[0].text);
});

check("n = 2", async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: "user", content: "One day" }], max_tokens: 6, n: 2, seed: 5, temperature: 1,
  });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  assert.ok(r.usage.completion_tokens > 0);
});

check("loglikelihood batch (lm-evaluation-harness)", async () => {
  const r = await client.completions.create({
    model, prompt: [[300, 301, 302], [400, 401, 402, 403]], max_tokens: 0, echo: true, logprobs: 1, temperature: 0,
  });
  assert.equal(r.choices.length, 2);
  assert.equal(r.choices[0].logprobs.token_logprobs.length, 3);
  assert.equal(r.choices[1].logprobs.token_logprobs.length, 4);
  assert.equal(r.choices[0].logprobs.token_logprobs[0], null);
  assert.ok(r.choices[1].logprobs.token_logprobs[3] < 0);
});

check("streamed echo with logprobs", async () => {
  const stream = await client.completions.create({
    model, prompt: "The big dog", max_tokens: 2, echo: true, logprobs: 1, temperature: 0, stream: true,
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0].choices[0].text, "The big dog");
  assert.equal(chunks[0].choices[0].logprobs.token_logprobs[0], null);
  assert.ok(chunks[0].choices[0].logprobs.token_logprobs.length >= 2);
});

check("refusal: BadRequestError naming the param", async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: "tool", content: "x", tool_call_id: "1" }], max_tokens: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "messages");
  await assert.rejects(client.completions.create({ model, prompt: "x", max_tokens: 2, n: 0 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "n");
});

let failed = 0;
for (const [name, fn] of checks) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}
console.log(`${checks.length - failed}/${checks.length} checks passed`);
process.exit(failed === 0 ? 0 : 1);
