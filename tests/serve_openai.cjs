// The official OpenAI client (npm `openai`) against `vkllm serve` (tests/cli_serve_openai.sh): lists the
// models, asks for a streamed chat completion with usage and checks it against the same request unstreamed.
// BASE_URL is the server's /v1. Prints one summary line; exits 1 with the reason on a mismatch.
const OpenAI = require('openai');

async function main() {
    const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: 'sk-test', maxRetries: 0, timeout: 60000 });
    const models = await client.models.list();
    const model = models.data[0].id;
    const request = {
        model,
        messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'A story about a dog.' }],
        max_tokens: 20,
        temperature: 0,
    };
    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let text = '', finish = null, usage = null, chunks = 0;
    for await (const chunk of stream) {
        chunks++;
        if (chunk.choices.length) {
            text += chunk.choices[0].delta.content ?? '';
            finish = chunk.choices[0].finish_reason ?? finish;
        }
        if (chunk.usage) usage = chunk.usage;
    }
    const whole = await client.chat.completions.create(request);
    const want = whole.choices[0].message.content;
    const problems = [];
    if (text !== want) problems.push(`streamed ${JSON.stringify(text)} != whole ${JSON.stringify(want)}`);
    if (finish !== 'length') problems.push(`finish_reason ${finish}`);
    if (!usage || usage.completion_tokens !== 20 || usage.total_tokens !== usage.prompt_tokens + 20)
        problems.push(`usage ${JSON.stringify(usage)}`);
    if (!text.length) problems.push('empty reply');
    if (problems.length) {
        console.log(problems.join('; '));
        process.exit(1);
    }
    console.log(`model ${model}: streamed chat of ${chunks} chunks = the whole answer, usage ${JSON.stringify(usage)}`);
}

main().catch((e) => {
    console.log(`error: ${e.stack || e}`);
    process.exit(1);
});
