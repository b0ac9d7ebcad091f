// The official OpenAI client (npm `openai`) as a real client of the studio's /v1 routes. Run by
// tests/e2e/openai_api_test.cpp with STUDIO_URL, STUDIO_KEY and the model ids; prints one JSON
// object of what the client saw (the C++ test asserts on it) and exits 0, or prints the error and
// exits 1. Every response is read through the client's own types and parsers.
import OpenAI, { toFile } from 'openai';

const base = process.env.STUDIO_URL;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: process.env.STUDIO_KEY, maxRetries: 0 });
const models = JSON.parse(process.env.STUDIO_MODELS);
const seen = {};

async function jobStatus(jobId) {
  const reply = await fetch(`${base}/api/v1/jobs/${jobId}`, {
    headers: { authorization: `Bearer ${process.env.STUDIO_KEY}` },
  });
  return (await reply.json()).status;
}

async function apiError(call) {
  try {
    await call();
    return { thrown: false };
  } catch (error) {
    return {
      thrown: true,
      isApiError: error instanceof OpenAI.APIError,
      status: error.status,
      code: error.code ?? null,
      param: error.param ?? null,
      type: error.type ?? null,
      message: error.message,
    };
  }
}

// Models.
const list = [];
for await (const model of client.models.list()) list.push({ id: model.id, object: model.object, owned_by: model.owned_by });
seen.models = list;

// Chat, plain.
const chat = await client.chat.completions.create({
  model: models.llm,
  messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }],
  max_tokens: 5,
  temperature: 0.2,
  seed: 7,
});
seen.chat = {
  id: chat.id,
  object: chat.object,
  model: chat.model,
  content: chat.choices[0].message.content,
  role: chat.choices[0].message.role,
  finish_reason: chat.choices[0].finish_reason,
  usage: chat.usage,
};

// Chat, streamed: the order of what arrives, and the job's status when the first delta came.
const stream = await client.chat.completions.create({
  model: models.llm,
  messages: [{ role: 'user', content: 'tell me a story' }],
  stream: true,
  stream_options: { include_usage: true },
});
const events = [];
let content = '';
let statusAtFirstDelta = null;
let usage = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (!choice) {
    events.push('usage');
    continue;
  }
  if (choice.delta.role) events.push('role');
  if (choice.delta.content) {
    if (statusAtFirstDelta === null) {
      statusAtFirstDelta = await jobStatus(chunk.id.replace(/^chatcmpl-/, ''));
    }
    events.push('delta');
    content += choice.delta.content;
  }
  if (choice.finish_reason) events.push(`finish:${choice.finish_reason}`);
}
seen.stream = { events, content, statusAtFirstDelta, usage };

// Cancel: a client that gives up on a streamed answer (aborts the request) cancels its job.
const controller = new AbortController();
const long = await client.chat.completions.create(
  { model: models.llm, messages: [{ role: 'user', content: 'a very long story' }], stream: true, max_tokens: 4000 },
  { signal: controller.signal },
);
let abandoned = null;
try {
  for await (const chunk of long) {
    if (chunk.choices[0]?.delta?.content) {
      abandoned = chunk.id.replace(/^chatcmpl-/, '');
      controller.abort();
    }
  }
} catch (error) {
  if (!(error instanceof OpenAI.APIUserAbortError)) throw error;
}
let abandonedStatus = null;
for (let i = 0; i < 200 && abandoned && abandonedStatus !== 'cancelled'; i++) {
  abandonedStatus = await jobStatus(abandoned);
  if (abandonedStatus !== 'cancelled') await new Promise((resolve) => setTimeout(resolve, 50));
}
seen.abandoned = { job: abandoned, status: abandonedStatus };

// An image, as base64.
const image = await client.images.generate({ model: models.image, prompt: 'a red fox', size: '64x64', response_format: 'b64_json' });
const png = Buffer.from(image.data[0].b64_json, 'base64');
seen.image = { created: image.created, bytes: png.length, magic: png.subarray(1, 4).toString('latin1') };

// Speech: bytes.
const speech = await client.audio.speech.create({ model: models.tts, input: 'hello from the studio', voice: 'default', response_format: 'wav' });
const wav = Buffer.from(await speech.arrayBuffer());
seen.speech = { bytes: wav.length, magic: wav.subarray(0, 4).toString('latin1'), type: speech.headers.get('content-type') };

// A transcription of an uploaded file (multipart, the `file` part).
if (models.stt) {
  const transcript = await client.audio.transcriptions.create({ model: models.stt, file: await toFile(wav, 'speech.wav', { type: 'audio/wav' }) });
  seen.transcription = { text: transcript.text };
}

// Errors in OpenAI's shape.
seen.unknownModel = await apiError(() => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }));
seen.unsupported = await apiError(() => client.chat.completions.create({
  model: models.llm,
  messages: [{ role: 'user', content: 'x' }],
  tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
}));
seen.badKey = await apiError(() => new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list());
// A key whose quota is spent (issue 20): the client's own RateLimitError, and with its default
// retries it does not try again (the studio says x-should-retry: false).
if (process.env.STUDIO_SPENT_KEY) {
  const spent = new OpenAI({ baseURL: `${base}/v1`, apiKey: process.env.STUDIO_SPENT_KEY });
  let error = null;
  try {
    await spent.chat.completions.create({ model: models.llm, messages: [{ role: 'user', content: 'x' }] });
  } catch (e) {
    error = e;
  }
  seen.spentQuota = {
    isRateLimitError: error instanceof OpenAI.RateLimitError,
    status: error?.status ?? null,
    code: error?.code ?? null,
  };
}

console.log(JSON.stringify(seen));
