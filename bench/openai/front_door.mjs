// The OpenAI front door's figures (issue 20), against a running studio + worker and, for time to
// first token, the same model served directly by llama-server; run by front_door.sh. Prints
// `<name>: <value> <unit>`. Requests alternate between the compared routes, so load and noise
// fall on both alike.
const { STUDIO_URL, STUDIO_KEY, STUDIO_QUOTA_KEY, STUDIO_ADMIN, SYNTH_MODEL, LLAMA_MODEL,
  LLAMA_DIRECT_URL } = process.env;
const rounds = Number(process.env.ROUNDS ?? 100);
const auth = { authorization: `Bearer ${STUDIO_KEY}`, 'content-type': 'application/json' };
const messages = [{ role: 'user', content: 'Once upon a time' }];

async function timed(call) {
  const start = performance.now();
  await call();
  return performance.now() - start;
}
async function ok(reply) {
  if (!reply.ok) throw new Error(`${reply.status} ${await reply.text()}`);
  return reply;
}
const nativeAs = (bearer) => () =>
  fetch(`${STUDIO_URL}/api/v1/jobs?waitMs=60000`, {
    method: 'POST', headers: { ...auth, authorization: `Bearer ${bearer}` },
    body: JSON.stringify({ model: SYNTH_MODEL, task: { kind: 'llm', messages, maxTokens: 8 } }),
  }).then(ok).then((r) => r.json());
const native = nativeAs(STUDIO_KEY);
const openai = () =>
  fetch(`${STUDIO_URL}/v1/chat/completions`, {
    method: 'POST', headers: auth,
    body: JSON.stringify({ model: SYNTH_MODEL, messages, max_tokens: 8 }),
  }).then(ok).then((r) => r.json());

// Milliseconds from the request to the first content delta of a streamed chat.
async function firstToken(url, headers, body) {
  const start = performance.now();
  const reply = await ok(await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) }));
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let first = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (first === null && /"content":"[^"]/.test(text)) first = performance.now() - start;
  }
  if (first === null) throw new Error(`no content delta from ${url}: ${text.slice(0, 300)}`);
  return first;
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const print = (name, value, unit) => console.log(`${name}: ${value.toFixed(2)} ${unit}`);

await native();
await openai();  // warm both
const a = [];
const b = [];
for (let i = 0; i < rounds; i++) {
  a.push(await timed(native));
  b.push(await timed(openai));
}
print('native_wait_chat_p50', pct(a, 50), 'ms');
print('native_wait_chat_p99', pct(a, 99), 'ms');
print('openai_chat_p50', pct(b, 50), 'ms');
print('openai_chat_p99', pct(b, 99), 'ms');
print('openai_added_latency_p50', pct(b, 50) - pct(a, 50), 'ms');
print('openai_added_latency_p99', pct(b, 99) - pct(a, 99), 'ms');

// Issue 20: a job of the admin token (not metered), of a key (metered: usage rows written in the
// job's transactions) and of a key with a quota (metered and checked), alternating.
if (STUDIO_QUOTA_KEY && STUDIO_ADMIN) {
  const plain = nativeAs(STUDIO_ADMIN);
  const quota = nativeAs(STUDIO_QUOTA_KEY);
  await plain();
  await quota();
  const p = [];
  const m = [];
  const q = [];
  for (let i = 0; i < rounds; i++) {
    p.push(await timed(plain));
    m.push(await timed(native));
    q.push(await timed(quota));
  }
  print('job_unmetered_p50', pct(p, 50), 'ms');
  print('job_metered_p50', pct(m, 50), 'ms');
  print('job_metered_quota_p50', pct(q, 50), 'ms');
  print('metering_added_latency_p50', pct(m, 50) - pct(p, 50), 'ms');
  print('quota_check_added_latency_p50', pct(q, 50) - pct(m, 50), 'ms');
}

if (LLAMA_MODEL && LLAMA_DIRECT_URL) {
  const body = { messages, max_tokens: 32, temperature: 0, stream: true };
  const viaStudio = () =>
    firstToken(`${STUDIO_URL}/v1/chat/completions`, auth, { ...body, model: LLAMA_MODEL });
  const direct = () =>
    firstToken(`${LLAMA_DIRECT_URL}/v1/chat/completions`, { 'content-type': 'application/json' }, body);
  await viaStudio();
  await direct();  // both runners loaded
  const s = [];
  const d = [];
  for (let i = 0; i < Math.max(10, rounds / 5); i++) {
    s.push(await viaStudio());
    d.push(await direct());
  }
  print('ttft_studio_worker_p50', pct(s, 50), 'ms');
  print('ttft_studio_worker_p99', pct(s, 99), 'ms');
  print('ttft_llama_server_direct_p50', pct(d, 50), 'ms');
  print('ttft_llama_server_direct_p99', pct(d, 99), 'ms');
}
